/** `uniprove gcp run <recipe> --inputs FILE --parallel N`: a fleet, its live view, its table, its exit status. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type CloudOpsSpec, cloudOpsPlan } from '../../../core/cloud/cloud-ops.js';
import type { GcpDiskType, GcpMachineSpec } from '../../../core/cloud/plan.js';
import { UniproveError } from '../../../core/errors.js';
import { fleetError } from '../../../core/gcp/fleet/record.js';
import type { GcpFleetDryRunResult, GcpRunFleetResult } from '../../../core/gcp/fleet/run.js';
import { gcpRunFleet } from '../../../core/gcp/fleet/run.js';
import type { FleetResult } from '../../../core/gcp/fleet/scheduler.js';
import type { CliContext } from '../../context.js';
import { createFleetProgress } from '../../fleet-progress.js';
import {
  type CloudOpsFlags,
  cloudOpsLines,
  cloudOpsOf,
  type ObserveFlags,
  observeSpec,
  proverName,
  startObserver,
} from '../../observe.js';
import { createProgress } from '../../progress.js';
import { printJson, printLines, renderError } from '../../render.js';
import {
  type CommonFlags,
  common,
  fastPollMs,
  printDryRun,
  type RecipeFlags,
  recipeSource,
} from './shared.js';

/** The fleet's options of `gcp run` (with a recipe). */
export function addFleetOptions(cmd: Command): Command {
  return cmd
    .option('--no-spot', 'with --inputs: on-demand instances instead of Spot')
    .option(
      '--inputs <file>',
      "with a recipe: a fleet, one proof per line of FILE (the prover's arguments, as `run --inputs`)",
    )
    .option('--parallel <n>', 'with --inputs: at most N instances at once (default 1)')
    .option(
      '--zones <a,b,c>',
      'with --inputs: zones in order; the fleet moves on when one runs out (default --zone)',
    )
    .option('--retries <n>', 'with --inputs: new instances for a preempted input (default 2)')
    .option(
      '--max-cost <usd>',
      'with --inputs: refuse a fleet whose estimated cost exceeds USD dollars, before anything is made',
    );
}

/** The fleet part of `gcp run --help`. */
export const FLEET_HELP = `A fleet: --inputs FILE runs the recipe once per line (the same file as \`uniprove run --inputs\`: a JSON
array of arguments or words a line, # comments), at most --parallel N instances at once, Spot unless
--no-spot. One image is built and imported per distinct argument list (Nanos reads the arguments
from the image; identical lines share one), the volume image once; each input gets a fresh instance
booting the image of its arguments, with its own volume disk, its own record in runs/<run-id>/ and a proving_report.csv line; the fleet's
summary goes to runs/<fleet-id>/fleet.json and a table at the end. A preempted input is retried on a
new instance (--retries); quota and exhausted zones back off and move on through --zones. Every
instance and disk carries uniprove-fleet=<fleet-id>. Ctrl-C starts nothing new and deletes
everything; a second Ctrl-C deletes everything at once; exit 130 either way.

  $ uniprove gcp run demo --inputs inputs.txt --parallel 5 --dry-run     calls and cost estimate
  $ uniprove gcp run demo --inputs inputs.txt --parallel 5 --zones us-central1-a,us-central1-b
  $ uniprove gcp run demo --inputs inputs.txt --parallel 20 --max-cost 10 --json
  $ uniprove gcp ls                              resources grouped by fleet
  $ uniprove gcp gc --fleet f20250101t120000123-a1b2c3`;

/** The fleet's flags of `gcp run`. */
export interface FleetFlags {
  inputs?: string;
  parallel?: string;
  zones?: string;
  retries?: string;
  maxCost?: string;
  spot?: boolean;
  out?: string;
  keep?: boolean;
  runsDir: string;
  dryRun?: boolean;
}

function wholeNumber(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new UniproveError('E_USAGE', {
      message: `${flag} ${text} is not a whole number of ${min} or more`,
      hint: `For example ${flag} ${Math.max(min, 2)}.`,
    });
  }
  return n;
}

