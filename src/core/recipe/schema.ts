/**
 * The prover recipe: what a user edits to describe one prover (provers/<name>/recipe.json).
 * Parsed with zod, then normalised into a ResolvedRecipe with absolute host paths.
 */
import { z } from 'zod';

/** A guest path: absolute, normalised, never climbing out of the image root. */
export const GuestPath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute guest path (start with /)' })
  .refine((p) => !p.split('/').includes('..'), {
    message: 'must not contain ".." (it would escape the image root)',
  })
  .refine((p) => !p.includes('\0'), { message: 'must not contain NUL' });

/** A host path as written in a recipe; relative ones are relative to the recipe's folder. */
const HostPath = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\0'), { message: 'must not contain NUL' });

const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be a valid environment variable name' });

export const FileEntry = z.strictObject({
  /** Where the file is on the host (relative: to the recipe folder). */
  host: HostPath,
  /** Where it goes in the image; default: its host path (absolute host paths) or /<basename>. */
  guest: GuestPath.optional(),
  /** Why it is there, shown by `uniprove why`. */
  reason: z.string().optional(),
});

export const ProbeSpec = z.strictObject({
  /** Arguments for the discovery run; default: the recipe's args. */
  args: z.array(z.string()).optional(),
  env: z.record(EnvName, z.string()).optional(),
  timeoutSeconds: z.number().positive().max(86_400).default(120),
  /** Skip the strace run (ELF closure and families only). */
  skip: z.boolean().default(false),
  /** Keep what was found even when the probe exits non-zero. */
  allowFailure: z.boolean().default(false),
  /**
   * Run the probe on this one CPU (taskset): several times less strace overhead where waking
   * another CPU is slow (nested VMs), but a multi-threaded prover gets one CPU.
   */
  cpu: z.number().int().min(0).max(4095).optional(),
});

export const VolumeMount = z.strictObject({
  /** A parameter set name from volumes/ (or a path to a set file). */
  set: z.string().min(1),
  /** Where the volume is mounted; default the set's mountPath. */
  guestPath: GuestPath.optional(),
  readOnly: z.boolean().default(false),
  /** Size of the Ops volume (room for working files), e.g. 40g. */
  size: z
    .string()
    .regex(/^\d+[kmgtKMGT]?$/, { message: 'must be a size such as 512m or 40g' })
    .optional(),
});

export const ProofSpec = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    /** Guest path of the proof file or folder (inside a mounted volume). */
    path: GuestPath,
  }),
  z.strictObject({
    kind: z.literal('console'),
    begin: z.string().min(1).default('UNIPROVE-PROOF-BEGIN'),
    end: z.string().min(1).default('UNIPROVE-PROOF-END'),
  }),
  z.strictObject({ kind: z.literal('none') }),
]);

export const BuildSpec = z.strictObject({
  /** A command (argv, no shell) that builds the binary; run in the recipe folder. */
  argv: z.array(z.string()).min(1),
  env: z.record(EnvName, z.string()).optional(),
});

export const RecipeSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/, { message: 'must be lower-case letters, digits, ., _ or -' }),
  description: z.string().optional(),
  /** The prover binary: a path (relative to the recipe folder) or a name looked up on PATH. */
  binary: HostPath,
  /** Build step that produces `binary` when it is missing (e.g. cargo build). */
  build: BuildSpec.optional(),
  /** Guest path of the program; default /<basename of binary>. */
  program: GuestPath.optional(),
  args: z.array(z.string()).default([]),
  env: z.record(EnvName, z.string()).default({}),
  files: z.array(FileEntry).default([]),
  /** Whole folders to include: host folder -> guest folder. */
  dirs: z.array(FileEntry).default([]),
  probe: ProbeSpec.default({ timeoutSeconds: 120, skip: false, allowFailure: false }),
  /** Extra libraries (names resolved like DT_NEEDED, or paths). */
  libraries: z.array(z.string()).default([]),
  /** Library families to add whatever the probe sees: nss, gconv, opencl, openssl, cuda, ld-cache. */
  families: z.array(z.enum(['nss', 'gconv', 'opencl', 'openssl', 'cuda', 'ld-cache'])).default([]),
  volumes: z.array(VolumeMount).default([]),
  proof: ProofSpec.default({ kind: 'none' }),
  resources: z
    .strictObject({
      memory: z
        .string()
        .regex(/^\d+[MGmg]$/, { message: 'must be like 2G or 512M' })
        .default('2G'),
      cpus: z.number().int().positive().max(512).default(2),
    })
    .default({ memory: '2G', cpus: 2 }),
  klibs: z.array(z.string().regex(/^[a-z0-9_]+$/)).default([]),
  /** Nanos debug flags (manifest debug flags such as trace, debugsyscalls, missing_files). */
  debugFlags: z.array(z.string().regex(/^[a-z0-9_]+$/)).default([]),
  /** Extra Nanos manifest keys passed through Ops's ManifestPassthrough. */
  manifestPassthrough: z.record(z.string(), z.unknown()).default({}),
  /** Resolve libraries against another tree (sysroot, unpacked container image). */
  root: HostPath.optional(),
});

export type Recipe = z.infer<typeof RecipeSchema>;
export type RecipeInput = z.input<typeof RecipeSchema>;
export type FileEntrySpec = z.infer<typeof FileEntry>;

/** The JSON Schema of recipes, for editors (written to provers/recipe.schema.json). */
export function recipeJsonSchema(): unknown {
  return z.toJSONSchema(RecipeSchema, { io: 'input', unrepresentable: 'any' });
}
