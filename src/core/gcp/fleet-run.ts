/**
 * `gcp run <recipe> --inputs FILE --parallel N`: a fleet. The recipe is packaged once, then built and imported
 * once per distinct argument list of the inputs (Nanos reads the program's arguments from the image's manifest,
 * so each input boots the image with its arguments baked in; identical arguments share one image), and its
 * volume image is imported once; then every input is one run of the run lifecycle (run/lifecycle.ts) with the
 * fleet's gce driver (machine/drivers/gce-fleet.ts) on a fresh instance, scheduled by fleet/scheduler.ts: Spot
 * retries, capacity back-off and zones, Ctrl-C. Each input keeps its own run record and proving_report.csv line;
 * the fleet keeps runs/<fleet-id>/fleet.json. Everything is resolved and checked (and the cost refused past
 * --max-cost) before the first side effect.
 */
import { join, resolve } from 'node:path';
import { isUniproveError, UniproveError } from '../errors.js';
import { buildFleetRecord, type FleetRecord, newFleetId, writeFleetRecord } from '../fleet/record.js';
import {
  type AttemptOutcome,
  type FleetEvent,
  type FleetOptions,
  type FleetResult,
  type RunOne,
  runFleet,
} from '../fleet/scheduler.js';
import { GceFleetDriver, type GceFleetShared } from '../machine/drivers/gce-fleet.js';
import { requireOpsAndNanos } from '../ops/build.js';
import type { OpsConfig } from '../ops/config/schema.js';
import { checkProofFits, consoleProofTap } from '../proof/index.js';
import { kernelVcpuPolicy } from '../run/index.js';
import { runOnMachine } from '../run/lifecycle.js';
import { readInputs } from '../run/parallel.js';
import { type PreparedTarget, prepareTarget } from '../run/prepare.js';
import type { RunRecord } from '../run/record.js';
import { requireUnmapSafeKernel } from '../run/vcpus.js';
import {
  buildGcpImage,
  imagePlaceholder,
  prepareOptionsOf,
  recipeMachine,
  resolveGcpRecipe,
} from './build.js';
import type { GcpClients } from './clients.js';
import { cloudOpsServiceAccounts } from './cloud-ops.js';
import {
  defaultBucket,
  dryRunOf,
  type GcpCommonOptions,
  type GcpDryRunResult,
  newContext,
  releaseAll,
  withClients,
} from './context.js';
import { executeCalls } from './execute.js';
import {
  argsDigest,
  distinctArgs,
  fleetBucketCalls,
  fleetMachine,
  type GcpFleetPlan,
  type GcpFleetSpec,
  labelled,
  planFleet,
  planFleetBootImages,
  planFleetVolumeDisk,
  withoutBucket,
} from './fleet-plan.js';
import { sweepFleet } from './fleet-sweep.js';
import { machineTypeFor } from './plan.js';
import { checkMaxCost, machineShape } from './prices.js';
import type { GcpRunRecipeOptions } from './run.js';
import { sha256File } from './tarball.js';

/** Options of a fleet: those of `gcp run <recipe>`, and the fleet's shape. */
export interface GcpRunFleetOptions extends Omit<GcpRunRecipeOptions, 'out' | 'keep' | 'onConsoleLine'> {
  /** The inputs file: one input's prover arguments a line (as `run --inputs`). */
  inputs: string;
  /** Instances at once. */
  parallel: number;
  /** Zones in order of preference (default the target's zone). */
  zones?: string[];
  /** New instances for a preempted input (default 2). */
  retries?: number;
  /** Refuse a fleet whose estimated cost exceeds this many dollars. */
  maxCostUsd?: number;
  /** Second Ctrl-C: stop waiting for the attempts, delete everything now. */
  forceSignal?: AbortSignal;
  onFleetEvent?: (event: FleetEvent) => void;
  /** The fleet as resolved, before anything is made (its inputs, machine type, Spot or not). */
  onPlan?: (fleet: GcpFleetPlan['fleet']) => void;
  /** Each attempt's run record as its run ends (metrics, alerts); not for attempts that ended in an error. */
  onAttemptRecord?: (record: RunRecord) => void;
  /** The fleet's id (default a fresh one). */
  fleetId?: string;
  /** Scheduler knobs (tests and benchmarks scale them down). */
  scheduler?: Pick<
    FleetOptions,
    'backoff' | 'tickMs' | 'quotaStrikes' | 'maxCapacityErrors' | 'recoverAfter'
  >;
}

