/**
 * The prover recipe: what a user edits to describe one prover (provers/<name>/recipe.json).
 * Parsed with zod, then normalised into a ResolvedRecipe with absolute host paths.
 */
import { z } from 'zod';

/** The longest file or folder name (bytes) that Linux file systems, and so Nanos images, hold. */
export const MAX_NAME_BYTES = 255;

/** A guest path: absolute, normalised, never climbing out of the image root. */
export const GuestPath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute guest path (start with /)' })
  .refine((p) => !p.split('/').includes('..'), {
    message: 'must not contain ".." (it would escape the image root)',
  })
  .refine((p) => !p.includes('\0'), { message: 'must not contain NUL' })
  .refine((p) => p.split('/').every((name) => Buffer.byteLength(name) <= MAX_NAME_BYTES), {
    message: `must not hold a name longer than ${MAX_NAME_BYTES} bytes (the most a file system allows)`,
  });

/** A host path as written in a recipe; relative ones are relative to the recipe's folder. */
const HostPath = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\0'), { message: 'must not contain NUL' });

/** Guest memory bounds: less than 64 MiB cannot boot a Nanos guest with a prover; more than 4 TiB no host offers. */
export const MIN_MEMORY_MIB = 64;
export const MAX_MEMORY_MIB = 4 * 1024 * 1024;

/** MiB in a memory size as recipes write it (512M, 2G); NaN when it is not one. */
export function memoryMiB(size: string): number {
  const m = /^(\d+)([MGmg])$/.exec(size);
  if (!m) return Number.NaN;
  return Number(m[1]) * (m[2]?.toLowerCase() === 'g' ? 1024 : 1);
}

const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be a valid environment variable name' });

// Every field carries its description (.describe): provers/recipe.schema.json shows it in editors.

export const FileEntry = z.strictObject({
  host: HostPath.describe('Where the file is on the host; a relative path is relative to the recipe folder.'),
  guest: GuestPath.optional().describe(
    'Where it goes in the image. Default: its host path (for an absolute host path), else /<basename>.',
  ),
  reason: z.string().optional().describe('Why it is there; `uniprove why` shows it.'),
  replace: z
    .boolean()
    .optional()
    .describe(
      'Put this file where the package would put one of the libraries it found (the C library, the loader): without it, a guest path the ELF closure already holds is refused.',
    ),
});

export const DirEntry = z
  .strictObject({
    host: HostPath.optional().describe(
      'A host folder whose whole tree goes in, empty folders at any depth included; a relative path is relative to the recipe folder. Leave it out for an empty folder.',
    ),
    guest: GuestPath.optional().describe(
      'Where the folder goes in the image. Default: its host path (for an absolute host path), else /<basename>. Alone (no host), an empty folder there, e.g. the working directory set with manifestPassthrough.cwd.',
    ),
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, { message: 'must be an octal mode such as 0755' })
      .optional()
      .describe(
        'The mode of a folder without a host side (octal, default 0755); a host folder keeps its own.',
      ),
    reason: z.string().optional().describe('Why it is there; `uniprove why` shows it.'),
    replace: z
      .boolean()
      .optional()
      .describe(
        'Let files of this folder take paths the ELF closure already holds (the C library, the loader): without it, such a path is refused.',
      ),
  })
  .refine((d) => d.host !== undefined || d.guest !== undefined, {
    message: 'give host (a folder to copy), guest (an empty folder to make), or both',
  })
  .refine((d) => d.host !== undefined || d.guest?.replace(/\/+$/, '') !== '', {
    message: 'must name a folder below / (an empty folder at the image root adds nothing)',
    path: ['guest'],
  })
  .refine((d) => d.host === undefined || d.mode === undefined, {
    message: 'mode is for a folder without a host side; a host folder keeps its own mode',
    path: ['mode'],
  });

