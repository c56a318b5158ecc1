/**
 * The tree the discovery run works in: a scratch copy of the recipe's own files and folders at their
 * guest paths, with the working directory the guest will have. The program may rewrite or delete its
 * inputs there; the recipe folder, whose bytes go into the package, is never touched.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mapLimit } from '../concurrency.js';
import { makeTempDir } from '../fs.js';
import type { PlanDir } from './plan.js';

export interface ProbeTree {
  /** The scratch root: guest path /x is <root>/x. */
  root: string;
  /** Where the program starts: <root>/<guest cwd>. */
  cwd: string;
  /** Remove the scratch tree. */
  remove(): Promise<void>;
}

/** The program's working directory in the guest: the manifest's cwd (Ops ManifestPassthrough), else /. */
export function guestCwd(manifestPassthrough: Record<string, unknown>): string {
  const cwd = manifestPassthrough.cwd;
  return typeof cwd === 'string' && cwd.startsWith('/') && !cwd.split('/').includes('..') ? cwd : '/';
}

/**
 * Copy the recipe's files (guest path -> host path) and folders into a new scratch tree. Copies are
 * reflinks where the file system has them (no bytes copied until one side writes), full copies elsewhere.
 */
export async function makeProbeTree(
  files: ReadonlyMap<string, string>,
  dirs: readonly PlanDir[],
  cwd: string,
  signal?: AbortSignal,
): Promise<ProbeTree> {
  const root = await makeTempDir('uniprove-probe-tree-');
  const remove = () => rm(root, { recursive: true, force: true });
  try {
    const folders = new Set<string>([join(root, cwd)]);
    for (const d of dirs) folders.add(join(root, d.path));
    for (const guest of files.keys()) folders.add(dirname(join(root, guest)));
    for (const f of [...folders].sort()) await mkdir(f, { recursive: true });
    await mapLimit([...files], 8, async ([guest, host]) => {
      signal?.throwIfAborted();
      // copyFile keeps the source's mode; the copy is the program's to change.
      await copyFile(host, join(root, guest), constants.COPYFILE_FICLONE);
    });
  } catch (error) {
    await remove();
    throw error;
  }
  return { root, cwd: join(root, cwd), remove };
}