/** A fleet's dry run: the calls, and its shape and cost estimate. */
export interface GcpFleetDryRunResult extends GcpDryRunResult {
  fleet: GcpFleetPlan['fleet'];
}

/** What a fleet did: the scheduler's result, the fleet record and where it was written. */
export interface GcpRunFleetResult {
  dryRun: false;
  fleet: FleetResult;
  record: FleetRecord;
  recordPath: string;
}

const DEFAULT_TIMEOUT_MS = 6 * 3600_000;

/** Resolve everything a fleet needs before any side effect: its inputs, machine, zones, plan and cost. */
async function resolveFleet(options: GcpRunFleetOptions) {
  const cwd = options.cwd ?? process.cwd();
  const inputs = await readInputs(options.inputs, cwd);
  if (!Number.isInteger(options.parallel) || options.parallel < 1) {
    throw new UniproveError('E_USAGE', {
      message: `--parallel ${options.parallel} is not a whole number of instances (1 or more)`,
      hint: 'Give --parallel N: at most N instances run at once.',
    });
  }
  const recipe = await resolveGcpRecipe(options);
  const { spec: machine } = recipeMachine(recipe, fleetMachine(options.machine));
  const machineType = machineTypeFor(options.target, machine).replace(/^.*\//, '');
  const fleetId = options.fleetId ?? newFleetId();
  const zones = options.zones?.length ? options.zones : [options.target.zone];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const spec: GcpFleetSpec = {
    target: { ...options.target, zone: zones[0]! },
    fleetId,
    bucket: options.bucket ?? defaultBucket(options.target),
    image: { name: recipe.name, sha256: imagePlaceholder(recipe.name) },
    images: distinctArgs(inputs).map((args) => ({
      args,
      source: {
        name: recipe.name,
        sha256: `<sha256 of the image built from recipe ${recipe.name} with arguments ${JSON.stringify(args)}>`,
      },
    })),
    inputArgs: inputs,
    ...(recipe.volume
      ? {
          volume: {
            source: { name: recipe.volume.label, sha256: `<sha256 of volume ${recipe.volume.label}>` },
            diskType: options.volumeDisk?.diskType ?? 'pd-balanced',
            sizeGb: options.volumeDisk?.sizeGb ?? 10,
            // A read-only volume is one disk per zone, attached READ_ONLY to every instance there.
            readOnly: recipe.recipe?.volumes[0]?.readOnly ?? false,
          },
        }
      : {}),
    machine,
    bootDisk: { type: options.bootDisk?.type ?? 'pd-balanced', sizeGb: options.bootDisk?.sizeGb },
    network: options.network ?? 'default',
    labels: options.labels ?? {},
    maxRunSeconds: Math.ceil(timeoutMs / 1000) + 30 * 60,
    ...(options.cloudOps ? { serviceAccounts: cloudOpsServiceAccounts(options.cloudOps) } : {}),
    inputs: inputs.length,
    parallel: options.parallel,
    zones,
  };
  const plan = planFleet(spec);
  checkMaxCost(plan.fleet.cost, options.maxCostUsd);
  if (recipe.proof.kind === 'file') {
    checkProofFits({
      maxBytes: recipe.proof.maxBytes,
      timeoutMs,
      where: 'gce',
      guestPath: recipe.proof.path,
    });
  }
  return { cwd, inputs, recipe, machineType, fleetId, zones, timeoutMs, spec, plan };
}

type Resolved = Awaited<ReturnType<typeof resolveFleet>>;

/**
 * Run one proof per input line on Compute Engine, at most `parallel` instances at once, Spot by default; import
 * one image per distinct argument list; retry preempted inputs; leave nothing behind (the fleet's label finds what is left).
 */
export async function gcpRunFleet(
  options: GcpRunFleetOptions & { dryRun: true },
): Promise<GcpFleetDryRunResult>;
export async function gcpRunFleet(
  options: GcpRunFleetOptions,
): Promise<GcpRunFleetResult | GcpFleetDryRunResult>;
export async function gcpRunFleet(
  options: GcpRunFleetOptions,
): Promise<GcpRunFleetResult | GcpFleetDryRunResult> {
  const resolved = await resolveFleet(options);
  options.onPlan?.(resolved.plan.fleet);
  if (options.dryRun) return { ...dryRunOf(resolved.plan.calls), fleet: resolved.plan.fleet };
  // Before any cloud call: a fleet of several vCPUs on a kernel with the unmap deadlock is refused.
  await requireUnmapSafeKernel(
    machineShape(resolved.machineType).vcpus,
    resolved.machineType,
    kernelVcpuPolicy(options),
  );
  return withClients(options, (clients) => runResolvedFleet(options, resolved, clients));
}

/** Build and import the images, run the fleet, release the imports' leftovers, write fleet.json. */
async function runResolvedFleet(
  options: GcpRunFleetOptions,
  r: Resolved,
  clients: GcpClients,
): Promise<GcpRunFleetResult> {
  const startedAt = new Date();
  const runsDir = resolve(r.cwd, options.runsDir ?? 'runs');
  const fleetDir = join(runsDir, r.fleetId);
  const { release } = await requireOpsAndNanos(options);
  const prepared = await prepareTarget(prepareOptionsOf(options, options));
  const fileProof = fleetFileProof(options, r, prepared, fleetDir);
  let imports: FleetImports | undefined;
  let result: FleetResult | undefined;
  try {
    imports = await importFleetImages(options, r, { prepared, release, fileProof }, clients, fleetDir);
    const shared: GceFleetShared = {
      spec: imports.spec,
      clients,
      ...(options.poll ? { poll: options.poll } : {}),
      machineType: r.machineType,
      nanosVersion: release.version,
      timeoutMs: r.timeoutMs,
      ...(options.watch ? { watch: options.watch } : {}),
      ...(fileProof?.staged ? { fileProof: fileProof.staged } : {}),
      ...(imports.spec.volume?.readOnly
        ? { prepareZone: fleetZoneDisks(options, imports.spec, clients, fleetDir) }
        : {}),
    };
    const sweep = fleetSweeper({
      clients,
      target: options.target,
      fleetId: r.fleetId,
      ...(options.poll ? { poll: options.poll } : {}),
    });
    result = await runFleet({
      fleetId: r.fleetId,
      inputs: r.inputs.map((args, index) => ({ index, args })),
      parallel: options.parallel,
      zones: r.zones,
      ...(options.retries !== undefined ? { retries: options.retries } : {}),
      runOne: gceFleetRunOne({
        shared,
        prepared,
        runsDir,
        cwd: r.cwd,
        ...(options.noReport ? { noReport: true } : {}),
        ...(options.onAttemptRecord ? { onRecord: options.onAttemptRecord } : {}),
        ...(fileProof
          ? {
              consoleProof: {
                cacheDir: options.cacheDir,
                ...(options.pathEnv ? { pathEnv: options.pathEnv } : {}),
              },
            }
          : {}),
      }),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.forceSignal ? { forceSignal: options.forceSignal } : {}),
      sweep: () => sweep(),
      leaveZone: (zone) => sweep(zone),
      ...(options.onFleetEvent ? { onEvent: options.onFleetEvent } : {}),
      ...options.scheduler,
    });
  } finally {
    // The images stay (reused by digest) when the fleet ran; a failed import takes its half-made image.
    for (const ctx of imports?.contexts ?? []) {
      // Quietly: the fleet's view has ended; this only deletes a tarball or a half-made image, if any.
      const quiet = { ...ctx, onProgress: undefined };
      await releaseAll(quiet, result ? 'success' : 'failure', 10 * 60_000).catch(() => {});
    }
  }
  const fleet = result as FleetResult; // set: importFleetImages and runFleet threw otherwise
  const record = buildFleetRecord(fleet, {
    machineType: r.machineType,
    spot: r.spec.machine.spot,
    parallel: options.parallel,
    zones: r.zones,
    startedAt,
  });
  const recordPath = await writeFleetRecord(runsDir, record);
  return { dryRun: false, fleet, record, recordPath };
}

