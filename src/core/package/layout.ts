/**
 * Reading a package folder without loading what builds one: `uniprove run <package>`
 * starts here, and every module it loads comes before QEMU starts.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { parseJsonFile, refuseSpecialFile } from '../fs.js';
import { sha256Of } from '../hash.js';
import type { OpsConfigKind } from '../ops/config/build.js';
import type { OpsConfig } from '../ops/config/schema.js';
import type { PackageLock } from './stage.js';

export const LOCK_FILE = 'uniprove.lock.json';

/**
 * What a package folder holds besides the image tree, by guest path: a recipe file placed there would be
 * overwritten by the package's own (one Ops config per kind, local and gcloud; the lock; the state folder).
 */
export const PACKAGE_OWN_PATHS: Readonly<Record<string, string>> = {
  '/local.json': 'the Ops config for local runs (local.json)',
  '/gcloud.json': 'the Ops config for Google Cloud (gcloud.json)',
  [`/${LOCK_FILE}`]: `the lock file (${LOCK_FILE})`,
  '/.uniprove': 'what it remembers between runs (.uniprove/)',
};

/** What the package itself keeps at `guestPath` (or above it), or undefined when the path is free. */
export function packageOwnPath(guestPath: string): string | undefined {
  for (const [own, what] of Object.entries(PACKAGE_OWN_PATHS)) {
    if (guestPath === own || guestPath.startsWith(`${own}/`)) return what;
  }
  return undefined;
}

/** True when `dir` is a package folder: a lock file and the Ops config of `kind` (local.json, gcloud.json). */
export async function isPackageDir(dir: string, kind: OpsConfigKind = 'local'): Promise<boolean> {
  const [config, lock] = await Promise.all([
    stat(join(dir, `${kind}.json`)).catch(() => undefined),
    stat(join(dir, LOCK_FILE)).catch(() => undefined),
  ]);
  return Boolean(config?.isFile() && lock?.isFile());
}

/** sha256 (hex) of a config's text, as the lock records it. */
export function configDigest(text: string): string {
  return sha256Of(text);
}

/** A package's lock file, parsed. */
export async function readPackageLock(dir: string): Promise<PackageLock> {
  return (await readPackageLockText(dir)).lock;
}

/** A package's lock file, parsed, with its text (whose digest keys a Compute Engine image). */
export async function readPackageLockText(dir: string): Promise<{ lock: PackageLock; text: string }> {
  const path = join(dir, LOCK_FILE);
  await refuseSpecialFile(path, 'lock file', 'Package again with `uniprove package <recipe>`.');
  try {
    const text = await readFile(path, 'utf8');
    return { lock: JSON.parse(text) as PackageLock, text };
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `${path} is not a readable lock file: ${(error as Error).message}`,
      hint: 'Package again with `uniprove package <recipe>` (it rewrites the lock).',
      cause: error,
    });
  }
}

/** The bytes of the files a package holds, from its lock. */
export function packageBytes(lock: Pick<PackageLock, 'files'>): number {
  return (lock.files ?? []).reduce((n, f) => n + (f.size ?? 0), 0);
}

/**
 * A package's Ops config of `kind` (local, gcloud). A config whose bytes are the ones `uniprove package`
 * validated and wrote (its digest is in the lock) is taken as it is; any other (edited by hand,
 * or from a package older than the digests) goes through the full schema, which is loaded only then.
 */
export async function readPackageConfig(
  dir: string,
  lock: Pick<PackageLock, 'configs'>,
  kind: OpsConfigKind = 'local',
): Promise<OpsConfig> {
  const path = join(dir, `${kind}.json`);
  await refuseSpecialFile(path, 'Ops config', 'Package again with `uniprove package <recipe>`.');
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw new UniproveError('E_CONFIG', {
      message: `${path} cannot be read: ${(error as Error).message}`,
      hint: 'Package again with `uniprove package <recipe>`.',
      cause: error,
    });
  });
  const value = parseJsonFile(text, path, 'Fix the file, or package again with `uniprove package <recipe>`.');
  if (lock.configs?.[kind] === configDigest(text)) return value as OpsConfig;
  const { parseOpsConfig } = await import('../ops/config/schema.js');
  return parseOpsConfig(value, path);
}
