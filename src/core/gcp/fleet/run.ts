/**
 * `gcp run <recipe> --inputs FILE --parallel N`: a fleet. The recipe is packaged once; its images are built and
 * imported once (image/gce-fleet.ts: one per distinct argument list, since Nanos reads the program's arguments
 * from the image's manifest, and the volume image once); then every input is one run of the run lifecycle
 * (run/lifecycle.ts) with the gce driver (machine/drivers/gce.ts, booting the image of its arguments) on a fresh
 * instance, scheduled by gcp/fleet/scheduler.ts: Spot retries, capacity back-off and zones, Ctrl-C. Each input
 * keeps its own run record and proving_report.csv line; the fleet keeps runs/<fleet-id>/fleet.json. Everything
 * is resolved and checked (and the cost refused past --max-cost) before the first side effect.
 */
import { join, resolve } from 'node:path';
import type { GcpClients } from '../../cloud/clients.js';
import { cloudOpsServiceAccounts } from '../../cloud/cloud-ops.js';
import {
  defaultBucket,
  dryRunOf,
  type GcpCommonOptions,
  type GcpDryRunResult,
  newContext,
  releaseAll,
  withClients,
} from '../../cloud/context.js';
import { executeCalls } from '../../cloud/execute.js';
import {
  distinctArgs,
  fleetMachine,
  type GcpFleetPlan,
  type GcpFleetSpec,
  planFleet,
  planFleetVolumeDisk,
} from '../../cloud/fleet-plan.js';
import { sweepFleet } from '../../cloud/fleet-sweep.js';
import { DEFAULT_RUN_TIMEOUT_MS } from '../../cloud/instance.js';
import { machineTypeName } from '../../cloud/plan.js';
import { checkMaxCost, machineShape } from '../../cloud/prices.js';
import { isUniproveError, UniproveError } from '../../errors.js';
import {
  imagePlaceholder,
  prepareOptionsOf,
  recipeMachine,
  resolveGcpRecipe,
} from '../../image/gce-build.js';
import { importFleetImages } from '../../image/gce-fleet.js';
import { GceDriver, type GceFleetShared } from '../../machine/drivers/gce.js';
import type { OpsConfig } from '../../manifest/schema.js';
import { requireOpsAndNanos } from '../../ops/build.js';
import { type PreparedTarget, prepareTarget } from '../../package/target.js';
import { checkProofFits, consoleProofTap } from '../../proof/index.js';
import type { RunRecord } from '../../record/record.js';
import { kernelVcpuPolicy } from '../../run/index.js';
import { lifecycleOptions, runOnMachine } from '../../run/lifecycle.js';
import { readInputs } from '../../run/parallel.js';
import { requireUnmapSafeKernel } from '../../run/vcpus.js';
import { describeGce } from '../describe.js';
import type { GcpRunRecipeOptions } from '../run.js';
import { buildFleetRecord, type FleetRecord, newFleetId, writeFleetRecord } from './record.js';
import {
  type AttemptOutcome,
  type FleetEvent,
  type FleetOptions,
  type FleetResult,
  type RunOne,
  runFleet,
} from './scheduler.js';

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
  const machineType = machineTypeName(options.target, machine);
  const fleetId = options.fleetId ?? newFleetId();
  const zones = options.zones?.length ? options.zones : [options.target.zone];
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
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
    const { shared } = c;
    const driver = new GceDriver({
      boot: { fleet: shared, attempt: { ...input, ...ctx } },
      instance: {
        target: { ...shared.spec.target, zone: ctx.zone },
        clients: shared.clients,
        signal: ctx.signal,
        machine: shared.spec.machine,
        timeoutMs: shared.timeoutMs,
        ...(shared.poll ? { poll: shared.poll } : {}),
        ...(shared.watch ? { watch: shared.watch } : {}),
      },
      machineType: shared.machineType,
      diskType: shared.spec.volume?.diskType ?? 'pd-balanced',
    });
    try {
      const record = await runOnMachine(
        driver,
        lifecycleOptions(
          {
            cwd: c.cwd,
            runsDir: c.runsDir,
            timeoutMs: shared.timeoutMs,
            noReport: c.noReport,
            signal: ctx.signal,
          },
          {
            prover: c.prepared.name,
            args: input.args,
            prepared: c.prepared,
            prepare: async () => c.prepared,
            ...(c.consoleProof ? { consoleProof: { where: 'gce' as const, ...c.consoleProof } } : {}),
            describe: (record) => {
              describeGce(
                record,
                shared.machineType,
                ctx.zone,
                `fleet ${ctx.fleetId}, input ${input.index + 1}, attempt ${ctx.attempt}`,
              );
              record.fleet = { id: ctx.fleetId, input: input.index, attempt: ctx.attempt };
            },
          },
        ),
      );
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
