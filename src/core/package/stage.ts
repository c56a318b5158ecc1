import { constants } from 'node:fs';
import { chmod, copyFile, link, mkdir, rename, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UniproveError } from '../errors.js';
import { mapLimit } from '../fs.js';
import { HashWorkers, sha256File } from '../hash.js';
import type { OpsConfigKind } from '../ops/config/build.js';
import type { FileReasons } from '../reasons.js';
import type { PackagePlan, PlanEntry } from './plan.js';

/** One line of uniprove.lock.json: a guest path, why it is there, and what `verify` checks of it. */
export interface LockEntry extends FileReasons {
  /** 'dir': a folder the recipe names, made even when empty (locks before folders hold files and symlinks only). */
  type: 'file' | 'symlink' | 'dir';
  sha256?: string;
  size?: number;
  mode?: string;
  target?: string;
  source?: string;
}

/** Where a run's proof appears, copied from the recipe so runs of the package alone know it. */
export type LockProof =
  | { kind: 'file'; path: string; maxBytes?: number }
  | { kind: 'console'; begin: string; end: string }
  | { kind: 'none' };

export interface PackageLock {
  lockVersion: 1;
  name: string;
  program: string;
  proof: LockProof;
  files: LockEntry[];
  /** The recipe's thread-count variables (resources.threadVars): a run that changes the vCPU count sets them to it. */
  threadVars?: string[];
  /** sha256 of each Ops config as written (local, gcloud): runs trust a config only while it is unchanged. */
  configs?: Partial<Record<OpsConfigKind, string>>;
}

/** A host file's identity, to skip re-hashing files that did not change. */
export interface SourceStamp {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export type HashCache = Record<string, SourceStamp>;

/** Files from this size on are hashed on worker threads; smaller ones are cheaper to hash in place. */
export const WORKER_THRESHOLD = 4 << 20;

/** Hash every plan file's source, reusing `cache` entries whose size/mtime/inode still match. */
export async function hashSources(plan: PackagePlan, cache: HashCache, signal?: AbortSignal) {
  const files = plan.entries.filter((e): e is Extract<PlanEntry, { type: 'file' }> => e.type === 'file');
  const stamps: HashCache = {};
  const modes = new Map<string, number>();
  let pool: HashWorkers | undefined;
  const hashOnPool = (path: string) => {
    pool ??= new HashWorkers();
    return pool.hashFile(path, 'sha256');
  };
  await mapLimit(files, 8, async (entry) => {
    signal?.throwIfAborted();
    const info = await stat(entry.source).catch((error: NodeJS.ErrnoException) => {
      throw new UniproveError('E_NOT_FOUND', {
        message: `${entry.source} (for ${entry.path}) cannot be read: ${error.code ?? error.message}`,
        hint: 'The file disappeared or is unreadable since discovery; run package again.',
        cause: error,
      });
    });
    if (!info.isFile()) {
      throw new UniproveError('E_IS_DIRECTORY', {
        message: `${entry.source} (for ${entry.path}) is not a regular file`,
        hint: 'List folders under "dirs" in the recipe, not "files".',
      });
    }
    modes.set(entry.source, info.mode & 0o7777);
    const old = cache[entry.source];
    if (old && old.size === info.size && old.mtimeMs === info.mtimeMs && old.ino === info.ino) {
      stamps[entry.source] = old;
      return;
    }
    stamps[entry.source] = {
      size: info.size,
      mtimeMs: info.mtimeMs,
      ino: info.ino,
      sha256: info.size >= WORKER_THRESHOLD ? await hashOnPool(entry.source) : await sha256File(entry.source),
    };
  }).finally(() => pool?.close());
  return { stamps, modes };
}

/** The lock file's content for a plan. */
export function buildLock(
  name: string,
  program: string,
  proof: LockProof,
  plan: PackagePlan,
  stamps: HashCache,
  modes: Map<string, number>,
) {
  const files: LockEntry[] = plan.entries.map((e) => {
    if (e.type === 'symlink') {
      return { path: e.path, type: 'symlink', target: e.target, reasons: e.reasons, parents: e.parents };
    }
    if (e.type === 'dir') {
      return { path: e.path, type: 'dir', mode: formatMode(e.mode), reasons: e.reasons, parents: e.parents };
    }
    const s = stamps[e.source] as SourceStamp;
    return {
      path: e.path,
      type: 'file',
      sha256: s.sha256,
      size: s.size,
      mode: formatMode(modes.get(e.source) ?? 0o644),
      source: e.source,
      reasons: e.reasons,
      parents: e.parents,
    };
  });
  const lock: PackageLock = { lockVersion: 1, name, program, proof, files };
  return lock;
}

/** A mode as the lock writes it: four octal digits. */
export function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

async function placeFile(source: string, dest: string, mode: number): Promise<'hardlink' | 'copy'> {
  try {
    await link(source, dest);
    // A hardlink shares the source's mode; only copies get the mode set below.
    return 'hardlink';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EACCES' && code !== 'EMLINK') throw error;
  }
  await copyFile(source, dest, constants.COPYFILE_FICLONE);
  await chmod(dest, mode);
  return 'copy';
}

export interface WriteTreeResult {
  hardlinks: number;
  copies: number;
  symlinks: number;
  dirs: number;
}

/** Materialise the plan's entries under `dir` (which must be empty). */
export async function writeTree(
  dir: string,
  plan: PackagePlan,
  modes: Map<string, number>,
  signal?: AbortSignal,
): Promise<WriteTreeResult> {
  const result: WriteTreeResult = { hardlinks: 0, copies: 0, symlinks: 0, dirs: 0 };
  const dirs = new Set<string>();
  for (const e of plan.entries) dirs.add(e.type === 'dir' ? join(dir, e.path) : dirname(join(dir, e.path)));
  for (const d of [...dirs].sort()) await mkdir(d, { recursive: true });
  await mapLimit(plan.entries, 16, async (e) => {
    signal?.throwIfAborted();
    const dest = join(dir, e.path);
    if (e.type === 'dir') return;
    if (e.type === 'symlink') {
      await symlink(e.target, dest);
      result.symlinks++;
    } else {
      const how = await placeFile(e.source, dest, modes.get(e.source) ?? 0o644);
      if (how === 'hardlink') result.hardlinks++;
      else result.copies++;
    }
  });
  // Folder modes last, deepest first: a read-only folder must be filled before it is closed.
  const folders = plan.entries.filter((e): e is Extract<PlanEntry, { type: 'dir' }> => e.type === 'dir');
  for (const e of folders.sort((a, b) => (a.path < b.path ? 1 : a.path > b.path ? -1 : 0))) {
    await chmod(join(dir, e.path), e.mode);
    result.dirs++;
  }
  return result;
}

/**
 * Replace `out` with the finished `staging` folder. The old package, if any,
 * is moved aside first and removed only once the new one is in place.
 */
export async function swapIntoPlace(staging: string, out: string): Promise<void> {
  const old = `${out}.old-${process.pid}-${Date.now()}`;
  const hadOld = await stat(out).then(
    () => true,
    () => false,
  );
  if (hadOld) await rename(out, old);
  try {
    await rename(staging, out);
  } catch (error) {
    if (hadOld) await rename(old, out).catch(() => {});
    throw error;
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}
