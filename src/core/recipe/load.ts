/**
 * Finding, parsing and resolving prover recipes.
 *
 * In three steps: parse (zod, dot-path errors), normalise (absolute host
 * paths, defaults), then check against the world (the binary exists and is a
 * file, every listed file exists), all before anything is written.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, isAbsolute, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UniproveError } from '../errors.js';
import { which } from '../exec.js';
import { notRegularFile, requireRegularFile } from '../fs.js';
import { formatZodIssues } from '../zod-issues.js';
import { packageOwnPath } from './reserved-paths.js';
import { type DirEntrySpec, type FileEntrySpec, type Recipe, RecipeSchema } from './schema.js';

/** Recipes shipped with uniprove. */
export const BUILTIN_PROVERS_DIR = fileURLToPath(new URL('../../../provers/', import.meta.url));

export interface LoadRecipeOptions {
  /** Folders searched for `<name>/recipe.json`, first match wins. */
  proversDirs?: string[];
  /** PATH used to look up a binary given by name. */
  pathEnv?: string;
  /** Values that replace the recipe's (CLI flags such as --binary). */
  overrides?: RecipeOverrides;
  /** Folder relative paths on the command line are resolved against. */
  cwd?: string;
}

export interface RecipeOverrides {
  binary?: string;
  args?: string[];
  env?: Record<string, string>;
  memory?: string;
  cpus?: number | 'all';
}

/** A file to put in the image, host path resolved. */
export interface ResolvedFile {
  hostPath: string;
  /** Normalised: absolute, no trailing slash, no "." or empty names. */
  guestPath: string;
  reason: string | undefined;
  /** The recipe says this file may take the place of one the ELF closure holds. */
  replace: boolean;
  /** Where the recipe names it: files[2], dirs[0]. */
  field: string;
}

/** A folder to put in the image: a host folder's tree (hostPath), or an empty folder with a mode. */
export interface ResolvedDir {
  /** The host folder copied, with every folder and file under it; undefined for an empty folder. */
  hostPath: string | undefined;
  /** Normalised: no trailing slash. */
  guestPath: string;
  /** Mode of an empty folder (no hostPath); a host folder keeps its own. */
  mode: number | undefined;
  reason: string | undefined;
  /** Its files may take paths the ELF closure holds. */
  replace: boolean;
  /** Where the recipe names it: dirs[0]. */
  field: string;
}

/** A recipe with every path absolute and every default filled in. */
/** A recipe's resources, with "all" vCPUs counted (this host's cores) and remembered as asked. */
export interface ResolvedResources {
  memory: string;
  cpus: number;
  /** The recipe asked for every vCPU ("all"): cpus is this host's count, a cloud machine uses its own. */
  cpusAll: boolean;
  threadVars: string[];
  allowUnmapDeadlock: boolean;
}

export interface ResolvedRecipe extends Omit<Recipe, 'files' | 'dirs' | 'binary' | 'program' | 'resources'> {
  resources: ResolvedResources;
  /** Where the recipe came from (a recipe.json, or the binary itself for ad-hoc runs). */
  source: string;
  /** Folder that relative recipe paths are resolved against. */
  baseDir: string;
  binary: string;
  program: string;
  /** false when `program` is the default (/<basename>), which packaging may move to keep $ORIGIN working. */
  programExplicit: boolean;
  files: ResolvedFile[];
  dirs: ResolvedDir[];
}

