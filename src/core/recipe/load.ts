/**
 * Finding, parsing and resolving prover recipes.
 *
 * Steps, as in STYLE.md: parse (zod, dot-path errors), normalise (absolute
 * host paths, defaults), then check against the world (the binary exists and
 * is a file, every listed file exists) before anything is written.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UniproveError } from '../errors.js';
import { which } from '../exec.js';
import { formatZodIssues } from '../manifest/ops-config.js';
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
  cpus?: number;
}

/** A file to put in the image, host path resolved. */
export interface ResolvedFile {
  hostPath: string;
  guestPath: string;
  reason: string | undefined;
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
}

/** A recipe with every path absolute and every default filled in. */
export interface ResolvedRecipe extends Omit<Recipe, 'files' | 'dirs' | 'binary' | 'program'> {
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
    return { path, found: true as const };
  }
  const found = await which(binary, pathEnv);
  return found ? { path: found, found: true as const } : { path: binary, found: false as const };
}

function resolveEntry(entry: FileEntrySpec, baseDir: string): ResolvedFile {
  const hostPath = isAbsolute(entry.host) ? entry.host : resolve(baseDir, entry.host);
  const guestPath = entry.guest ?? (isAbsolute(entry.host) ? entry.host : `/${basename(entry.host)}`);
  return { hostPath, guestPath, reason: entry.reason };
}

function resolveDir(entry: DirEntrySpec, baseDir: string): ResolvedDir {
  const mode = entry.mode !== undefined ? Number.parseInt(entry.mode, 8) : undefined;
  if (entry.host === undefined) {
    return {
      hostPath: undefined,
      guestPath: trimSlash(entry.guest as string),
      mode: mode ?? 0o755,
      reason: entry.reason,
    };
  }
  const { hostPath, guestPath } = resolveEntry({ host: entry.host, guest: entry.guest }, baseDir);
  return { hostPath, guestPath: trimSlash(guestPath), mode, reason: entry.reason };
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
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
  const o = options.overrides ?? {};
  const merged = {
    ...(raw as Record<string, unknown>),
    ...(o.binary ? { binary: resolve(options.cwd ?? process.cwd(), o.binary) } : {}),
    ...(o.args ? { args: o.args } : {}),
  };
  const recipe = parseRecipe(merged, source);
  if (o.env) recipe.env = { ...recipe.env, ...o.env };
  if (o.memory) recipe.resources.memory = o.memory;
  if (o.cpus) recipe.resources.cpus = o.cpus;

  const bin = await resolveBinary(recipe.binary, baseDir, options.pathEnv, 'binary');
  if (!bin.found && !recipe.build) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `binary: ${bin.path} does not exist${recipe.binary.includes('/') ? '' : ' on PATH'}`,
      hint: `Build the prover first, or pass --binary PATH to point at it.`,
      details: { field: 'binary', source },
    });
  }
  const files = recipe.files.map((f) => resolveEntry(f, baseDir));
  const dirs = recipe.dirs.map((d) => resolveDir(d, baseDir));
  for (const [i, f] of files.entries()) {
    if (!(await exists(f.hostPath))) {
      throw new UniproveError('E_NOT_FOUND', {
        message: `files[${i}].host: ${f.hostPath} does not exist`,
        hint: 'Fix the path (relative paths are relative to the recipe folder) or remove the entry.',
        details: { field: `files[${i}].host`, source },
      });
    }
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
    source,
    baseDir,
    binary: bin.path,
    program: recipe.program ?? `/${basename(bin.path)}`,
    programExplicit: recipe.program !== undefined,
    files,
    dirs,
    ...(root ? { root } : {}),
  };
}

function sanitiseName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');
  return cleaned || 'program';
}
