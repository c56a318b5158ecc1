/**
 * A fleet's image step: one boot image per distinct argument list of its inputs (Nanos reads the program's
 * arguments from the image's manifest), built by `ops build` one at a time and imported at most --parallel at
 * once (reused by digest, labelled with the fleet), and its volume image once beside them.
 */
import { join } from 'node:path';
import type { GcpClients } from '../cloud/clients.js';
import { type GcpCommonOptions, newContext, releaseAll } from '../cloud/context.js';
import { executeCalls } from '../cloud/execute.js';
import {
  argsDigest,
  distinctArgs,
  fleetBucketCalls,
  type GcpFleetSpec,
  labelled,
  planFleet,
  planFleetBootImages,
  withoutBucket,
} from '../cloud/fleet-plan.js';
import { machineShape } from '../cloud/prices.js';
import { mapLimit, oneAtATime, settleAll } from '../concurrency.js';
import { sha256File } from '../hash.js';
import type { PreparedTarget } from '../package/target.js';
import { buildGcpImage, type GcpRecipePlan, type GcpRecipeSource } from './gce-build.js';

/** What building the fleet's images takes: the package prepared once, the Nanos release, the file proof's route. */
export interface FleetBuild {
  prepared: PreparedTarget;
  release: Parameters<typeof buildGcpImage>[1];
  /** A file proof's console route: the library staged into each image's config. */
  fileProof: { stage: NonNullable<Parameters<typeof buildGcpImage>[4]['stage']> } | undefined;
}

/** What a fleet's images are of: its spec (images named by their arguments), inputs, recipe and machine. */
export interface FleetImagesTarget {
  spec: GcpFleetSpec;
  inputs: string[][];
  recipe: GcpRecipePlan;
  machineType: string;
  fleetId: string;
}

/** The options a fleet's image step reads: the cloud's and the recipe's, the fleet's --parallel. */
export type FleetImagesOptions = GcpCommonOptions & GcpRecipeSource & { parallel: number };

/**
 * Build and import one boot image per distinct argument list (reused by digest; labelled with the arguments'
 * digest) and the volume image once: the staging bucket checked first, then at most --parallel imports at once,
 * the `ops build`s one at a time. A failed or interrupted import deletes what it half made; the error is the
 * fleet's. Returns the spec every attempt shares (images by name) and the imports' contexts, released at the end.
 */
export async function importFleetImages(
  options: FleetImagesOptions,
  r: FleetImagesTarget,
  build: FleetBuild,
  clients: GcpClients,
  fleetDir: string,
) {
  const vol = build.prepared.volumes[0];
  const volSource = vol
    ? { name: vol.label, sha256: await sha256File(vol.path, options.signal), rawPath: vol.path }
    : undefined;
  const volume =
    r.spec.volume && volSource && vol
      ? { ...r.spec.volume, source: volSource, readOnly: vol.readOnly }
      : undefined;
  const contexts: ReturnType<typeof newContext>[] = [];
  const run = async (
    sources: Parameters<typeof newContext>[3],
    calls: ReturnType<typeof planFleet>['calls'],
    onProgress = options.onProgress,
  ) => {
    const ctx = newContext({ ...options, onProgress }, clients, fleetDir, sources);
    contexts.push(ctx);
    try {
      await executeCalls(ctx, calls);
    } catch (error) {
      // A half-made import (an uploaded tarball, an image not READY) goes.
      await releaseAll(ctx, 'failure', 10 * 60_000).catch(() => {});
      throw error;
    }
  };
  const volumeSpec: GcpFleetSpec = { ...r.spec, images: [], ...(volume ? { volume } : {}) };
  const volumeCalls = volume
    ? withoutBucket(
        planFleet(volumeSpec).calls.filter(
          (c) => c.phase === 'main' && c.method.match(/^(images\.|globalOperations\.|storage\.objects\.)/),
        ),
      )
    : [];
  await run([], fleetBucketCalls(r.spec, r.spec.target));
  const lists = distinctArgs(r.inputs);
  const oneBuild = oneAtATime();
  const bootImages = mapLimit(lists, options.parallel, async (args, index) => {
    // Which image a step is of, when imports run side by side.
    const onProgress: GcpCommonOptions['onProgress'] =
      options.onProgress && lists.length > 1
        ? (e) =>
            options.onProgress!({
              ...e,
              detail:
                `${e.detail ?? ''} [image ${index + 1} of ${lists.length}: ${JSON.stringify(args)}]`.trim(),
            })
        : options.onProgress;
    const built = await oneBuild(() =>
      buildGcpImage(build.prepared, build.release, options, r.recipe, {
        configDir: join(fleetDir, 'images', argsDigest(args)),
        args,
        vcpus: Math.max(1, Math.floor(machineShape(r.machineType).vcpus)),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(onProgress ? { onProgress } : {}),
        ...(build.fileProof ? { stage: build.fileProof.stage } : {}),
      }),
    );
    try {
      const source = { name: r.recipe.name, sha256: built.buildKey, rawPath: built.rawPath };
      const calls = planFleetBootImages({ ...r.spec, images: [{ args, source }] }, r.spec.target);
      await run(
        [source],
        calls.map((c) => labelled(c, r.fleetId)),
        onProgress,
      );
      return {
        args,
        source: { existing: calls.find((c) => c.method === 'images.get')!.params.image as string },
      };
    } finally {
      await built.release().catch(() => {});
    }
  });
  // The volume image imports beside the boot images; every import has settled before a failure is thrown.
  const volumeImport = volume ? run([volSource!], volumeCalls) : Promise.resolve();
  await settleAll<unknown>([bootImages, volumeImport]);
  const images = await bootImages;
  const spec: GcpFleetSpec & { image: { existing: string } } = {
    ...r.spec,
    image: images[0]!.source,
    images,
    ...(volume && 'rawPath' in volume.source
      ? {
          volume: {
            ...volume,
            source: { existing: volumeCalls.find((c) => c.method === 'images.get')!.params.image as string },
          },
        }
      : {}),
  };
  return { contexts, spec };
}
