/**
 * One run, any machine: open the record → check the platform → prepare the package and volumes → build or reuse
 * the image → start → watch the console → collect proofs → destroy what was made → write the record and the
 * proving_report.csv line. On success, failure, timeout and Ctrl-C alike the record is closed and the driver's
 * machine destroyed. `uniprove run` (qemu, ops) and `uniprove gcp run` (gce) are two front ends of it.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { KernelStopWatch } from '../diagnose/kernel-stop.js';
import { isUniproveError, UniproveError } from '../errors.js';
import { toWriteError, type WriteContext, withWriteErrors } from '../fs.js';
import type { DriverRun, MachineDriver, MachineEnd, MachineReport } from '../machine/driver.js';
import type { PreparedTarget } from '../package/target.js';
import { consoleProofTap } from '../proof/index.js';
import {
  CONSOLE_LOG,
  finishRecord,
  newRunId,
  RECORD_FILE,
  type RunOutcome,
  type RunRecord,
  writeRecord,
} from '../record/record.js';
import { addFindings, collectConsoleProofs, warnDiskFull, writeTraceLog } from './evidence.js';
import { fitVcpus, type VcpuPolicy } from './vcpus.js';

/** The run as the lifecycle holds it: the driver's view, with the record the lifecycle alone writes. */
type LifecycleRun = DriverRun & { record: RunRecord };

/** What the lifecycle needs besides the driver. */
export interface RunOnMachineOptions {
  cwd?: string;
  /** Folder of run records; proving_report.csv lives here (default <cwd>/runs). */
  runsDir?: string;
  /** This run's record folder (default <runsDir>/<id>). */
  out?: string;
  /** What was asked to run (a recipe or a package folder), until the package names it. */
  prover: string;
  args: string[];
  /** Stop the prover after this long (ms; 0 or absent: the driver's default). */
  timeoutMs?: number;
  /** Nanos trace lines into trace.log. */
  trace?: boolean;
  noReport?: boolean;
  signal?: AbortSignal;
  /** Where else to write when the record folder cannot be written (the hint of E_DISK_FULL and friends). */
  elsewhere: string;
  /** The package, already prepared (parallel runs share one), or how to prepare it. */
  prepared?: PreparedTarget;
  prepare: () => Promise<PreparedTarget>;
  /** Fields and warnings the front end knows before anything runs. */
  describe?: (record: RunRecord) => void;
  /**
   * Bring a file proof back through the console (always on Compute Engine, `run --proof-via console` locally):
   * a preloaded library prints it at the prover's exit (proof/index.ts).
   */
  consoleProof?: { where: 'local' | 'gce'; cacheDir: string; pathEnv?: string; timeoutMs?: number };
  /** How to decide a run's vCPUs on this kernel (run/vcpus.ts); without it the package's stand. */
  vcpus?: VcpuPolicy;
}