/** Where a recipe name or argument points: a recipe file, or a bare binary. */
async function locateRecipe(
  ref: string,
  options: LoadRecipeOptions,
): Promise<{ recipeFile?: string; binary?: string }> {
  const cwd = options.cwd ?? process.cwd();
  const asPath = resolve(cwd, ref);
  const info = await stat(asPath).catch(() => undefined);
  if (info?.isDirectory()) {
    const file = join(asPath, 'recipe.json');
    if (await exists(file)) return { recipeFile: file };
  } else if (info?.isFile()) {
    if (ref.endsWith('.json')) return { recipeFile: asPath };
    return { binary: asPath };
  } else if (info) {
    throw notRegularFile(info, asPath, 'recipe', 'Give a recipe name, a recipe file, or the binary itself.');
  }
  if (/^[a-z0-9][a-z0-9._-]*$/.test(ref)) {
    for (const dir of [...(options.proversDirs ?? []), BUILTIN_PROVERS_DIR]) {
      const file = join(dir, ref, 'recipe.json');
      if (await exists(file)) return { recipeFile: file };
    }
  }
  throw new UniproveError('E_NOT_FOUND', {
    message: `no recipe or binary named "${ref}"`,
    hint: `Give a recipe name from provers/ (${await listRecipeNames(options).then((n) => n.join(', ') || 'none')}), a folder holding recipe.json, or a path to a binary.`,
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Names of the recipes found in the provers folders. */
export async function listRecipeNames(
  options: Pick<LoadRecipeOptions, 'proversDirs'> = {},
): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const names = new Set<string>();
  for (const dir of [...(options.proversDirs ?? []), BUILTIN_PROVERS_DIR]) {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries)
      if (e.isDirectory() && (await exists(join(dir, e.name, 'recipe.json')))) names.add(e.name);
  }
  return [...names].sort();
}

/** Parse a recipe object; throws E_CONFIG with dot-paths. */
export function parseRecipe(value: unknown, source: string): Recipe {
  const result = RecipeSchema.safeParse(value);
  if (result.success) return result.data;
  const issues = formatZodIssues(result.error);
  throw new UniproveError('E_CONFIG', {
    message: `${source} is not a valid recipe:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
    hint: 'Fix the fields named above; provers/recipe.schema.json describes every field (editors complete it).',
    details: { issues, source },
  });
}

async function resolveBinary(binary: string, baseDir: string, pathEnv: string | undefined, field: string) {
  if (binary.includes('/')) {
    const path = isAbsolute(binary) ? binary : resolve(baseDir, binary);
    const info = await stat(path).catch(() => undefined);
    if (!info) return { path, found: false as const };
    if (info.isDirectory()) {
      throw new UniproveError('E_IS_DIRECTORY', {
        message: `${field}: ${path} is a directory, not a program`,
        hint: 'Point binary at the prover executable itself.',
      });
    }
    // A FIFO would hang the first open (it waits for a writer): refused before anything opens it.
    if (!info.isFile())
      throw notRegularFile(info, path, field, 'Point binary at the prover executable itself.');
    return { path, found: true as const };
  }
  const found = await which(binary, pathEnv);
  return found ? { path: found, found: true as const } : { path: binary, found: false as const };
}

function resolveEntry(entry: FileEntrySpec, baseDir: string, field: string, source: string): ResolvedFile {
  const hostPath = isAbsolute(entry.host) ? entry.host : resolve(baseDir, entry.host);
  const guestPath = entry.guest ?? (isAbsolute(entry.host) ? entry.host : `/${basename(entry.host)}`);
  return {
    hostPath,
    guestPath: checkRecipeGuestPath(guestPath, `${field}.guest`, source, {
      rootAllowed: field.startsWith('dirs'),
    }),
    reason: entry.reason,
    replace: entry.replace ?? false,
    field,
  };
}

/** "/a//b/./c/" -> "/a/b/c": the one spelling of a guest path that collisions are found by. */
export function normaliseGuestPath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

function recipeFieldError(field: string, source: string, message: string, hint: string): UniproveError {
  return new UniproveError('E_CONFIG', {
    message: `${field}: ${message}`,
    hint,
    details: { field, source },
  });
}

/**
 * Normalise a guest path from the recipe and refuse one the package cannot hold: the image root (for a
 * file), a path where the package keeps its own files. (Absolute, no "..", names of at most 255 bytes:
 * the schema.)
 */
export function checkRecipeGuestPath(
  path: string,
  field: string,
  source: string,
  { rootAllowed = false } = {},
): string {
  const normal = normaliseGuestPath(path);
  if (normal === '/' && !rootAllowed) {
    throw recipeFieldError(
      field,
      source,
      `${JSON.stringify(path)} is the image root, not a file`,
      'Give the full guest path of the file, e.g. /data/params.bin.',
    );
  }
  const own = packageOwnPath(normal);
  if (own) {
    throw recipeFieldError(
      field,
      source,
      `${normal} is where the package keeps ${own}; a file there would be overwritten`,
      'Put the file at another guest path (e.g. under /etc or /data).',
    );
  }
  return normal;
}

function resolveDir(entry: DirEntrySpec, baseDir: string, field: string, source: string): ResolvedDir {
  const mode = entry.mode !== undefined ? Number.parseInt(entry.mode, 8) : undefined;
  if (entry.host === undefined) {
    return {
      hostPath: undefined,
      guestPath: checkRecipeGuestPath(entry.guest as string, `${field}.guest`, source, { rootAllowed: true }),
      mode: mode ?? 0o755,
      reason: entry.reason,
      replace: false,
      field,
    };
  }
  const { hostPath, guestPath } = resolveEntry(
    { host: entry.host, guest: entry.guest },
    baseDir,
    field,
    source,
  );
  return { hostPath, guestPath, mode, reason: entry.reason, replace: entry.replace ?? false, field };
}

/**
 * Load a recipe by name, folder, recipe file or bare binary path, apply
 * overrides and check it against the file system. Builds nothing.
 */
export async function loadRecipe(ref: string, options: LoadRecipeOptions = {}): Promise<ResolvedRecipe> {
  const located = await locateRecipe(ref, options);
  let raw: unknown;
  let source: string;
  let baseDir: string;
  if (located.recipeFile) {
    source = located.recipeFile;
    baseDir = dirname(located.recipeFile);
    await requireRegularFile(located.recipeFile, 'recipe');
    const text = await readFile(located.recipeFile, 'utf8');
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new UniproveError('E_CONFIG', {
        message: `${located.recipeFile} is not valid JSON: ${(error as Error).message}`,
        hint: 'Fix the JSON syntax (a trailing comma or a missing quote is the usual cause).',
        cause: error,
      });
    }
  } else {
    const binary = located.binary as string;
    source = binary;
    baseDir = options.cwd ?? process.cwd();
    raw = { name: sanitiseName(basename(binary)), binary };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UniproveError('E_CONFIG', {
      message: `${source} is not a recipe: it holds ${Array.isArray(raw) ? 'a list' : raw === null ? 'null' : `a ${typeof raw}`}, not an object`,
      hint: 'A recipe is one JSON object: { "name": ..., "binary": ... } (see provers/recipe.schema.json).',
      details: { source },
    });
  }
  const o = options.overrides ?? {};
  const rawResources = (raw as { resources?: unknown }).resources;
  const merged = {
    ...(raw as Record<string, unknown>),
    ...(o.binary ? { binary: resolve(options.cwd ?? process.cwd(), o.binary) } : {}),
    ...(o.args ? { args: o.args } : {}),
    // --memory and --cpus go through the schema's checks, as the recipe's own values do.
    ...(o.memory || o.cpus
      ? {
          resources: {
            ...(typeof rawResources === 'object' && rawResources ? rawResources : {}),
            ...(o.memory ? { memory: o.memory } : {}),
            ...(o.cpus ? { cpus: o.cpus } : {}),
          },
        }
      : {}),
  };
  const recipe = parseRecipe(merged, source);
  if (o.env) recipe.env = { ...recipe.env, ...o.env };

  const bin = await resolveBinary(recipe.binary, baseDir, options.pathEnv, 'binary');
  if (!bin.found && !recipe.build) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `binary: ${bin.path} does not exist${recipe.binary.includes('/') ? '' : ' on PATH'}`,
      hint: `Build the prover first, or pass --binary PATH to point at it.`,
      details: { field: 'binary', source },
    });
  }
  const program = checkRecipeGuestPath(recipe.program ?? `/${basename(bin.path)}`, 'program', source);
  const files = recipe.files.map((f, i) => resolveEntry(f, baseDir, `files[${i}]`, source));
  const dirs = recipe.dirs.map((d, i) => resolveDir(d, baseDir, `dirs[${i}]`, source));
  for (const f of files) {
    // A FIFO, socket or device is refused before anything opens it (a FIFO would hang the open).
    await requireRegularFile(
      f.hostPath,
      `${f.field}.host`,
      'Fix the path (relative paths are relative to the recipe folder) or remove the entry; list folders under "dirs".',
    );
  }
  for (const [i, d] of dirs.entries()) {
    if (d.hostPath === undefined) continue;
    const info = await stat(d.hostPath).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new UniproveError('E_NOT_FOUND', {
        message: `dirs[${i}].host: ${d.hostPath} is not a folder`,
        hint: 'Fix the path (relative paths are relative to the recipe folder) or remove the entry.',
        details: { field: `dirs[${i}].host`, source },
      });
    }
  }
  const root = recipe.root ? resolve(baseDir, recipe.root) : undefined;
  return {
    ...recipe,
    ...normaliseMountsAndProof(recipe, source),
    source,
    baseDir,
    binary: bin.path,
    program,
    programExplicit: recipe.program !== undefined,
    files,
    dirs,
    resources: resolveResources(recipe.resources),
    ...(root ? { root } : {}),
  };
}

/** "all" vCPUs as this host's count (the local run's; a cloud machine's is its type's). */
function resolveResources(resources: Recipe['resources']): ResolvedResources {
  const all = resources.cpus === 'all';
  return {
    memory: resources.memory,
    cpus: all ? availableParallelism() : (resources.cpus as number),
    cpusAll: all,
    threadVars: [...new Set(resources.threadVars)],
    allowUnmapDeadlock: resources.allowUnmapDeadlock,
  };
}

/**
 * The volumes' guest paths and the proof's path in their one spelling ("/tmp/output/" is "/tmp/output"), as
 * the files' are: Ops mounts, `ops image cp` and the console route's proof file all take them as written.
 * Neither can be the image root: a volume there would hide the image, and a proof there is the whole image.
 */
function normaliseMountsAndProof(recipe: Recipe, source: string): Pick<Recipe, 'volumes' | 'proof'> {
  const notRoot = (path: string, field: string, what: string, example: string) => {
    if (normaliseGuestPath(path) === '/')
      throw recipeFieldError(
        field,
        source,
        `"/" is the image root, not ${what}`,
        `Give a folder, e.g. ${example}.`,
      );
    return checkRecipeGuestPath(path, field, source);
  };
  const volumes = recipe.volumes.map((v, i) =>
    v.guestPath === undefined
      ? v
      : {
          ...v,
          guestPath: notRoot(v.guestPath, `volumes[${i}].guestPath`, 'a place to mount a volume', '/params'),
        },
  );
  const proof =
    recipe.proof.kind === 'file'
      ? {
          ...recipe.proof,
          path: notRoot(recipe.proof.path, 'proof.path', 'a proof file or folder', '/tmp/output'),
        }
      : recipe.proof;
  return { volumes, proof };
}

function sanitiseName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');
  return cleaned || 'program';
}
