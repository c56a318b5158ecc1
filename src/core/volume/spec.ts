/**
 * Parameter sets: the files a prover needs in its volume, each with a digest,
 * where to download it and where it goes in the guest. Validated with zod in
 * steps: parse the JSON, check the shape, then check rules across files.
 */
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { UniproveError } from '../errors.js';
import { refuseSpecialFile } from '../fs.js';
import { sha256Of } from '../hash.js';
import { DIGEST_PATTERN, parseDigest } from './digest.js';

const FILE_NAME = /^[A-Za-z0-9._+-]+$/;

/** A relative guest path: no leading slash, no `..`, no empty or `.` segments. */
export function isSafeRelativePath(path: string): boolean {
  if (!path || path.startsWith('/') || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** An absolute, normalised guest directory (`/var/tmp/x`, never `/a/../b`). */
export function isSafeMountPath(path: string): boolean {
  return (
    path.startsWith('/') &&
    !path.includes('\0') &&
    posix.normalize(path) === path &&
    (path === '/' || !path.endsWith('/')) &&
    !path.split('/').includes('..')
  );
}

const urlSchema = z.string().refine(
  (value) => {
    try {
      return ['http:', 'https:', 'file:'].includes(new URL(value).protocol);
    } catch {
      return false;
    }
  },
  { message: 'must be an http://, https:// or file:// URL' },
);

/** One file of a parameter set, as written in volumes/<set>.json. */
export const parameterFileSchema = z.strictObject({
  /** File name, unique in the set; also the default guest path. */
  name: z.string().regex(FILE_NAME, 'must be a plain file name (letters, digits, . _ + -)'),
  /** Where the file goes, relative to the set's mountPath; defaults to `name`. */
  path: z
    .string()
    .refine(isSafeRelativePath, { message: 'must be relative, without `..`, `.` or empty segments' })
    .optional(),
  /** Size in bytes when known; checked against the server before hashing finishes. */
  size: z.number().int().nonnegative().optional(),
  /** `<algorithm>:<hex>`, e.g. `blake2b512-trunc128:` + 32 hex. */
  digest: z
    .string()
    .regex(DIGEST_PATTERN, 'must be blake2b512-trunc128:<32 hex> or sha256:<64 hex> (lowercase)'),
  /** IPFS content id, used when --base-url points at a gateway. */
  cid: z
    .string()
    .regex(/^[A-Za-z0-9]+$/, 'must be a CID')
    .optional(),
  /** Where to download it, tried in order. */
  urls: z.array(urlSchema).min(1, 'list at least one URL'),
});

/** A parameter set file. */
export const parameterSetSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, . _ - (no spaces)'),
  description: z.string().optional(),
  /** The guest directory the volume is mounted at. */
  mountPath: z
    .string()
    .refine(isSafeMountPath, { message: 'must be an absolute, normalised path without `..`' }),
  /** Where the set came from (the importer records its input). */
  source: z
    .strictObject({
      kind: z.enum(['filecoin-parameters', 'manual']),
      sectorSize: z.number().int().nonnegative().optional(),
      file: z.string().optional(),
    })
    .optional(),
  files: z.array(parameterFileSchema).min(1, 'list at least one file'),
});

export type ParameterFileSpec = z.infer<typeof parameterFileSchema>;
export type ParameterSetSpec = z.infer<typeof parameterSetSchema>;

/** A file of a resolved set: guest path filled in. */
export interface ResolvedParameterFile extends ParameterFileSpec {
  path: string;
  /** Absolute path inside the guest. */
  guestPath: string;
}

/** A validated set, with its content digest (what a volume built from it holds). */
export interface ResolvedParameterSet extends Omit<ParameterSetSpec, 'files'> {
  files: ResolvedParameterFile[];
  /** sha256 over mountPath and each (path, digest): two sets with equal digests build equal volumes. */
  setDigest: string;
  /** Sum of the sizes known in the set file. */
  knownBytes: number;
}

function dotPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, part) =>
      typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part),
    '',
  );
}

/** The JSON Schema of a parameter-set file (volumes/parameter-set.schema.json), for editors. */
export function parameterSetJsonSchema(): unknown {
  return z.toJSONSchema(parameterSetSchema, { io: 'input' });
}

/** Validate a parsed set (from JSON) and resolve it; `origin` names it in errors. */
export function resolveParameterSet(value: unknown, origin: string): ResolvedParameterSet {
  const parsed = parameterSetSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${dotPath(issue.path) || '(root)'}: ${issue.message}`,
    );
    throw new UniproveError('E_CONFIG', {
      message: `parameter set ${origin} is invalid:\n  ${problems.join('\n  ')}`,
      hint: 'Fix the fields named above; docs/volume.md describes the format.',
      details: { problems },
    });
  }
  const spec = parsed.data;
  const problems: string[] = [];
  const names = new Map<string, number>();
  const paths = new Map<string, number>();
  const files = spec.files.map((file, index) => {
    const path = file.path ?? file.name;
    if (names.has(file.name))
      problems.push(`files[${index}].name: ${file.name} repeats files[${names.get(file.name)}]`);
    names.set(file.name, index);
    if (paths.has(path)) problems.push(`files[${index}].path: ${path} repeats files[${paths.get(path)}]`);
    paths.set(path, index);
    parseDigest(file.digest);
    return { ...file, path, guestPath: posix.join(spec.mountPath, path) };
  });
  // A file may not be the parent directory of another one.
  for (const path of paths.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (paths.has(parent))
        problems.push(`files[${paths.get(parent)}].path: ${parent} is also a directory of ${path}`);
    }
  }
  if (problems.length > 0) {
    throw new UniproveError('E_CONFIG', {
      message: `parameter set ${origin} is invalid:\n  ${problems.join('\n  ')}`,
      hint: 'Give every file its own name and guest path.',
      details: { problems },
    });
  }
  const canonical = JSON.stringify({
    mountPath: spec.mountPath,
    files: files.map((f) => [f.path, f.digest]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
  });
  return {
    ...spec,
    files,
    setDigest: `sha256:${sha256Of(canonical)}`,
    knownBytes: files.reduce((sum, f) => sum + (f.size ?? 0), 0),
  };
}

/** True when a name refers to a file (has a slash or ends in .json) rather than a set in volumes/. */
export function looksLikePath(ref: string): boolean {
  return ref.includes('/') || ref.endsWith('.json');
}

/** Read a file, mapping "does not exist" to E_NOT_FOUND. */
export async function readInputFile(path: string, what: string, hint: string): Promise<string> {
  await refuseSpecialFile(path, what, hint);
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UniproveError('E_NOT_FOUND', {
        message: `${what} ${path} does not exist`,
        hint,
        cause: error,
      });
    }
    if (code === 'EISDIR') {
      throw new UniproveError('E_IS_DIRECTORY', {
        message: `${what} ${path} is a directory`,
        hint,
        cause: error,
      });
    }
    throw new UniproveError('E_CONFIG', {
      message: `cannot read ${what} ${path}: ${code}`,
      hint,
      cause: error,
    });
  }
}

/** Resolve a set name to its file in a sets directory (rejecting names that would escape it). */
export function setFilePath(setsDir: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UniproveError('E_USAGE', {
      message: `parameter set name ${JSON.stringify(name)} is not a plain name`,
      hint: 'Give a set name from volumes/ (uniprove volume ls --sets) or a path to a .json file.',
    });
  }
  return join(setsDir, `${name}.json`);
}

/** Parameter sets shipped with uniprove (volumes/). */
export const BUILTIN_SETS_DIR = fileURLToPath(new URL('../../../volumes/', import.meta.url));
