/** Symlink chains: how discovery and the package plan recreate a library's links in the image. */
import { lstat, readlink, realpath } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { UniproveError } from '../errors.js';

/**
 * The symlink chain of a path inside a root: [path, next, ..., real].
 * Only the last component is followed at each step, so each link can be
 * recreated as a file symlink in the image.
 */
export async function symlinkChain(path: string, root = '/'): Promise<string[]> {
  const chain = [path];
  let current = path;
  for (let hops = 0; hops < 40; hops++) {
    const host = root === '/' ? current : join(root, current);
    const info = await lstat(host).catch(() => undefined);
    if (!info?.isSymbolicLink()) break;
    const target = await readlink(host);
    const next = posix.normalize(
      target.startsWith('/') ? target : posix.join(posix.dirname(current), target),
    );
    chain.push(next);
    current = next;
  }
  const hostReal = await realpath(root === '/' ? current : join(root, current)).catch(() => undefined);
  if (hostReal) {
    const real = root === '/' ? hostReal : toGuestChecked(hostReal, root, path);
    if (real !== current) chain.push(real);
  }
  return chain;
}

function toGuestChecked(hostPath: string, root: string, from: string): string {
  const rel = relative(root, hostPath);
  if (rel.startsWith('..')) {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${from} is a symlink that leads outside the root ${root} (to ${hostPath})`,
      hint: 'Make the link relative, or copy its target into the root.',
    });
  }
  return `/${rel}`;
}
