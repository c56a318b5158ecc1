/**
 * The content-addressed parameter cache:
 *
 *   <cache>/params/<algorithm>/<hex>            a verified file (read-only)
 *   <cache>/params/<algorithm>/<hex>.verified   stat stamp of the last full hash
 *   <cache>/params/partial/<algorithm>-<hex>    a resumable download (+ .json: url, ETag, size)
 *   <cache>/params/invalid/<name>-invalid-digest  a download that failed its digest, kept for inspection
 *   <cache>/volumes/registry.json               Ops volumes built from sets
 *
 * A file only enters params/<algorithm>/ by rename after its digest matched,
 * so nothing there is ever half-written.
 */
import { readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../fs.js';
import { type DigestAlgorithm, digestOfFile, parseDigest } from './digest.js';

/** Paths of one file in the cache. */
export interface CachePaths {
  blob: string;
  stamp: string;
  partial: string;
  partialMeta: string;
}

/** Where a file with this digest lives in the cache. */
export function cachePaths(cacheDir: string, digest: string): CachePaths {
  const { algorithm, hex } = parseDigest(digest);
  const partial = join(cacheDir, 'params', 'partial', `${algorithm}-${hex}`);
  const blob = join(cacheDir, 'params', algorithm, hex);
  return { blob, stamp: `${blob}.verified`, partial, partialMeta: `${partial}.json` };
}

/** The folder for downloads that failed their digest. */
export function invalidDir(cacheDir: string): string {
  return join(cacheDir, 'params', 'invalid');
}

/** The folder for resumable partial downloads. */
export function partialDir(cacheDir: string): string {
  return join(cacheDir, 'params', 'partial');
}

interface Stamp {
  digest: string;
  size: number;
  mtimeMs: number;
  ino: number;
  verifiedAt: string;
}

/** How thoroughly to re-check files already in the cache. */
export type VerifyMode = 'quick' | 'full';

export type CacheCheck =
  | { state: 'ok'; size: number; rehashed: boolean }
  | { state: 'missing' }
  | { state: 'bad'; actual: string };

/**
 * Check a cached file. `quick` trusts a stamp whose size, mtime and inode
 * still match the file (hardlinks share them, so editing a linked copy
 * invalidates it); anything else, and `full`, re-hashes the file.
 */
export async function checkCached(
  paths: CachePaths,
  digest: string,
  mode: VerifyMode,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<CacheCheck> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(paths.blob);
  } catch {
    return { state: 'missing' };
  }
  if (mode === 'quick') {
    try {
      const stamp = JSON.parse(await readFile(paths.stamp, 'utf8')) as Stamp;
      if (
        stamp.digest === digest &&
        stamp.size === info.size &&
        stamp.mtimeMs === info.mtimeMs &&
        stamp.ino === info.ino
      ) {
        return { state: 'ok', size: info.size, rehashed: false };
      }
    } catch {
      // no stamp or unreadable: hash the file
    }
  }
  const actual = await digestOfFile(paths.blob, parseDigest(digest).algorithm as DigestAlgorithm, options);
  if (actual !== digest) return { state: 'bad', actual };
  await writeStamp(paths, digest);
  return { state: 'ok', size: info.size, rehashed: true };
}

/** Record that the file at paths.blob was hashed and matched. */
export async function writeStamp(paths: CachePaths, digest: string): Promise<void> {
  const info = await stat(paths.blob);
  const stamp: Stamp = {
    digest,
    size: info.size,
    mtimeMs: info.mtimeMs,
    ino: info.ino,
    verifiedAt: new Date().toISOString(),
  };
  await writeJsonAtomic(paths.stamp, stamp);
}

/** Move a file that failed its digest aside as <invalid>/<name>-invalid-digest; returns the new path. */
export async function keepAsInvalid(cacheDir: string, from: string, name: string): Promise<string> {
  const { mkdir } = await import('node:fs/promises');
  const dir = invalidDir(cacheDir);
  await mkdir(dir, { recursive: true });
  const to = join(dir, `${name}-invalid-digest`);
  await rm(to, { force: true });
  await rename(from, to);
  return to;
}

/** Remove a file if present. */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
