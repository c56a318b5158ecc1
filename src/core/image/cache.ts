/**
 * Images `ops build` made, kept for the next run of the same inputs. A run
 * needs a fresh image (the guest writes to it), but building one means an Ops
 * start and a file-system write that are the same every time for the same
 * package, config, Ops and Nanos release. The key covers all of them: the
 * package tree by stat stamps (path, type, mode, size, mtime, inode, link
 * target), the run's Ops config, the ops program, the kernel, boot loader and
 * klibs, the volumes mounted (their UUIDs end up in the manifest), and what
 * the config reads outside the package (the same stamps). A hit
 * costs one sparse (or reflink) copy instead of `ops build`.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { run } from '../exec.js';
import { toWriteError, type WriteContext, writeJsonAtomic } from '../fs.js';
import type { OpsConfig } from '../manifest/schema.js';
import type { NanosRelease } from '../ops/build.js';

/** Images kept at most; the least recently used go first. */
export const IMAGE_CACHE_ENTRIES = 4;
/** Disk the kept images may take (allocated bytes: images are sparse); the newest is kept whatever its size. */
export const IMAGE_CACHE_BYTES = 8 * 2 ** 30;

export interface ImageKeyInput {
  /** The ops program that builds (its file is part of the key). */
  opsPath: string;
  release: NanosRelease;
  packageDir: string;
  /** The run's Ops config, as written for `ops build`. */
  config: OpsConfig;
  /** Volumes the config mounts (their files name their UUIDs). */
  volumes: { label: string; path: string }[];
}

/** Entries of host folders outside the package stamped at most: past this, the key would cost more than a build. */
const OUTSIDE_ENTRIES_MAX = 10_000;

/**
 * Host paths the config reads outside the package (absolute, or climbing out with ".."), resolved against it:
 * files and folders by their own path, a MapDirs source (`dir/pattern`, which Ops matches over the whole
 * folder) by its folder. The console route's proof-out library is one: a folder of uniprove's cache.
 */
export function outsideInputs(config: OpsConfig, packageDir: string): string[] {
  const outside = (p: string) => isAbsolute(p) || p.split('/').includes('..');
  const paths = [
    ...(config.Files ?? []),
    ...(config.Dirs ?? []),
    ...Object.keys(config.MapDirs ?? {}).map((source) => dirname(source)),
    ...(config.Program ? [config.Program] : []),
  ];
  return [...new Set(paths.filter(outside).map((p) => resolve(packageDir, p)))].sort();
}

async function stamp(path: string): Promise<string> {
  const s = await stat(path, { bigint: true }).catch(() => undefined);
  return s ? `${s.size}:${s.mtimeNs}:${s.ino}:${s.mode}` : 'absent';
}

/** The package tree's stat stamps, sorted by path. */
async function treeStamps(root: string, rel = '', out: string[] = []): Promise<string[]> {
  const entries = (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const e of entries) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    const s = await lstat(join(root, path), { bigint: true });
    if (e.isSymbolicLink()) out.push(`l ${path} -> ${await readlink(join(root, path))}`);
    else if (e.isDirectory()) {
      out.push(`d ${path} ${s.mode}`);
      await treeStamps(root, path, out);
    } else out.push(`f ${path} ${s.mode} ${s.size} ${s.mtimeNs} ${s.ino}`);
  }
  return out;
}

/**
 * The stamps of what the config reads outside the package (a file's own, a folder's tree), or why it cannot be
 * keyed: a host folder too large to stamp on every run, or unreadable (its files are part of the key, so that a
 * change to them is never missed).
 */
async function outsideStamps(
  config: OpsConfig,
  packageDir: string,
): Promise<string[] | { uncacheable: string }> {
  const out: string[] = [];
  for (const path of outsideInputs(config, packageDir)) {
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isDirectory()) {
      out.push(`outside ${path} ${await stamp(path)}`);
      continue;
    }
    const entries = await treeStamps(path).catch(() => undefined);
    if (entries === undefined || entries.length > OUTSIDE_ENTRIES_MAX) {
      const why = entries ? `over ${OUTSIDE_ENTRIES_MAX} entries` : 'unreadable';
      return { uncacheable: `the config reads ${path}, outside the package, and it is ${why}` };
    }
    out.push(...entries.map((entry) => `outside ${path} ${entry}`));
  }
  return out;
}

