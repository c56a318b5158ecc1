/**
 * A parameter set from files already on disk: parameters made locally
 * (rust-fil-proofs' paramcache), or copied onto an air-gapped host. Each file
 * is hashed and gets a file:// URL, so `volume fetch` verifies and caches it
 * like any download.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mapLimit } from '../concurrency.js';
import { UniproveError } from '../errors.js';
import { type DigestAlgorithm, digestOfFile } from './digest.js';
import type { ParameterSetSpec } from './spec.js';

export interface SetFromDirectoryOptions {
  name: string;
  /** Guest folder the volume is mounted at. */
  mountPath?: string;
  algorithm?: DigestAlgorithm;
  description?: string;
  signal?: AbortSignal;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(path)));
    else if (e.isFile()) out.push(path);
  }
  return out;
}

/** Describe every file under `dir` as a parameter set (sizes, digests, file:// URLs). */
export async function setFromDirectory(
  dir: string,
  options: SetFromDirectoryOptions,
): Promise<ParameterSetSpec> {
  const root = resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `${dir} is not a folder`,
      hint: 'Give the folder that holds the parameter files.',
    });
  }
  const paths = await listFiles(root);
  if (paths.length === 0) {
    throw new UniproveError('E_USAGE', {
      message: `${dir} holds no files`,
      hint: 'Give the folder that holds the parameter files.',
    });
  }
  const algorithm = options.algorithm ?? 'sha256';
  const files = await mapLimit(paths, 4, async (path) => {
    const rel = relative(root, path).split('\\').join('/');
    const name = rel.split('/').pop() as string;
    return {
      name,
      ...(rel !== name ? { path: rel } : {}),
      size: (await stat(path)).size,
      digest: await digestOfFile(path, algorithm, options.signal ? { signal: options.signal } : {}),
      urls: [pathToFileURL(path).href],
    };
  });
  return {
    $schema: './parameter-set.schema.json',
    name: options.name,
    ...(options.description ? { description: options.description } : {}),
    mountPath: options.mountPath ?? '/var/tmp/filecoin-proof-parameters',
    files,
  } as ParameterSetSpec;
}
