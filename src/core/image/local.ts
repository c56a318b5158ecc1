/**
 * The local image step: the run's image under <opsHome>/images/<imageName>, taken from the image cache (image/cache.ts)
 * when `ops build` already made one from the same inputs (booted as a snapshot when nothing reads it after the run),
 * else built by `ops build` and a copy kept for next time. It says what it did; the caller's record keeps it.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isUniproveError } from '../errors.js';
import type { OpsConfig } from '../manifest/schema.js';
import { type NanosRelease, opsBuild } from '../ops/build.js';
import type { PreparedTarget } from '../package/target.js';
import { noProgress, type OnProgress } from '../progress.js';
import type { RunRecord, RunWarning } from '../record/record.js';
import { copyImage, ImageCache, imageCacheKey } from './cache.js';
import { refuseFilesFromOutside } from './contents.js';

/** What the local image step reads of a run's options. */
export interface LocalImageOptions {
  /** uniprove's cache (the image cache lives under it). */
  cacheDir: string;
  /** Ops's home (~/.ops): images go to its images/. */
  opsHome: string;
  /** false: always `ops build`, even when an image of the same inputs is cached. */
  imageCache?: boolean;
  nanosVersion?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** The image a run boots, and how it came to be. */
export interface LocalImage {
  image: string;
  manifest: string;
  durationMs: number;
  /** Boot it as a snapshot (the cached image itself, writes thrown away). */
  snapshot: boolean;
  /** What the image cache did: the record's imageCache. */
  cache: NonNullable<RunRecord['imageCache']>;
  warnings: RunWarning[];
}

/**
 * The run's image under <opsHome>/images/<imageName>: a copy of the cached one
 * when `ops build` already made it from the same inputs, else `ops build`
 * (and a copy kept for next time, taken before anything boots it).
 */
export async function buildLocalImage(a: {
  options: LocalImageOptions;
  opsPath: string;
  release: NanosRelease;
  target: PreparedTarget;
  config: OpsConfig;
  configPath: string;
  program: string;
  imageName: string;
  opsOpts: { ops?: string; env?: Record<string, string | undefined>; signal?: AbortSignal };
  /** The image is read after the run (a proof or --copy-out on the root file system) or kept: never a snapshot. */
  imageAfterRun: boolean;
}): Promise<LocalImage> {
  const { options, release, program } = a;
  const warnings: RunWarning[] = [];
  const onProgress = options.onProgress ?? noProgress;
  const t0 = performance.now();
  const keyed =
    options.imageCache === false
      ? { uncacheable: 'off (--no-image-cache)' }
      : await imageCacheKey({
          opsPath: a.opsPath,
          release,
          packageDir: a.target.packageDir,
          config: a.config,
          volumes: a.target.volumes,
        });
  const key = 'key' in keyed ? keyed.key : undefined;
  const cache = key ? ImageCache.in(options.cacheDir) : undefined;
  const lookup = cache && key ? await cache.get(key) : undefined;
  if (lookup && 'damaged' in lookup) {
    warnings.push({
      code: 'image-cache-damaged',
      message: `the cached image for these inputs was damaged (${lookup.damaged}): removed, and built again`,
    });
  }
  const hit = lookup && !('damaged' in lookup) ? lookup : undefined;
  if (hit && !a.imageAfterRun) {
    // Nothing reads the image after this run: boot the cached one as a snapshot (writes go to a throwaway
    // overlay), with no copy to make. A 256 MB package's image took 0.08 s to copy.
    const cached = { state: 'hit', key: key as string, boot: 'snapshot' } as const;
    onProgress({ kind: 'note', step: 'image', detail: `cached, booted as a snapshot: ${hit.image}` });
    const durationMs = performance.now() - t0;
    return { image: hit.image, manifest: hit.manifest, durationMs, snapshot: true, cache: cached, warnings };
  }
  if (hit) {
    const image = join(options.opsHome, 'images', a.imageName);
    await mkdir(join(options.opsHome, 'images'), { recursive: true });
    onProgress({
      kind: 'step-start',
      step: 'image',
      detail: 'a copy of the one ops build made from the same inputs',
    });
    await copyImage(hit.image, image, options.signal);
    const cached = { state: 'hit', key: key as string, boot: 'copy' } as const;
    onProgress({ kind: 'step-done', step: 'image', detail: image });
    const durationMs = performance.now() - t0;
    return { image, manifest: hit.manifest, durationMs, snapshot: false, cache: cached, warnings };
  }
  onProgress({ kind: 'step-start', step: 'ops build', detail: `${program} (Nanos ${release.version})` });
  const built = await opsBuild(
    {
      cwd: a.target.packageDir,
      program,
      config: a.configPath,
      imageName: a.imageName,
      ...(options.nanosVersion ? { nanosVersion: options.nanosVersion } : {}),
    },
    a.opsOpts,
  );
  onProgress({ kind: 'step-done', step: 'ops build', detail: built.image });
  // Read back before it is cached or booted: an image with files from this host is not the package.
  try {
    refuseFilesFromOutside(built.manifest, {
      packageDir: a.target.packageDir,
      opsHome: options.opsHome,
      config: a.config,
    });
  } catch (error) {
    await rm(built.image, { force: true }).catch(() => {});
    throw error;
  }
  let stored: NonNullable<RunRecord['imageCache']>;
  if (cache && key) {
    try {
      await cache.put(key, built, options.signal);
      stored = { state: 'stored', key };
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const reason = isUniproveError(error) ? error.message : String(error);
      stored = { state: 'off', reason: `could not keep a copy: ${reason}` };
      warnings.push({ code: 'image-cache', message: `the image was not cached: ${reason}` });
    }
  } else stored = { state: 'off', reason: 'uncacheable' in keyed ? keyed.uncacheable : 'off' };
  return {
    image: built.image,
    manifest: built.manifest,
    durationMs: performance.now() - t0,
    snapshot: false,
    cache: stored,
    warnings,
  };
}