/**
 * The cache key of the image `ops build` would make from these inputs, or why they cannot be cached (what the
 * config reads outside the package cannot be stamped).
 */
export async function imageCacheKey(
  input: ImageKeyInput,
): Promise<{ key: string } | { uncacheable: string }> {
  const outside = await outsideStamps(input.config, input.packageDir);
  if (!Array.isArray(outside)) return outside;
  const hash = createHash('sha256');
  const klibs = (input.config.Klibs ?? []).map((k) => join(input.release.dir, 'klibs', k));
  const parts = [
    'uniprove-image-cache/1',
    `ops ${input.opsPath} ${await stamp(input.opsPath)}`,
    `nanos ${input.release.version} ${await stamp(input.release.kernel)} ${await stamp(input.release.boot)}`,
    ...(await Promise.all(klibs.map(async (k) => `klib ${k} ${await stamp(k)}`))),
    `config ${JSON.stringify(input.config)}`,
    ...input.volumes.map((v) => `volume ${v.label} ${v.path}`),
    ...(await treeStamps(input.packageDir)),
    ...outside,
  ];
  for (const p of parts) hash.update(`${p}\n`);
  return { key: hash.digest('hex') };
}

export interface CachedImage {
  image: string;
  manifest: string;
}

/** What the cache's meta remembers of its image, to tell a damaged entry (truncated, rewritten) from a whole one. */
interface ImageStamp {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** A cache lookup: the image, or a miss, or an entry that no longer matches what was stored (removed, with why). */
export type ImageCacheLookup = CachedImage | { damaged: string } | undefined;

/** Copy a (sparse) image: a reflink where the file system can, else a copy that keeps the holes. */
export async function copyImage(from: string, to: string, signal?: AbortSignal): Promise<void> {
  await run(['cp', '--reflink=auto', '--sparse=always', '--', from, to], {
    timeoutMs: 10 * 60_000,
    ...(signal ? { signal } : {}),
  });
}

export class ImageCache {
  constructor(readonly dir: string) {}

  /** The image cache inside uniprove's cache folder. */
  static in(cacheDir: string): ImageCache {
    return new ImageCache(join(cacheDir, 'images'));
  }

  private paths(key: string) {
    return { image: join(this.dir, `${key}.img`), meta: join(this.dir, `${key}.json`) };
  }

  /**
   * The cached image for `key`, marked as just used; undefined on a miss. An entry whose image no longer has the
   * size, mtime and inode it was stored with (truncated, written to, replaced), or whose meta is unreadable, is
   * removed and reported as damaged: it is never booted (a truncated image booted as a "hit" fails every run).
   */
  async get(key: string): Promise<ImageCacheLookup> {
    const p = this.paths(key);
    const text = await readFile(p.meta, 'utf8').catch(() => undefined);
    const info = await stat(p.image).catch(() => undefined);
    if (text === undefined && !info) return undefined;
    let meta: { manifest?: unknown; stamp?: Partial<ImageStamp> } | undefined;
    try {
      meta = text === undefined ? undefined : (JSON.parse(text) as typeof meta);
    } catch {
      meta = undefined;
    }
    const stamp = meta?.stamp;
    if (meta && typeof meta.manifest === 'string' && !stamp && info?.isFile()) {
      // An entry an older uniprove stored, without the stamp to check it by: built again, quietly.
      await rm(p.meta, { force: true }).catch(() => {});
      await rm(p.image, { force: true }).catch(() => {});
      return undefined;
    }
    const why = !meta
      ? `its record ${p.meta} is ${text === undefined ? 'missing' : 'not readable JSON'}`
      : !info?.isFile()
        ? `its image ${p.image} is missing`
        : typeof meta.manifest !== 'string' || !stamp
          ? `its record ${p.meta} lacks the image's manifest`
          : stamp.size !== info.size || stamp.mtimeMs !== info.mtimeMs || stamp.ino !== info.ino
            ? `its image ${p.image} changed since it was stored (${stamp.size} bytes then, ${info.size} now${stamp.size === info.size ? ', rewritten' : ''})`
            : undefined;
    if (why) {
      await rm(p.meta, { force: true }).catch(() => {});
      await rm(p.image, { force: true }).catch(() => {});
      return { damaged: why };
    }
    const now = new Date();
    await utimes(p.meta, now, now).catch(() => {});
    return { image: p.image, manifest: meta?.manifest as string };
  }

