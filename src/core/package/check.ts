/**
 * Is a package folder still what its lock says? A run or verify of a package folder builds or runs what is on
 * disk: a library flipped, truncated or deleted since `uniprove package` would boot as it is (and a missing one
 * Ops quietly replaces with the host's copy), so the package is checked against uniprove.lock.json first. Each
 * file's type, size and mode always; its sha256 where the stamp `package` left for its copy (size, mtime, inode)
 * no longer matches, or always with `digests`. One stat a file when nothing changed.
 */
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { mapLimit } from '../concurrency.js';
import { UniproveError } from '../errors.js';
import { readJsonIfExists } from '../fs.js';
import { sha256File } from '../hash.js';
import { formatMode, type LockEntry, type PackageLock, type TreeStamps } from './stage.js';

/** What was checked, and how many files had to be hashed. */
export interface PackageCheckResult {
  files: number;
  hashed: number;
}

export interface PackageCheckOptions {
  /** Hash every file, whatever its stamp says. */
  digests?: boolean;
  signal?: AbortSignal;
}

/** The stamps `uniprove package` left for the package's copies (.uniprove/state.json), if it left any. */
async function treeStamps(dir: string): Promise<TreeStamps> {
  const state = await readJsonIfExists<{ tree?: TreeStamps }>(join(dir, '.uniprove', 'state.json')).catch(
    () => undefined,
  );
  return state?.tree && typeof state.tree === 'object' ? state.tree : {};
}

/** What differs between a lock entry and the package's file, or undefined when it matches. */
async function difference(
  dir: string,
  entry: LockEntry,
  stamps: TreeStamps,
  options: PackageCheckOptions,
  hashed: { n: number },
): Promise<string | undefined> {
  const path = join(dir, entry.path);
  const info = await lstat(path).catch(() => undefined);
  if (!info) return 'is missing';
  if (entry.type === 'symlink') {
    if (!info.isSymbolicLink()) return 'is no longer a symbolic link';
    const target = await readlink(path);
    return target === entry.target ? undefined : `points to ${target}, not ${entry.target}`;
  }
  if (entry.type === 'dir') return info.isDirectory() ? undefined : 'is no longer a folder';
  if (!info.isFile()) return 'is no longer a regular file';
  if (entry.size !== undefined && info.size !== entry.size)
    return `has ${info.size} bytes, not ${entry.size}`;
  const mode = formatMode(info.mode & 0o7777);
  if (entry.mode && mode !== entry.mode) return `has mode ${mode}, not ${entry.mode}`;
  const stamp = stamps[entry.path];
  const unchanged =
    stamp && stamp.size === info.size && stamp.mtimeMs === info.mtimeMs && stamp.ino === info.ino;
  if (unchanged && !options.digests) return undefined;
  if (!entry.sha256) return undefined;
  hashed.n++;
  const sha = await sha256File(path, options.signal);
  return sha === entry.sha256
    ? undefined
    : `holds other bytes (sha256 ${sha.slice(0, 12)}…, not ${entry.sha256.slice(0, 12)}…)`;
}

/**
 * Check a package folder's files against its lock; throws E_PACKAGE_CHANGED naming each file that differs and
 * how (the run or verify would not be of the package the lock describes).
 */
export async function checkPackageFiles(
  dir: string,
  lock: Pick<PackageLock, 'files'>,
  options: PackageCheckOptions = {},
): Promise<PackageCheckResult> {
  const files = Array.isArray(lock.files) ? lock.files : [];
  const stamps = await treeStamps(dir);
  const hashed = { n: 0 };
  const problems: string[] = [];
  await mapLimit(files, 8, async (entry) => {
    options.signal?.throwIfAborted();
    if (!entry || typeof entry.path !== 'string') return;
    const why = await difference(dir, entry, stamps, options, hashed);
    if (why) problems.push(`${entry.path} ${why}`);
  });
  if (problems.length > 0) {
    problems.sort();
    const shown = problems.slice(0, 5);
    throw new UniproveError('E_PACKAGE_CHANGED', {
      message: `package ${dir} is not what its lock (uniprove.lock.json) says: ${shown.join('; ')}${problems.length > shown.length ? `; and ${problems.length - shown.length} more` : ''}`,
      hint: "Package it again from its recipe (`uniprove package <recipe>` copies every changed file from its source), or restore the files. A package whose files differ from its lock would boot something other than what was packaged (and Ops would put the host's copy of a missing library in the image).",
      details: { package: dir, files: problems.map((p) => p.split(' ')[0]) },
    });
  }
  return { files: files.length, hashed: hashed.n };
}
