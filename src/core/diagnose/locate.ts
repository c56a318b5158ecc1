/**
 * Where a missing file can be found on the host, and where it must go in the
 * image. Diagnosis only needs the `Locate` callback; the default here is a
 * small stand-in (folders given by the user, the host's ld.so.cache, glibc's
 * default folders) meant to be replaced by the full resolver in src/core/elf/.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';

export type LocateKind = 'library' | 'file' | 'program';

export interface LocateResult {
  hostPath: string;
  guestPath: string;
}

/** What the log says about the miss, to place the file where the program looked. */
export interface LocateContext {
  /** The absolute path the program asked for, when it asked for one (dlopen("/opt/x.so"), fopen). */
  wantedPath?: string;
  /** The folders the program searched for the name, in its search order. */
  searchedDirs?: string[];
}

/** Find a host file for a missing basename; undefined when there is none. */
export type Locate = (
  name: string,
  kind: LocateKind,
  context?: LocateContext,
) => Promise<LocateResult | undefined>;

/** The folders glibc's loader searches in a Nanos guest with no ld.so.cache entry (besides hwcaps/tls subfolders). */
export const GUEST_LIBRARY_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib',
  '/usr/lib',
];

/** Host folders searched for libraries after ld.so.cache, in glibc's order (Debian multiarch first). */
export const HOST_LIBRARY_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
  '/usr/local/lib',
];

/** Where a library must go in the image so dlopen finds it: its host path when that is searched, else the first multiarch folder. */
export function guestLibraryPath(name: string, hostPath?: string): string {
  if (hostPath && GUEST_LIBRARY_DIRS.includes(posix.dirname(hostPath))) return hostPath;
  return `${GUEST_LIBRARY_DIRS[0]}/${name}`;
}

/**
 * Library paths from an ld.so.cache (glibc's "glibc-ld.so.cache1.1" format),
 * keyed by soname; x86-64 entries only. A minimal reader: the full one lives
 * in src/core/elf/.
 */
export function readLdCacheEntries(cache: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  const magic = 'glibc-ld.so.cache1.1';
  const at = cache.indexOf(magic, 0, 'latin1');
  if (at === -1 || cache.length < at + 48) return out;
  const count = cache.readUInt32LE(at + 20);
  const cstring = (offset: number) => {
    const end = cache.indexOf(0, offset);
    return cache.toString('utf8', offset, end === -1 ? cache.length : end);
  };
  for (let i = 0; i < count; i++) {
    const entry = at + 48 + i * 24;
    if (entry + 24 > cache.length) break;
    const flags = cache.readInt32LE(entry);
    // FLAG_ELF_LIBC6 (3) with FLAG_X8664_LIB64 (0x300).
    if ((flags & 0xff0f) !== 0x0303) continue;
    const key = cache.readUInt32LE(entry + 4);
    const value = cache.readUInt32LE(entry + 8);
    if (key >= cache.length || value >= cache.length) continue;
    const soname = cstring(key);
    if (!out.has(soname)) out.set(soname, cstring(value));
  }
  return out;
}

export interface DefaultLocateOptions {
  /** Folders searched first, recursively (the recipe's root, the program's folder). */
  roots?: string[];
  /** Also look on the host system (ld.so.cache and glibc's default folders); default true. */
  host?: boolean;
  /** Prefix for host system paths (a sysroot); default '/'. */
  sysroot?: string;
  /** At most this many folder entries are read under `roots` (default 100 000). */
  maxEntries?: number;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Index the files under `roots` by basename, breadth first, bounded. */
async function indexRoots(roots: string[], maxEntries: number): Promise<Map<string, string[]>> {
  const index = new Map<string, string[]>();
  let seen = 0;
  const queue = [...roots];
  while (queue.length > 0 && seen < maxEntries) {
    const dir = queue.shift()!;
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (++seen > maxEntries) break;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== '.git') queue.push(path);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        const list = index.get(entry.name);
        if (list) list.push(path);
        else index.set(entry.name, [path]);
      }
    }
  }
  return index;
}

/**
 * The default `Locate`: the user's folders first, then (for libraries) the
 * host's ld.so.cache and glibc's default folders, then the path the program
 * asked for as it stands on the host.
 */
export function createDefaultLocate(options: DefaultLocateOptions = {}): Locate {
  const sysroot = options.sysroot ?? '/';
  const host = options.host ?? true;
  let rootIndex: Promise<Map<string, string[]>> | undefined;
  let cache: Promise<Map<string, string>> | undefined;
  const inRoots = async (name: string) => {
    if (!options.roots?.length) return undefined;
    rootIndex ??= indexRoots(options.roots, options.maxEntries ?? 100_000);
    return (await rootIndex).get(name)?.[0];
  };
  const fromCache = async (name: string) => {
    cache ??= readFile(join(sysroot, 'etc/ld.so.cache')).then(readLdCacheEntries, () => new Map());
    const path = (await cache).get(name);
    return path && (await isFile(join(sysroot, path))) ? path : undefined;
  };
  return async (name, kind, context = {}) => {
    const wanted = context.wantedPath?.startsWith('/') ? context.wantedPath : undefined;
    const found = await inRoots(name);
    if (kind === 'library' && host && !found) {
      // The first folder of the program's own search that holds the file on this host: placed there, it is found.
      for (const dir of context.searchedDirs ?? []) {
        if (dir.startsWith('/') && (await isFile(join(sysroot, dir, name)))) {
          return { hostPath: join(sysroot, dir, name), guestPath: join(dir, name) };
        }
      }
    }
    if (kind === 'library') {
      let hostPath = found;
      if (!hostPath && host) hostPath = await fromCache(name);
      if (!hostPath && host) {
        for (const dir of HOST_LIBRARY_DIRS) {
          if (await isFile(join(sysroot, dir, name))) {
            hostPath = join(dir, name);
            break;
          }
        }
      }
      if (!hostPath && host && wanted && (await isFile(join(sysroot, wanted)))) hostPath = wanted;
      if (!hostPath) return undefined;
      const resolved = found ?? join(sysroot, hostPath);
      return {
        hostPath: resolved,
        guestPath: wanted ?? guestLibraryPath(name, found ? undefined : hostPath),
      };
    }
    const guestPath = wanted ?? `/${name}`;
    if (found) return { hostPath: found, guestPath };
    if (host && wanted && (await isFile(join(sysroot, wanted)))) {
      return { hostPath: join(sysroot, wanted), guestPath };
    }
    return undefined;
  };
}

/** A Locate that finds nothing: diagnosis still says what is missing and where it must go. */
export const locateNothing: Locate = async () => undefined;

/** The basename of a guest or host path. */
export function baseName(path: string): string {
  return basename(path) || dirname(path);
}