  /** Keep a copy of a freshly built image (before anything boots it), then drop the oldest entries. */
  async put(key: string, built: CachedImage, signal?: AbortSignal): Promise<void> {
    const writing: WriteContext = {
      what: 'the image cache',
      path: this.dir,
      bytes: (await stat(built.image).catch(() => undefined))?.size ?? 0,
      elsewhere: 'point UNIPROVE_CACHE at a folder on a disk with room, or run with --no-image-cache',
    };
    const p = this.paths(key);
    const tmp = `${p.image}.${process.pid}.${Date.now()}.partial`;
    try {
      await mkdir(this.dir, { recursive: true });
      await copyImage(built.image, tmp, signal);
      await rename(tmp, p.image);
    } catch (error) {
      await rm(tmp, { force: true }).catch(() => {});
      throw await toWriteError(error, writing);
    }
    const info = await stat(p.image);
    const stamp: ImageStamp = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
    await writeJsonAtomic(
      p.meta,
      { manifest: built.manifest, stamp, createdAt: new Date().toISOString() },
      writing,
    );
    await this.prune();
  }

  /** The cached entries, most recently used first, with the disk each image takes (images are sparse). */
  private async entries(names: string[]): Promise<{ key: string; used: number; bytes: number }[]> {
    const entries = await Promise.all(
      names
        .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
        .map(async (n) => {
          const key = n.slice(0, 64);
          const image = await stat(this.paths(key).image).catch(() => undefined);
          return {
            key,
            used: (await stat(join(this.dir, n))).mtimeMs,
            bytes: image ? image.blocks * 512 : 0,
          };
        }),
    );
    return entries.sort((a, b) => b.used - a.used);
  }

  /** How many images are kept, and the disk they take. */
  async usage(): Promise<{ images: number; bytes: number }> {
    const entries = await this.entries(await readdir(this.dir).catch(() => [] as string[]));
    return { images: entries.length, bytes: entries.reduce((n, e) => n + e.bytes, 0) };
  }

  /**
   * Keep the most recently used images, at most `keep` of them and `maxBytes` of disk (the newest
   * always stays); remove the rest, and stray partial copies.
   */
  async prune(keep = IMAGE_CACHE_ENTRIES, maxBytes = IMAGE_CACHE_BYTES): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const metas = await this.entries(names);
    let total = 0;
    const kept = metas.filter((m, i) => {
      total += m.bytes;
      return i === 0 || (i < keep && total <= maxBytes);
    });
    const live = new Set(kept.map((m) => m.key));
    for (const old of metas.filter((m) => !live.has(m.key))) {
      const p = this.paths(old.key);
      await rm(p.meta, { force: true });
      await rm(p.image, { force: true });
    }
    for (const n of names) {
      const key = n.slice(0, 64);
      // An image without its meta (a copy cut short by a crash) is never served: remove it.
      if (n.endsWith('.img') && !live.has(key)) await rm(join(this.dir, n), { force: true });
      if (n.endsWith('.partial')) {
        const age = Date.now() - ((await stat(join(this.dir, n)).catch(() => undefined))?.mtimeMs ?? 0);
        if (age > 60 * 60_000) await rm(join(this.dir, n), { force: true });
      }
    }
  }
}