/** What every front end passes the lifecycle the same way: where the record goes, how long, Ctrl-C. */
export interface RunPlace {
  cwd?: string | undefined;
  runsDir?: string | undefined;
  out?: string | undefined;
  timeoutMs?: number | undefined;
  noReport?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

/** Where to write instead when the record folder cannot be written: what every front end says. */
export const RECORD_ELSEWHERE =
  'run from a folder you can write on a disk with room (runs/ is made in the current folder)';

/**
 * The lifecycle's options from a front end's own, normalised in one place (as execa's normalizeOptions does):
 * the fields every front end shares are taken from `place` where set, the rest is the front end's.
 */
export function lifecycleOptions(
  place: RunPlace,
  run: Omit<RunOnMachineOptions, keyof RunPlace | 'elsewhere'> & { elsewhere?: string },
): RunOnMachineOptions {
  return {
    ...(place.cwd ? { cwd: place.cwd } : {}),
    ...(place.runsDir ? { runsDir: place.runsDir } : {}),
    ...(place.out ? { out: place.out } : {}),
    ...(place.timeoutMs ? { timeoutMs: place.timeoutMs } : {}),
    ...(place.noReport ? { noReport: true } : {}),
    ...(place.signal ? { signal: place.signal } : {}),
    elsewhere: RECORD_ELSEWHERE,
    ...run,
  };
}

/**
 * The machine's end as the run takes it: where the Nanos kernel stopped (an assertion, a fault), the run failed
 * on that, whatever status the machine gave afterwards (Ctrl-C stays an interruption).
 */
export function withKernelStop(
  end: MachineEnd,
  watch: KernelStopWatch | undefined,
  signal: AbortSignal | undefined,
): MachineEnd {
  watch?.dispose();
  if (!watch?.quote || signal?.aborted) return end;
  return {
    state: 'exited',
    kernelStop: watch.quote,
    reason: `the Nanos kernel stopped (${watch.quote}); the guest was stopped there${watch.stopped ? ' instead of waiting for the timeout' : ''}`,
  };
}

/** The outcome of a machine's end; `proofs`: console proofs that came back (decide where no status is carried). */
export function outcomeOf(end: MachineEnd, driver: MachineDriver, proofs: number): RunOutcome {
  if (end.kernelStop) return 'failed';
  if (end.state === 'timeout') return 'timeout';
  if (end.state === 'stopped') return 'interrupted';
  if (end.state === 'failed') return 'error';
  if (driver.exitStatus === 'known' && end.exitCode !== undefined)
    return end.exitCode === 0 ? 'succeeded' : 'failed';
  // A status the console reported (a file proof's library) where the platform carries none: a proof of a
  // prover that exited non-zero is no success.
  if (driver.exitStatus === 'proof' && proofs >= 0)
    return proofs > 0 && (end.exitCode ?? 0) === 0 ? 'succeeded' : 'failed';
  if (end.exitCode !== undefined) return end.exitCode === 0 ? 'succeeded' : 'failed';
  return 'unknown';
}

/**
 * The machine's end with the exit status the console reported (proof-out.c's exit line) where the platform
 * carries none (Compute Engine); where it carries one (QEMU), the platform's stands and a different one is
 * warned about. The record's exitCode and exitReason follow.
 */
export function withConsoleExit(
  end: MachineEnd,
  reported: number | undefined,
  record: RunRecord,
): MachineEnd {
  if (reported === undefined || end.state !== 'exited') return end;
  if (end.exitCode !== undefined) {
    if (end.exitCode !== reported) {
      record.warnings.push({
        code: 'exit-status-mismatch',
        message: `the console said the prover exited with status ${reported}, the machine ${end.exitCode}; the machine's is kept`,
      });
    }
    return end;
  }
  const reason = `the prover exited with status ${reported} (reported on the console by the file proof's preloaded library at exit)`;
  record.exitCode = reported;
  record.exitReason = reason;
  return { ...end, exitCode: reported, reason };
}

/**
 * Run a prover once on the driver's machine. Returns the record whatever the prover did (succeeded, failed,
 * timed out); throws UniproveError when it could not be run, and on Ctrl-C, after closing the record
 * (details.runDir).
 */
export async function runOnMachine(driver: MachineDriver, options: RunOnMachineOptions): Promise<RunRecord> {
  const cwd = options.cwd ?? process.cwd();
  const startedMs = performance.now();
  const runsDir = resolve(cwd, options.runsDir ?? 'runs');
  const id = newRunId();
  const dir = options.out ? resolve(cwd, options.out) : join(runsDir, id);
  const writing: WriteContext = { what: 'the run record', path: dir, elsewhere: options.elsewhere };
  if (options.out) await refuseEarlierRun(dir);
  await withWriteErrors(writing, () => mkdir(dir, { recursive: true }));
  const record = openRecord(id, dir, driver, options);
  const run: LifecycleRun = { record, startedMs, kernelStop: new KernelStopWatch() };
  const finish = (outcome: RunOutcome) =>
    finishRecord(record, outcome, { runsDir, startedAt: startedMs, noReport: options.noReport });
  try {
    await writeRecord(record);
    takeReport(record, await driver.check(run));
    const prepared = options.prepared ?? (await options.prepare());
    const target = await fitVcpus(withConsoleProof(prepared, run, options), record, options.vcpus);
    record.prover = target.name;
    record.package = target.packageDir;
    record.volumes = target.volumes;
    record.warnings.push(...(target.warnings ?? []));
    takeReport(record, await driver.image(target, run));
    await writeRecord(record);
    options.signal?.throwIfAborted();
    takeReport(record, await driver.start(run));
    // The machine's command line and files are on disk while it runs.
    await writeRecord(record);
    const waited = await driver.wait(run);
    takeReport(record, waited.report);
    const end = withKernelStop(waited, run.kernelStop, options.signal);
    record.exitCode = end.exitCode ?? null;
    if (end.reason) record.exitReason = end.reason;
    const outcome = await collect(driver, end, target, run, options);
    takeReport(record, await driver.destroy(run));
    throwIfNotRun(outcome, end, driver, record);
    await finish(outcome);
    return record;
  } catch (caught) {
    run.kernelStop?.dispose();
    const error = await asRunError(caught, options.signal, writing);
    takeReport(record, await driver.destroy(run, error).catch(() => undefined));
    if (isUniproveError(error)) {
      record.error = error.summary();
      (error.details as Record<string, unknown>).runDir = dir;
    } else record.error = { code: 'E_INTERNAL', message: String(error) };
    const code = isUniproveError(error) ? error.code : '';
    const aborted = options.signal?.aborted === true || code === 'E_INTERRUPTED';
    await finish(aborted ? 'interrupted' : code === 'E_GCP_TIMEOUT' ? 'timeout' : 'error').catch(() => {});
    throw error;
  }
}

/**
 * What a driver saw, into the record: the lifecycle is the record's one writer. Scalar fields replace, timings
 * and files merge, warnings and proofs are added.
 */
export function takeReport(record: RunRecord, report: MachineReport | undefined): void {
  if (!report) return;
  const { timings, files, warnings, proofs, ...fields } = report;
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) (record as unknown as Record<string, unknown>)[key] = value;
  }
  if (timings) Object.assign(record.timings, timings);
  if (files) Object.assign(record.files, files);
  if (warnings) record.warnings.push(...warnings);
  if (proofs) record.proofs.push(...proofs);
}