export const ProbeSpec = z
  .strictObject({
    args: z
      .array(z.string())
      .optional()
      .describe("Arguments for the discovery run (strace). Default: the recipe's args."),
    env: z
      .record(EnvName, z.string())
      .optional()
      .describe("Extra environment for the discovery run, over the recipe's env."),
    timeoutSeconds: z
      .number()
      .positive()
      .max(86_400)
      .default(120)
      .describe('Kill the discovery run (and its children) after this many seconds.'),
    skip: z
      .boolean()
      .default(false)
      .describe('Do not run the program: ELF closure, listed files and families only.'),
    allowFailure: z
      .boolean()
      .default(false)
      .describe('Keep what the discovery run opened even when it exits non-zero.'),
    cpu: z
      .number()
      .int()
      .min(0)
      .max(4095)
      .optional()
      .describe(
        'Run the discovery run and strace on this one CPU (taskset): several times less strace overhead where waking another CPU is slow (nested VMs), for single-threaded probes. A parallel prover sees one CPU and sizes its thread pools to it.',
      ),
    lingerMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(0)
      .describe(
        "Keep the discovery run's process alive this many milliseconds after it calls exit, so that its other threads run on and what they open is traced (a client that resolves a host name in its own thread: /etc/hosts, nsswitch.conf, libnss_*). A library preloaded into the discovery run only, never into the package; not for static or Go programs. 0: exit at once.",
      ),
    includeListed: z
      .boolean()
      .default(false)
      .describe(
        'Package whole each folder the discovery run listed and read data files from (outside library and module folders), with reason `listed`: for a program that reads every file it lists (a test data folder). Default: a listed-partly-packaged warning names the files left out.',
      ),
  })
  .describe('How `uniprove package` runs the prover once under strace to find what it opens at run time.');

export const VolumeMount = z.strictObject({
  set: z
    .string()
    .min(1)
    .describe('A parameter set: a name from volumes/ (e.g. filecoin-2KiB) or a path to a set file.'),
  guestPath: GuestPath.optional().describe(
    "Where the volume is mounted in the guest. Default: the set's mountPath.",
  ),
  readOnly: z.boolean().default(false).describe('Mount it read-only.'),
  size: z
    .string()
    .regex(/^\d+[kmgtKMGT]?$/, { message: 'must be a size such as 512m or 40g' })
    .refine((v) => Number.parseInt(v, 10) > 0, { message: 'must be more than 0' })
    .optional()
    .describe('Size of the Ops volume, with room for files the prover writes there, e.g. 40g.'),
});

export const ProofSpec = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('file'),
      path: GuestPath.describe(
        'Guest path of the proof file or folder; copied out of the volume (or the image) after the run.',
      ),
      maxBytes: z
        .number()
        .int()
        .positive()
        .optional()
        .describe(
          'The largest the proof file can be. A proof that comes back through the console (always on Compute Engine) is refused before launch when the console cannot carry this many bytes within the timeout.',
        ),
    }),
    z.strictObject({
      kind: z.literal('console'),
      begin: z
        .string()
        .min(1)
        .default('UNIPROVE-PROOF-BEGIN')
        .describe('The console line that starts the proof.'),
      end: z.string().min(1).default('UNIPROVE-PROOF-END').describe('The console line that ends it.'),
    }),
    z.strictObject({ kind: z.literal('none') }),
  ])
  .describe('Where the proof appears: a file in the guest, the console between two marker lines, or none.');

export const BuildSpec = z
  .strictObject({
    argv: z
      .array(z.string())
      .min(1)
      .describe('The command as an argument list (no shell), run in the recipe folder.'),
    env: z.record(EnvName, z.string()).optional().describe('Extra environment for the build.'),
    source: z
      .strictObject({
        repository: z.string().min(1).describe('Where the source is, e.g. https://github.com/owner/name.'),
        commit: z
          .string()
          .regex(/^[0-9a-f]{40}$/, { message: 'must be a full 40-hex commit' })
          .describe('The commit the binary is built from.'),
        toolchain: z.string().optional().describe('The compiler toolchain, e.g. nightly-2024-09-24.'),
      })
      .optional()
      .describe(
        'The source the build runs in, for users who rebuild the binary (the build runs in the recipe folder).',
      ),
  })
  .describe('A build step that makes `binary` when it is missing (e.g. cargo build).');