/** Check and parse the fleet's flags (before credentials: a bad flag costs nothing). */
export function fleetFlags(recipe: string | undefined, flags: FleetFlags) {
  const fleetOnly = (['parallel', 'zones', 'retries', 'maxCost'] as const).filter(
    (k) => flags[k] !== undefined,
  );
  if (!flags.inputs) {
    if (fleetOnly.length > 0) {
      throw new UniproveError('E_USAGE', {
        message: `--${fleetOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} goes with --inputs FILE (a fleet)`,
        hint: 'Give --inputs FILE (one input a line) to run a fleet, or drop the fleet flags.',
      });
    }
    return undefined;
  }
  if (!recipe) {
    throw new UniproveError('E_USAGE', {
      message: '--inputs runs a recipe (or package folder) once per line, and none was given',
      hint: 'For example: uniprove gcp run demo --inputs inputs.txt --parallel 5',
    });
  }
  if (flags.out || flags.keep) {
    throw new UniproveError('E_USAGE', {
      message: `${flags.out ? '--out' : '--keep'} does not go with --inputs: a fleet keeps one record per input in --runs-dir and deletes every instance`,
      hint: 'Drop it; each input gets runs/<run-id>/, the fleet runs/<fleet-id>/fleet.json.',
    });
  }
  const maxCost = flags.maxCost === undefined ? undefined : Number(flags.maxCost);
  if (maxCost !== undefined && !(maxCost >= 0)) {
    throw new UniproveError('E_USAGE', {
      message: `--max-cost ${flags.maxCost} is not an amount of dollars`,
      hint: 'For example --max-cost 25 (USD); --dry-run shows the estimate.',
    });
  }
  const zones = flags.zones
    ?.split(',')
    .map((z) => z.trim())
    .filter(Boolean);
  return {
    inputs: flags.inputs,
    parallel: wholeNumber(flags.parallel ?? '1', '--parallel', 1),
    ...(zones?.length ? { zones } : {}),
    ...(flags.retries !== undefined ? { retries: wholeNumber(flags.retries, '--retries', 0) } : {}),
    ...(maxCost !== undefined ? { maxCostUsd: maxCost } : {}),
  };
}

/** What runFleetCommand takes from `gcp run`'s own parsing. */
export interface FleetRunParts {
  fleet: NonNullable<ReturnType<typeof fleetFlags>>;
  machine: Omit<GcpMachineSpec, 'cpus' | 'memoryGb'>;
  diskType: GcpDiskType;
  diskSize?: number;
  shared: {
    bootDisk: { type: GcpDiskType };
    network: string;
    labels: Record<string, string>;
    bucket?: string;
    timeoutMs: number;
  };
}

/** Run a fleet: live progress on stderr, a table (or one JSON object) on stdout, the fleet's exit status. */
export async function runFleetCommand(
  ctx: CliContext,
  recipe: string,
  flags: FleetFlags & CommonFlags & RecipeFlags & ObserveFlags & CloudOpsFlags,
  parts: FleetRunParts,
  t: Parameters<typeof common>[1],
): Promise<void> {
  const json = Boolean(flags.json);
  const dryRun = Boolean(flags.dryRun);
  const cloudOps = cloudOpsOf(flags);
  const observing = await observeSpec(ctx, flags);
  // A dry run makes nothing and runs nothing: no metrics server, no alerts.
  const observer =
    observing && !dryRun
      ? await startObserver(ctx, observing, {
          prover: proverName(recipe),
          ...(parts.fleet.retries !== undefined ? { retries: parts.fleet.retries } : {}),
        })
      : undefined;
  ctx.holdSecondInterrupt?.();
  const steps = createProgress(ctx.out, { quiet: dryRun || json });
  const live = createFleetProgress(ctx.out, { json, quiet: dryRun, env: ctx.env });
  let started = false;
  const fast = fastPollMs(ctx);
  let result: GcpRunFleetResult | GcpFleetDryRunResult;
  try {
    result = await gcpRunFleet({
      ...recipeSource(ctx, recipe, flags),
      ...(cloudOps ? { cloudOps } : {}),
      ...common(ctx, t, flags, steps.onProgress),
      ...parts.shared,
      ...parts.fleet,
      machine: { ...parts.machine, ...(flags.spot === false ? { spot: false } : { spot: true }) },
      volumeDisk: { diskType: parts.diskType, ...(parts.diskSize ? { sizeGb: parts.diskSize } : {}) },
      runsDir: resolve(ctx.cwd, flags.runsDir),
      dryRun,
      ...(ctx.force ? { forceSignal: ctx.force } : {}),
      ...(fast
        ? {
            watch: { intervalMs: fast, statusEvery: 2 },
            scheduler: { backoff: { baseMs: fast * 5, maxMs: fast * 50 }, tickMs: fast * 100 },
          }
        : {}),
      ...(observer
        ? {
            onPlan: (fleet) => observer.onPlan(fleet),
            onAttemptRecord: (record) => observer.onAttemptRecord(record),
          }
        : {}),
      onFleetEvent: (e) => {
        if (!started) {
          started = true;
          void steps.done();
        }
        observer?.onFleetEvent(e);
        live.onEvent(e);
      },
    });
    if (!result.dryRun) observer?.fleetEnd(result.fleet, result.recordPath, result.record.estimatedCostUsd);
  } catch (error) {
    observer?.failed(error, undefined, false);
    throw error;
  } finally {
    await steps.done();
    await live.done();
    await observer?.end();
  }
  if (result.dryRun) return printFleetDryRun(ctx, result, json, cloudOps);
  const error = fleetError(result.fleet);
  if (json) {
    printJson(ctx.out, {
      fleetId: result.fleet.fleetId,
      record: result.recordPath,
      summary: result.fleet.summary,
      interrupted: result.fleet.interrupted,
      estimatedCostUsd: result.record.estimatedCostUsd,
      inputs: fleetRows(result.fleet),
      ...(error ? { error: error.toJSON() } : {}),
    });
  } else printFleetTable(ctx, result);
  if (error) process.exitCode = renderError(ctx.out, error, false);
}

