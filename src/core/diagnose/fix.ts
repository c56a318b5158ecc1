/**
 * Closing the loop from a diagnosis to a working package: what a package's
 * image holds (for `uniprove debug --package`), and adding the files a
 * diagnosis found missing to the recipe as explicit entries.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { parseJsonFile, readJsonIfExists, stableJson, writeFileAtomic } from '../fs.js';
import { parseOpsConfig } from '../manifest/schema.js';
import { type PackageState, packageStatePath } from '../package/discovery-cache.js';
import { LOCK_FILE } from '../package/layout.js';
import type { PackageLock } from '../package/stage.js';
import type { FixEntry, FixFolder } from './findings.js';
import type { ImageContents } from './image-contents.js';

/** The image a package builds: its files (guest -> host source), its mounts and manifest flags. */
export async function imageFromPackage(dir: string): Promise<ImageContents> {
  const lock = await readJsonIfExists<PackageLock>(join(dir, LOCK_FILE));
  const configText = await readFile(join(dir, 'local.json'), 'utf8').catch(() => undefined);
  if (!lock || configText === undefined) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `${dir} is not a uniprove package (no ${LOCK_FILE} or local.json)`,
      hint: 'Pass the folder `uniprove package` wrote (build/<recipe>).',
    });
  }
  const config = parseOpsConfig(parseJsonFile(configText, join(dir, 'local.json')), join(dir, 'local.json'));
  const files = new Map<string, string | undefined>();
  for (const f of lock.files) if (f.type !== 'dir') files.set(f.path, f.source ?? join(dir, f.path));
  const mounts = Object.entries(config.Mounts ?? {}).map(([volume, value]) => {
    const [path = '', flag] = value.split(':');
    return { volume, path, readonly: flag === 'ro' };
  });
  const flags: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.ManifestPassthrough ?? {}))
    if (typeof v === 'string') flags[k] = v;
  for (const d of config.Debugflags ?? []) flags[d] = 't';
  if (config.RebootOnExit) flags.reboot_on_exit = 't';
  return { files, mounts, flags };
}

/** The recipe file a package was made from, if it was made from one. */
export async function recipeOfPackage(dir: string): Promise<string | undefined> {
  const state = await readJsonIfExists<PackageState>(packageStatePath(dir));
  return state?.source?.endsWith('.json') ? state.source : undefined;
}

export interface RecipeChange {
  added: FixEntry[];
  /** Entries already in the recipe, left as they were. */
  present: FixEntry[];
  /** Folders added to the recipe's `dirs`. */
  addedFolders: FixFolder[];
  /** Folders the recipe's `dirs` already names. */
  presentFolders: FixFolder[];
}

/**
 * Add entries to a recipe file's `files` and empty folders to its `dirs` (atomically), skipping guest
 * paths it already lists.
 */
export async function addFilesToRecipe(
  recipeFile: string,
  entries: readonly FixEntry[],
  folders: readonly FixFolder[] = [],
): Promise<RecipeChange> {
  let recipe: {
    files?: { host: string; guest?: string; reason?: string }[];
    dirs?: { host?: string; guest?: string; reason?: string }[];
  } & Record<string, unknown>;
  try {
    recipe = parseJsonFile(await readFile(recipeFile, 'utf8'), recipeFile) as typeof recipe;
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `cannot read the recipe ${recipeFile}: ${(error as Error).message}`,
      hint: 'Fix the recipe file, then run debug --fix again.',
      cause: error,
    });
  }
  const files = [...(recipe.files ?? [])];
  const guests = new Set(files.map((f) => f.guest ?? f.host));
  const change: RecipeChange = { added: [], present: [], addedFolders: [], presentFolders: [] };
  for (const e of entries) {
    if (guests.has(e.guestPath)) {
      change.present.push(e);
      continue;
    }
    files.push({ host: e.hostPath, guest: e.guestPath, reason: e.reason });
    guests.add(e.guestPath);
    change.added.push(e);
  }
  const dirs = [...(recipe.dirs ?? [])];
  const dirGuests = new Set(dirs.map((d) => (d.guest ?? d.host ?? '').replace(/\/+$/, '')));
  for (const f of folders) {
    if (dirGuests.has(f.guestPath)) {
      change.presentFolders.push(f);
      continue;
    }
    dirs.push({ guest: f.guestPath, reason: f.reason });
    dirGuests.add(f.guestPath);
    change.addedFolders.push(f);
  }
  if (change.added.length || change.addedFolders.length) {
    await writeFileAtomic(recipeFile, stableJson({ ...recipe, files, ...(dirs.length ? { dirs } : {}) }));
  }
  return change;
}

/** The host path of the program a package was made from. */
export async function programOfPackage(dir: string): Promise<string | undefined> {
  const lock = await readJsonIfExists<PackageLock>(join(dir, LOCK_FILE));
  return lock?.files.find((f) => f.path === lock.program && f.type === 'file')?.source;
}