export const RecipeSchema = z.strictObject({
  $schema: z.string().optional().describe('The JSON Schema of this file, for editors.'),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/, { message: 'must be lower-case letters, digits, ., _ or -' })
    .describe('The recipe name: lower-case letters, digits, ., _ or -. Packages go to build/<name>.'),
  description: z.string().optional().describe('One line on what this prover is.'),
  binary: HostPath.describe(
    'The prover binary: a path (relative to the recipe folder) or a name looked up on PATH. `--binary` overrides it.',
  ),
  build: BuildSpec.optional(),
  arch: z
    .enum(['x86_64', 'aarch64'])
    .default('x86_64')
    .describe('The machine the image is for: the binary must be a 64-bit ELF program for it.'),
  program: GuestPath.optional().describe('Guest path of the program. Default: /<basename of binary>.'),
  args: z.array(z.string()).default([]).describe("The prover's arguments in the guest."),
  env: z.record(EnvName, z.string()).default({}).describe("The prover's environment in the guest."),
  files: z.array(FileEntry).default([]).describe('Single files to include: host path -> guest path.'),
  dirs: z
    .array(DirEntry)
    .default([])
    .describe(
      'Folders to include: a whole host folder (empty folders kept) -> guest folder, or an empty guest folder on its own ({ "guest": "/tmp/work" }).',
    ),
  probe: ProbeSpec.default({
    timeoutSeconds: 120,
    skip: false,
    allowFailure: false,
    lingerMs: 0,
    includeListed: false,
  }),
  libraries: z
    .array(z.string())
    .default([])
    .describe('Extra libraries: names resolved as DT_NEEDED ones are (libfoo.so.1), or paths.'),
  families: z
    .array(z.enum(['nss', 'gconv', 'opencl', 'openssl', 'cuda', 'ld-cache']))
    .default([])
    .describe(
      'Library families to add whatever the probe sees: each adds its config files and the libraries they name.',
    ),
  volumes: z.array(VolumeMount).default([]).describe('Parameter volumes to build (or reuse) and mount.'),
  proof: ProofSpec.default({ kind: 'none' }),
  resources: z
    .strictObject({
      memory: z
        .string()
        .regex(/^\d+[MGmg]$/, { message: 'must be like 2G or 512M' })
        .refine(
          (v) => {
            const mib = memoryMiB(v);
            return mib >= MIN_MEMORY_MIB && mib <= MAX_MEMORY_MIB;
          },
          { message: `must be from ${MIN_MEMORY_MIB}M to ${MAX_MEMORY_MIB / 1024}G` },
        )
        .default('2G')
        .describe(`Guest memory, e.g. 2G or 512M (${MIN_MEMORY_MIB}M to ${MAX_MEMORY_MIB / 1024}G).`),
      cpus: z
        .union([z.number().int().positive().max(512), z.literal('all')])
        .default(2)
        .describe(
          'Guest vCPUs: a number, or "all" (this host\'s cores for a local run; the machine type\'s vCPUs on Compute Engine).',
        ),
      threadVars: z
        .array(
          z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be an environment variable name' }),
        )
        .default([])
        .describe(
          "Environment variables that size the prover's thread pools (RAYON_NUM_THREADS, TOKIO_WORKER_THREADS, OMP_NUM_THREADS): each is set to the vCPU count the run gets, so one recipe fits any machine.",
        ),
      allowUnmapDeadlock: z
        .boolean()
        .default(false)
        .describe(
          'Run with the vCPUs asked even on a Nanos kernel with the unmap deadlock (by default such a run gets one vCPU, with a warning).',
        ),
    })
    .default({ memory: '2G', cpus: 2, threadVars: [], allowUnmapDeadlock: false })
    .describe('What the VM gets (Ops RunConfig.Memory and CPUs).'),
  klibs: z
    .array(z.string().regex(/^[a-z0-9_]+$/))
    .default([])
    .describe('Nanos klibs to add (Ops Klibs), e.g. strace, tls.'),
  debugFlags: z
    .array(z.string().regex(/^[a-z0-9_]+$/))
    .default([])
    .describe('Nanos debug flags (Ops Debugflags), e.g. trace, debugsyscalls, missing_files.'),
  manifestPassthrough: z
    .record(z.string(), z.unknown())
    .default({})
    .describe("Extra Nanos manifest keys, passed through Ops's ManifestPassthrough."),
  root: HostPath.optional().describe(
    'Resolve libraries inside this tree (a sysroot or an unpacked container image) instead of this host.',
  ),
});

export type Recipe = z.infer<typeof RecipeSchema>;
export type RecipeInput = z.input<typeof RecipeSchema>;
export type FileEntrySpec = z.infer<typeof FileEntry>;
export type DirEntrySpec = z.infer<typeof DirEntry>;

/** The JSON Schema of recipes, for editors (written to provers/recipe.schema.json). */
export function recipeJsonSchema(): unknown {
  return z.toJSONSchema(RecipeSchema, { io: 'input', unrepresentable: 'any' });
}