/** The dry run: the calls, then the fleet's shape and cost estimate. */
function printFleetDryRun(
  ctx: CliContext,
  result: GcpFleetDryRunResult,
  json: boolean,
  cloudOps: CloudOpsSpec | undefined,
): void {
  if (json) {
    printJson(ctx.out, {
      calls: result.calls,
      fleet: result.fleet,
      ...(cloudOps ? { cloudOps: cloudOpsPlan(cloudOps) } : {}),
    });
    return;
  }
  printDryRun(ctx, result, false);
  const f = result.fleet;
  const c = f.cost;
  printLines(ctx.out, [
    '',
    `Fleet ${f.id}: ${f.inputs} inputs, ${f.images} ${f.images === 1 ? 'image' : 'images'} (one per distinct argument list: Nanos reads the arguments from the image), at most ${f.parallel} ${f.spot ? 'Spot' : 'on-demand'} ${f.machineType} at once, zones ${f.zones.join(', ')}, label ${Object.entries(f.labels).map(([k, v]) => `${k}=${v}`)}`,
    `Estimated cost: ${c.usd === null ? 'unknown' : `$${c.usd.toFixed(2)}`} (${c.instances} instances, ${c.instanceHours.toFixed(2)} instance-hours, ${c.vcpuHours.toFixed(1)} vCPU-hours; prices of ${c.prices.date}, ${c.prices.region}, ${c.prices.source})`,
    ...c.warnings.map((w) => `  note: ${w}`),
    ...(cloudOps ? cloudOpsLines(cloudOps) : []),
  ]);
}

/** One row per input: outcome, attempts, zone, run id, time of its last attempt. */
function fleetRows(fleet: FleetResult) {
  return fleet.inputs.map((i) => {
    const last = fleet.attempts.filter((a) => a.index === i.index).at(-1);
    return {
      input: i.args.join(' '),
      outcome: i.outcome,
      attempts: i.attempts,
      retries: i.retries,
      zone: i.zone ?? null,
      runId: i.runId ?? null,
      dir: i.dir ?? null,
      seconds: last ? Math.round((last.endedMs - last.startedMs) / 100) / 10 : null,
    };
  });
}

function printFleetTable(ctx: CliContext, result: GcpRunFleetResult): void {
  const rows = fleetRows(result.fleet).map((r) => [
    r.input.length > 40 ? `${r.input.slice(0, 39)}…` : r.input,
    r.outcome,
    String(r.attempts),
    r.zone ?? '-',
    r.runId ?? '-',
    r.seconds === null ? '-' : `${r.seconds} s`,
  ]);
  const head = ['input', 'outcome', 'attempts', 'zone', 'run id', 'time'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const r = result.record;
  printLines(ctx.out, [
    line(head),
    ...rows.map(line),
    '',
    `fleet ${r.id}: ${r.succeeded} of ${r.inputs} proofs, ${r.retried} retried, ${r.wallSeconds.toFixed(1)} s, ${r.instanceHours.toFixed(3)} instance-hours, ${r.estimatedCostUsd === null ? 'cost unknown' : `about $${r.estimatedCostUsd.toFixed(2)}`}`,
    `  record: ${result.recordPath}`,
  ]);
}