type FleetImports = Awaited<ReturnType<typeof importFleetImages>>;

/** What building the fleet's images takes: the package prepared once, the Nanos release, the file proof's route. */
interface FleetBuild {
  prepared: PreparedTarget;
  release: Parameters<typeof buildGcpImage>[1];
  fileProof: ReturnType<typeof fleetFileProof>;
}

/**
 * Build and import one boot image per distinct argument list (reused by digest; labelled with the arguments'
 * digest) and the volume image once: the staging bucket checked first, then at most --parallel imports at once,
 * the `ops build`s one at a time. A failed or interrupted import deletes what it half made; the error is the
 * fleet's. Returns the spec every attempt shares (images by name) and the imports' contexts, released at the end.
 */
async function importFleetImages(
  options: GcpRunFleetOptions,
  r: Resolved,
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
  const images = await pool(
    lists,
    options.parallel,
    async (args, lock, index) => {
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
      const built = await lock(() =>
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
    },
    volume ? () => run([volSource!], volumeCalls) : undefined,
  );
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

/**
 * Each item through `work`, at most `limit` at once, with a lock that runs one thing at a time across them (the
 * `ops build`s); `extra` runs alongside. Starts nothing new once one failed; waits for all started, then throws
 * the first error.
 */
async function pool<T, R>(
  items: T[],
  limit: number,
  work: (item: T, lock: <X>(f: () => Promise<X>) => Promise<X>, index: number) => Promise<R>,
  extra?: () => Promise<void>,
): Promise<R[]> {
  let chain: Promise<unknown> = Promise.resolve();
  const lock = <X>(f: () => Promise<X>): Promise<X> => {
    const next = chain.then(f, f);
    chain = next.catch(() => {});
    return next;
  };
  const results: R[] = [];
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await work(items[i]!, lock, i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const settled = await Promise.allSettled([
    ...Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker),
    ...(extra ? [extra()] : []),
  ]);
  const failure = settled.find((s) => s.status === 'rejected');
  if (failure) throw (failure as PromiseRejectedResult).reason;
  return results;
}

/**
 * A file proof's console route for the fleet's images: the library staged into each image's config (the builds
 * run one at a time); what it was staged from is kept for each attempt's own receiver. Undefined for other
 * proofs.
 */
function fleetFileProof(
  options: GcpRunFleetOptions,
  r: Resolved,
  prepared: PreparedTarget,
  fleetDir: string,
) {
  const stub = { dir: fleetDir, warnings: [] } as unknown as RunRecord;
  const tap = consoleProofTap(prepared.proof, {
    where: 'gce',
    cacheDir: options.cacheDir,
    timeoutMs: r.timeoutMs,
    record: stub,
    pathEnv: options.pathEnv,
    signal: options.signal,
  });
  if (!tap) return undefined;
  const holder: { staged?: { config: OpsConfig; programPath: string }; stage: typeof tap.stage } = {
    stage: async (config, programPath) => {
      holder.staged = { config, programPath };
      return tap.stage(config, programPath);
    },
  };
  return holder;
}

/**
 * The fleet's read-only volume disk, made once in each zone the fleet uses (a failed make is tried again by the
 * next attempt there); the fleet's label sweep deletes it after the instances that used it.
 */
export function fleetZoneDisks(
  options: GcpCommonOptions,
  spec: GcpFleetSpec,
  clients: GcpClients,
  fleetDir: string,
): (zone: string, signal: AbortSignal) => Promise<void> {
  const made = new Map<string, Promise<void>>();
  return (zone: string, signal: AbortSignal): Promise<void> => {
    let once = made.get(zone);
    if (!once) {
      const target = { ...options.target, zone };
      const ctx = newContext({ ...options, target, signal }, clients, fleetDir, []);
      once = executeCalls(ctx, planFleetVolumeDisk(spec, zone));
      once.catch(() => made.delete(zone));
      made.set(zone, once);
    }
    return once;
  };
}

/**
 * The fleet's sweep (every zone) and its leaving of one zone (`zone` given): delete what carries its label, and
 * throw (naming `gcp gc --fleet`) when something could not be deleted.
 */
export function fleetSweeper(options: {
  clients: GcpClients;
  target: GcpCommonOptions['target'];
  fleetId: string;
  poll?: GcpCommonOptions['poll'];
}): (zone?: string) => Promise<void> {
  return async (zone?: string) => {
    const swept = await sweepFleet({
      clients: options.clients,
      target: options.target,
      fleetId: options.fleetId,
      ...(zone ? { zone } : {}),
      ...(options.poll ? { poll: options.poll } : {}),
    });
    if (swept.failed.length > 0) {
      throw new UniproveError('E_GCP', {
        message: `could not delete ${swept.failed.map((f) => `${f.kind} ${f.zone}/${f.name}`).join(', ')}: ${swept.failed[0]!.message}`,
        hint: `Run \`uniprove gcp gc --fleet ${options.fleetId}\`; \`uniprove gcp ls\` shows what is left.`,
        details: { leftovers: swept.failed },
      });
    }
  };
}

/** What an attempt's run needs from the fleet. */
export interface GceFleetRunOneOptions {
  /** The images (imported), clients, machine and limits every attempt shares. */
  shared: GceFleetShared;
  /** The package, prepared once for the fleet. */
  prepared: PreparedTarget;
  /** Folder of run records; proving_report.csv lives here. */
  runsDir: string;
  cwd?: string;
  noReport?: boolean;
  /** A file proof comes back through the console (the fleet's image was staged with the library). */
  consoleProof?: { cacheDir: string; pathEnv?: string };
  /** Told each attempt's record as its run ends. */
  onRecord?: (record: RunRecord) => void;
}

/**
 * The Compute Engine runOne: one run of the lifecycle with the fleet's gce driver on a fresh instance in the
 * attempt's zone. Its record is the input's (runs/<run-id>/, a proving_report.csv line); a preempted instance
 * resolves `preempted`; capacity errors are thrown as they come; Ctrl-C deletes the instance and throws
 * E_INTERRUPTED.
 */
export function gceFleetRunOne(c: GceFleetRunOneOptions): RunOne {
  return async (input, ctx): Promise<AttemptOutcome> => {
    const driver = new GceFleetDriver(c.shared, { ...input, ...ctx });
    try {
      const record = await runOnMachine(driver, {
        ...(c.cwd ? { cwd: c.cwd } : {}),
        runsDir: c.runsDir,
        prover: c.prepared.name,
        args: input.args,
        timeoutMs: c.shared.timeoutMs,
        ...(c.noReport ? { noReport: true } : {}),
        signal: ctx.signal,
        elsewhere:
          'run from a folder you can write on a disk with room (runs/ is made in the current folder)',
        prepared: c.prepared,
        prepare: async () => c.prepared,
        ...(c.consoleProof ? { consoleProof: { where: 'gce' as const, ...c.consoleProof } } : {}),
        describe: (record) => describeAttempt(record, c, input.index, ctx),
      });
      c.onRecord?.(record);
      const kind = record.outcome === 'succeeded' ? 'succeeded' : 'failed';
      return { kind, runId: record.id, dir: record.dir, instanceSeconds: driver.instanceSeconds() };
    } catch (error) {
      const runDir = isUniproveError(error) ? (error.details.runDir as string | undefined) : undefined;
      const ran = runDir ? { runId: runDir.replace(/^.*\//, ''), dir: runDir } : {};
      if (isUniproveError(error) && error.code === 'E_GCP_PREEMPTED') {
        return {
          kind: 'preempted',
          ...ran,
          instanceSeconds: driver.instanceSeconds(),
          detail: error.message,
        };
      }
      if (ctx.signal.aborted && !(isUniproveError(error) && error.code === 'E_INTERRUPTED')) {
        throw new UniproveError('E_INTERRUPTED', {
          message: 'interrupted by Ctrl-C: the instance was deleted',
          cause: error,
          details: ran,
        });
      }
      throw error;
    }
  };
}

/** What an attempt's record says before it runs: where, which input of which fleet. */
function describeAttempt(
  record: RunRecord,
  c: GceFleetRunOneOptions,
  index: number,
  ctx: { fleetId: string; zone: string; attempt: number },
): void {
  record.accel = 'gce';
  record.accelReason = `Compute Engine ${c.shared.machineType} in ${ctx.zone}: fleet ${ctx.fleetId}, input ${index + 1}, attempt ${ctx.attempt}`;
  record.fleet = { id: ctx.fleetId, input: index, attempt: ctx.attempt };
}
