import { constants } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, rename, rm, stat, symlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mapLimit } from '../concurrency.js';
import type { DiscoverWarning } from '../discover/types.js';
import { UniproveError } from '../errors.js';
import { HashWorkers, sha256File } from '../hash.js';
import type { OpsConfigKind } from '../manifest/build.js';
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

/** The plan's files with their host sources. */
function planFiles(plan: PackagePlan) {
  return plan.entries.filter((e): e is Extract<PlanEntry, { type: 'file' }> => e.type === 'file');
}

/** Hash every plan file's source, reusing `cache` entries whose size/mtime/inode still match. */
export async function hashSources(plan: PackagePlan, cache: HashCache, signal?: AbortSignal) {
  const files = planFiles(plan);
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

/**
 * What the package's own copy of a file was when it was staged. A later stat that differs (a write or truncate
 * moves the mtime to now, chmod the mode, a replacement the inode) means the copy was changed in place.
 */
export interface CopyStamp {
  size: number;
  mtimeMs: number;
  ino: number;
  mode: number;
  /** The digest of the bytes copied (the source's, checked unchanged across the copy). */
  sha256: string;
}

/** Guest path -> the stamp of the package's copy, as the last staging left it. */
export type TreeStamps = Record<string, CopyStamp>;

/**
 * Copy a host file into the package: a reflink where the file system has them (btrfs, XFS), a full copy
 * elsewhere, never a hard link, so no write into the package reaches the host's file and no rewrite of the
 * host's file reaches the package. The copy takes the source's mode and mtime (as `cp -a`): a later write into
 * it moves its mtime to now, which the next `package` sees.
 */
async function copyIn(source: string, dest: string, mode: number, stamp: SourceStamp): Promise<CopyStamp> {
  await copyFile(source, dest, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
  await chmod(dest, mode);
  await utimes(dest, stamp.mtimeMs / 1000, stamp.mtimeMs / 1000);
  const [after, copy] = await Promise.all([stat(source), lstat(dest)]);
  if (after.size !== stamp.size || after.mtimeMs !== stamp.mtimeMs || after.ino !== stamp.ino) {
    throw new UniproveError('E_DIGEST_MISMATCH', {
      message: `${source} changed while it was copied into the package; the copy may not hold the bytes the lock records`,
      hint: 'Run package again once nothing writes to the file.',
      details: { path: source },
    });
  }
  return {
    size: copy.size,
    mtimeMs: copy.mtimeMs,
    ino: copy.ino,
    mode: copy.mode & 0o7777,
    sha256: stamp.sha256,
  };
}

/** A copy the old package holds, checked unchanged: its path there and its stamp. */
export interface KeptCopy {
  path: string;
  stamp: CopyStamp;
}

/**
 * Place a file of the plan: the old package's copy where it is unchanged, linked from the old folder (both are
 * the package's own files and the old folder goes at the swap), so a rebuild copies only what changed; else a
 * fresh copy of the source.
 */
async function placeFile(
  e: Extract<PlanEntry, { type: 'file' }>,
  dest: string,
  sources: { stamps: HashCache; modes: Map<string, number> },
  kept: KeptCopy | undefined,
): Promise<{ stamp: CopyStamp; reused: boolean }> {
  if (kept) {
    const linked = await link(kept.path, dest).then(
      () => true,
      () => false,
    );
    if (linked) return { stamp: kept.stamp, reused: true };
  }
  const stamp = sources.stamps[e.source] as SourceStamp;
  return { stamp: await copyIn(e.source, dest, sources.modes.get(e.source) ?? 0o644, stamp), reused: false };
}

/** What the package folder already holds of the plan's files, against the stamps its last staging recorded. */
export interface TreeCheck {
  /** Guest path -> the package's copy, unchanged since staged and holding the bytes and mode the plan wants. */
  intact: Map<string, KeptCopy>;
  /** Guest paths whose copy was written, truncated, chmod'ed or replaced since it was staged. */
  changed: string[];
  /** Guest paths whose file in the package is its host source itself (a hard link an older uniprove made). */
  linked: string[];
}

/** Stat the package's files at `out` (one stat each; no bytes read) and sort them into intact, changed and linked. */
export async function checkTree(
  out: string,
  plan: PackagePlan,
  sources: { stamps: HashCache; modes: Map<string, number> },
  tree: TreeStamps | undefined,
): Promise<TreeCheck> {
  const check: TreeCheck = { intact: new Map(), changed: [], linked: [] };
  await mapLimit(planFiles(plan), 16, async (e) => {
    const path = join(out, e.path);
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isFile()) return;
    const was = tree?.[e.path];
    if (was && was.size === info.size && was.mtimeMs === info.mtimeMs && was.ino === info.ino) {
      if ((info.mode & 0o7777) !== was.mode) check.changed.push(e.path);
      else if (was.sha256 === sources.stamps[e.source]?.sha256 && was.mode === sources.modes.get(e.source))
        check.intact.set(e.path, { path, stamp: was });
      return;
    }
    const host = await stat(e.source).catch(() => undefined);
    if (host && host.dev === info.dev && host.ino === info.ino) check.linked.push(e.path);
    else if (was) check.changed.push(e.path);
  });
  check.changed.sort();
  check.linked.sort();
  return check;
}

/** The findings of a tree check, as package warnings: what staging replaces and why. */
export function treeWarnings(check: TreeCheck): DiscoverWarning[] {
  const some = (paths: string[]) =>
    `${paths.slice(0, 3).join(', ')}${paths.length > 3 ? ` and ${paths.length - 3} more` : ''}`;
  const warnings: DiscoverWarning[] = [];
  const [linked, changed] = [check.linked, check.changed];
  if (linked[0]) {
    warnings.push({
      code: 'package-hardlinks-replaced',
      message: `${linked.length} file${linked.length === 1 ? ' was a hard link' : 's were hard links'} to the host's own (${some(linked)}), as an older uniprove staged them: a write into the package would have written into the host's file; replaced with copies`,
      path: linked[0],
    });
  }
  if (changed[0]) {
    warnings.push({
      code: 'package-file-changed',
      message: `${changed.length} file${changed.length === 1 ? '' : 's'} of the package changed since staged (${some(changed)}): copied again from the source`,
      path: changed[0],
    });
  }
  return warnings;
}

export interface WriteTreeResult {
  /** Files copied from their host sources. */
  copies: number;
  /** Files the old package held unchanged, placed again without a copy. */
  reused: number;
  symlinks: number;
  dirs: number;
  /** The stamp of every file's copy, for the next check. */
  tree: TreeStamps;
}

/**
 * Materialise the plan's entries under `dir` (which must be empty): each file a copy of its source, or the old
 * package's copy where `reuse` has one for its guest path.
 */
export async function writeTree(
  dir: string,
  plan: PackagePlan,
  sources: { stamps: HashCache; modes: Map<string, number> },
  reuse: ReadonlyMap<string, KeptCopy>,
  signal?: AbortSignal,
): Promise<WriteTreeResult> {
  const result: WriteTreeResult = { copies: 0, reused: 0, symlinks: 0, dirs: 0, tree: {} };
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
      return;
    }
    const placed = await placeFile(e, dest, sources, reuse.get(e.path));
    result.tree[e.path] = placed.stamp;
    if (placed.reused) result.reused++;
    else result.copies++;
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
