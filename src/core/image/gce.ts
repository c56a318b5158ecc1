/**
 * `gcp image`: a raw disk, or a recipe built into one, made into a Compute Engine image (reused when one of the
 * same digest exists). The tarball is packed and uploaded, images.insert waited for, the staging object deleted.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  cleanupError,
  commonOf,
  defaultBucket,
  dryRunOf,
  type GcpCommonOptions,
  type GcpDryRunResult,
  type GcpRawDisk,
  leftoverError,
  newContext,
  releaseAll,
  sourceOf,
  withClients,
} from '../cloud/context.js';
import { executeCalls, type PerformedCall } from '../cloud/execute.js';
import { imageNameFor, planImageCommand } from '../cloud/plan.js';
import {
  buildGcpRecipeImage,
  type GcpBuiltImage,
  type GcpRecipePlan,
  type GcpRecipeSource,
  imagePlaceholder,
  resolveGcpRecipe,
} from './gce-build.js';

export interface GcpImageOptions extends GcpCommonOptions {
  disk: GcpRawDisk;
  bucket?: string;
  dryRun?: boolean;
  /** Where the tarball is packed (default: next to the raw disk). */
  workDir?: string;
}

export interface GcpImageResult {
  dryRun: false;
  image: string;
  project: string;
  sha256: string;
  reused: boolean;
  calls: PerformedCall[];
}

/** Make a Compute Engine image from a raw disk, or reuse the one with the same digest. */
export async function gcpImage(options: GcpImageOptions & { dryRun: true }): Promise<GcpDryRunResult>;
export async function gcpImage(options: GcpImageOptions): Promise<GcpImageResult | GcpDryRunResult>;
export async function gcpImage(options: GcpImageOptions): Promise<GcpImageResult | GcpDryRunResult> {
  const bucket = options.bucket ?? defaultBucket(options.target);
  const source = await sourceOf(options.disk, Boolean(options.dryRun), options.signal);
  const plan = planImageCommand(options.target, bucket, source);
  if (options.dryRun) return dryRunOf(plan.calls);
  return withClients(options, async (clients) => {
    const ctx = newContext(options, clients, options.workDir ?? dirname(options.disk.rawPath), [source]);
    let outcome: 'success' | 'failure' = 'failure';
    let failure: unknown;
    try {
      await executeCalls(ctx, plan.calls);
      outcome = 'success';
    } catch (error) {
      failure = error;
    }
    const release = await releaseAll(ctx, outcome, options.poll?.timeoutMs ?? 10 * 60_000);
    if (failure) throw cleanupError(failure, release);
    const leftover = leftoverError(release);
    if (leftover) throw leftover;
    const image = imageNameFor(source);
    return {
      dryRun: false,
      image,
      project: options.target.project,
      sha256: source.sha256,
      reused: ctx.found.has(`image:${image}`),
      calls: ctx.performed,
    };
  });
}

/** Options of `gcp image <recipe>`. */
export interface GcpImageRecipeOptions extends GcpCommonOptions, GcpRecipeSource {
  bucket?: string;
  dryRun?: boolean;
}

/** The image result, with the package it came from. */
export interface GcpImageRecipeResult extends GcpImageResult {
  recipe: string;
  package: string;
  buildKey: string;
}

/** Package a recipe, build its image and import it into Compute Engine (reused when its build key matches). */
export async function gcpImageRecipe(
  options: GcpImageRecipeOptions,
): Promise<GcpImageRecipeResult | GcpDryRunResult> {
  const plan = await resolveGcpRecipe(options);
  const wouldBe = join(options.opsHome, 'images', `uniprove-gcp-${plan.name}`);
  if (options.dryRun) {
    return gcpImage({
      ...commonOf(options),
      ...(options.bucket ? { bucket: options.bucket } : {}),
      disk: { rawPath: wouldBe, name: plan.name, dryRunDigest: imagePlaceholder(plan.name) },
      dryRun: true,
    });
  }
  return withClients(options, (clients) => imageWith(options, plan, { ...commonOf(options), clients }));
}

async function imageWith(
  options: GcpImageRecipeOptions,
  plan: GcpRecipePlan,
  common: GcpCommonOptions,
): Promise<GcpImageRecipeResult> {
  // The tarball is packed here: uniprove's cache, a disk with room, not a small /tmp.
  await mkdir(join(options.cacheDir, 'gcp'), { recursive: true });
  const workDir = await mkdtemp(join(options.cacheDir, 'gcp', 'image-'));
  let built: GcpBuiltImage | undefined;
  try {
    built = await buildGcpRecipeImage(options, plan, {
      configDir: workDir,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const result = (await gcpImage({
      ...common,
      ...(options.bucket ? { bucket: options.bucket } : {}),
      disk: { rawPath: built.rawPath, name: plan.name, sha256: built.buildKey },
      workDir,
      dryRun: false,
    })) as GcpImageResult;
    return { ...result, recipe: plan.name, package: built.packageDir, buildKey: built.buildKey };
  } finally {
    await built?.release().catch(() => {});
    await rm(workDir, { recursive: true, force: true });
  }
}