/** An --out folder that holds an earlier run's record is evidence: never overwritten (E_USAGE). */
async function refuseEarlierRun(dir: string): Promise<void> {
  const path = join(dir, RECORD_FILE);
  const found = await lstat(path).then(
    () => true,
    () => false,
  );
  if (!found) return;
  throw new UniproveError('E_USAGE', {
    message: `--out ${dir} holds an earlier run's record (${path}); a run never overwrites another's record and console`,
    hint: 'Give --out a new folder, or leave --out out: each run gets its own runs/<id>/.',
    details: { path },
  });
}

/**
 * The target as the driver should see it: with a file proof coming back through the console, the driver stages
 * the tap into its config and copies no proof off the image (the lifecycle settles it from the console).
 */
function withConsoleProof(
  target: PreparedTarget,
  run: LifecycleRun,
  options: RunOnMachineOptions,
): PreparedTarget {
  const route = options.consoleProof;
  if (!route) return target;
  const tap = consoleProofTap(target.proof, {
    ...route,
    timeoutMs: route.timeoutMs ?? options.timeoutMs,
    record: run.record,
    signal: options.signal,
  });
  if (!tap) return target;
  run.consoleProof = tap;
  return { ...target, proof: { kind: 'none' } };
}

function openRecord(id: string, dir: string, driver: MachineDriver, options: RunOnMachineOptions): RunRecord {
  const record: RunRecord = {
    id,
    dir,
    prover: options.prover,
    args: options.args,
    via: driver.name,
    outcome: 'running',
    owner: { pid: process.pid, host: hostname() },
    exitCode: null,
    startedAt: new Date().toISOString(),
    timings: {},
    ...(options.timeoutMs ? { timeoutSeconds: options.timeoutMs / 1000 } : {}),
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
  };
  options.describe?.(record);
  return record;
}

/** Proofs (console, then files), trace.log and findings; the outcome, which a console proof may decide. */
async function collect(
  driver: MachineDriver,
  end: MachineEnd,
  target: PreparedTarget,
  run: LifecycleRun,
  options: RunOnMachineOptions,
): Promise<RunOutcome> {
  const { record } = run;
  let outcome = outcomeOf(end, driver, -1);
  record.outcome = outcome;
  if (outcome === 'interrupted') return outcome;
  const due = driver.exitStatus === 'proof' ? 'no-status' : outcome === 'succeeded' ? 'exited-0' : false;
  // A machine that could not run still has a console to read (what QEMU or the guest said before it died).
  const tap = run.consoleProof;
  const proofs = tap
    ? Number(await tap.settle(record, outcome === 'timeout' || outcome === 'error'))
    : await collectConsoleProofs(record, target.proof, due);
  const ended = withConsoleExit(end, tap?.exitCode(), record);
  outcome = outcomeOf(ended, driver, target.proof.kind === 'console' || tap ? proofs : -1);
  record.outcome = outcome;
  if (tap && proofs > 0 && outcome === 'failed') {
    record.warnings.push({
      code: 'proof-of-failed-prover',
      message: `the prover exited with status ${ended.exitCode}; its proof file is kept in proofs/ as evidence, not as a proof of success`,
    });
  }
  takeReport(record, await driver.fetchProofs(target, run));
  if (options.trace) await writeTraceLog(record);
  if (outcome !== 'succeeded') await addFindings(record, options.signal);
  await warnDiskFull(record);
  return outcome;
}

/** A machine that could not run, or Ctrl-C, is an error; a timeout keeps its record and says why in it. */
function throwIfNotRun(outcome: RunOutcome, end: MachineEnd, driver: MachineDriver, record: RunRecord): void {
  if (outcome === 'error') {
    throw new UniproveError('E_RUN_FAILED', {
      message: `the VM could not run: ${end.reason ?? `${driver.machineWord} failed`}`,
      ...(end.hint ? { hint: end.hint } : {}),
      details: { runDir: record.dir, ...end.details },
    });
  }
  if (outcome === 'interrupted') {
    throw new UniproveError('E_INTERRUPTED', {
      message: `interrupted by Ctrl-C: ${driver.machineWord} was stopped`,
      hint: `What the run produced so far is in ${record.dir}.`,
      details: { runDir: record.dir },
    });
  }
  if (outcome === 'timeout') {
    // Not thrown: a run that timed out still has its record, findings and proofs so far to return.
    const timeout = new UniproveError('E_RUN_TIMEOUT', {
      message: `the prover was still running after ${record.timeoutSeconds ?? 0} s and was stopped`,
      hint: `Give it arguments that make it end sooner, or raise --timeout. What it printed is in ${join(record.dir, CONSOLE_LOG)}.`,
    });
    record.error = timeout.summary();
  }
}

/** Anything thrown, as the error the run ends with: Ctrl-C named, a full disk typed. */
async function asRunError(caught: unknown, signal: AbortSignal | undefined, writing: WriteContext) {
  if (isUniproveError(caught)) return caught;
  if (signal?.aborted)
    return new UniproveError('E_INTERRUPTED', { message: 'interrupted by Ctrl-C', cause: caught });
  return toWriteError(caught, writing);
}
