/**
 * Reading a package folder without loading what builds one: `uniprove run <package>`
 * starts here, and every module it loads comes before QEMU starts.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { parseJsonFile, refuseSpecialFile } from '../fs.js';
import { sha256Of } from '../hash.js';
import type { OpsConfigKind } from '../manifest/build.js';
import type { OpsConfig } from '../manifest/schema.js';
import { LOCK_FILE } from '../recipe/reserved-paths.js';
import type { PackageLock } from './stage.js';

export { LOCK_FILE, packageOwnPath } from '../recipe/reserved-paths.js';

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
  let text: string;
  let value: unknown;
  try {
    text = await readFile(path, 'utf8');
    value = JSON.parse(text);
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `${path} is not a readable lock file: ${(error as Error).message}`,
      hint: 'Package again with `uniprove package <recipe>` (it rewrites the lock).',
      cause: error,
    });
  }
  const issues = lockIssues(value);
  if (issues.length > 0) {
    throw new UniproveError('E_CONFIG', {
      message: `${path} is not a valid lock file:\n${issues.map((i) => `  ${i}`).join('\n')}`,
      hint: 'Package again with `uniprove package <recipe>` (it rewrites the lock); a lock edited by hand must keep its types.',
      details: { issues, path },
    });
  }
  return { lock: value as PackageLock, text };
}

/**
 * What is wrong with the types of a parsed lock, as dot-paths (`files[3].path: not a string`): every reader
 * of a lock (run, verify, why) then trusts its shape. Fields a lock may lack are checked only when present.
 */
export function lockIssues(value: unknown): string[] {
  const issues: string[] = [];
  const kind = (v: unknown) =>
    Array.isArray(v)
      ? 'an array'
      : v === null
        ? 'null'
        : typeof v === 'object'
          ? 'an object'
          : `a ${typeof v}`;
  const want = (at: string, v: unknown, type: 'string' | 'number' | 'object' | 'array', optional = false) => {
    if (v === undefined && optional) return false;
    const ok =
      type === 'array'
        ? Array.isArray(v)
        : type === 'object'
          ? typeof v === 'object' && v !== null && !Array.isArray(v)
          : typeof v === type;
    if (!ok)
      issues.push(
        `${at}: expected ${type === 'array' || type === 'object' ? `an ${type}` : `a ${type}`}, got ${kind(v)}`,
      );
    return ok;
  };
  if (!want('(the lock)', value, 'object')) return issues;
  const lock = value as Record<string, unknown>;
  want('name', lock.name, 'string', true);
  want('program', lock.program, 'string');
  if (want('proof', lock.proof, 'object', true))
    want('proof.kind', (lock.proof as { kind?: unknown }).kind, 'string');
  if (want('files', lock.files, 'array')) {
    (lock.files as unknown[]).forEach((f, i) => {
      if (!want(`files[${i}]`, f, 'object')) return;
      const e = f as Record<string, unknown>;
      want(`files[${i}].path`, e.path, 'string');
      want(`files[${i}].type`, e.type, 'string', true);
      for (const key of ['sha256', 'mode', 'target', 'source'] as const)
        want(`files[${i}].${key}`, e[key], 'string', true);
      want(`files[${i}].size`, e.size, 'number', true);
      for (const key of ['reasons', 'parents'] as const) {
        if (want(`files[${i}].${key}`, e[key], 'array', true))
          for (const [j, r] of (e[key] as unknown[]).entries()) want(`files[${i}].${key}[${j}]`, r, 'string');
      }
    });
  }
  if (want('threadVars', lock.threadVars, 'array', true))
    for (const [i, v] of (lock.threadVars as unknown[]).entries()) want(`threadVars[${i}]`, v, 'string');
  if (want('configs', lock.configs, 'object', true)) {
    for (const [k, v] of Object.entries(lock.configs as object)) want(`configs.${k}`, v, 'string');
  }
  return issues;
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
  const { parseOpsConfig } = await import('../manifest/schema.js');
  return parseOpsConfig(value, path);
}
