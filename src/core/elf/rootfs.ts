/**
 * Path resolution inside a root folder (a sysroot or unpacked image), the way
 * the kernel would resolve it after chroot(root): absolute symlink targets are
 * re-rooted, and `..` never climbs above the root.
 */
import { lstat, readlink } from 'node:fs/promises';
import { posix } from 'node:path';

/** Where a guest path really leads inside a root. */
export interface RootRealpath {
  /** The path with every symlink resolved (guest path, absolute). */
  realPath: string;
  /** Each symlink met on the way, as guest paths, in the order followed. */
  symlinks: string[];
  /** Set when a link tried to leave the root (with `..` past `/`); the link path. */
  escapedVia?: string;
  kind: 'file' | 'directory' | 'other';
}

const MAX_LINKS = 40;

/** The host path of a guest path under `root` ('' or '/' meaning the host itself). */
export function hostPath(root: string, guestPath: string): string {
  if (root === '' || root === '/') return guestPath;
  return root.replace(/\/+$/, '') + guestPath;
}

/** Resolve `guestPath` (absolute) inside `root`; undefined when it does not exist. */
export async function realpathInRoot(
  root: string,
  guestPath: string,
  cache?: LinkCache,
): Promise<RootRealpath | undefined> {
  const look = (guest: string) => cachedLstat(root, guest, cache);
  const symlinks: string[] = [];
  let escapedVia: string | undefined;
  let links = 0;
  // Components still to walk, and the resolved prefix so far.
  let pending = splitComponents(guestPath);
  let resolved: string[] = [];
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.' || part === '') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const current = `/${[...resolved, part].join('/')}`;
    const st = await look(current);
    if (!st) return undefined;
    if (st.target !== undefined) {
      if (++links > MAX_LINKS) return undefined;
      symlinks.push(current);
      const target = st.target;
      const targetParts = splitComponents(target);
      if (target.startsWith('/')) resolved = [];
      else {
        // A relative target with more `..` than the depth of its folder climbs out of the root.
        let depth = resolved.length;
        for (const t of targetParts) {
          if (t === '..') depth--;
          else if (t !== '.' && t !== '') depth++;
          if (depth < 0 && escapedVia === undefined) escapedVia = current;
        }
      }
      pending = [...targetParts, ...pending];
      continue;
    }
    if (pending.some((p) => p !== '' && p !== '.') && st.kind !== 'directory') return undefined;
    resolved.push(part);
  }
  const realPath = `/${resolved.join('/')}`;
  let kind: RootRealpath['kind'] = 'directory';
  if (resolved.length > 0) {
    const st = await look(realPath);
    if (!st) return undefined;
    kind = st.kind;
  }
  return { realPath, symlinks, kind, ...(escapedVia ? { escapedVia } : {}) };
}

interface LinkStat {
  kind: RootRealpath['kind'];
  /** Set for symlinks. */
  target?: string;
}

/** Memo of lstat/readlink by guest path, shared by all lookups of one resolution. */
export type LinkCache = Map<string, Promise<LinkStat | undefined>>;

function cachedLstat(
  root: string,
  guest: string,
  cache: LinkCache | undefined,
): Promise<LinkStat | undefined> {
  const hit = cache?.get(guest);
  if (hit) return hit;
  const promise = (async (): Promise<LinkStat | undefined> => {
    try {
      const st = await lstat(hostPath(root, guest));
      if (st.isSymbolicLink()) return { kind: 'other', target: await readlink(hostPath(root, guest)) };
      return { kind: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other' };
    } catch {
      return undefined;
    }
  })();
  cache?.set(guest, promise);
  return promise;
}

function splitComponents(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}

/** Make a guest path absolute against `cwd` and normalise it (no symlink resolution). */
export function guestAbsolute(path: string, cwd: string): string {
  return posix.normalize(path.startsWith('/') ? path : posix.join(cwd, path));
}
