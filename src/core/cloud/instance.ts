/**
 * A Compute Engine instance running a prover image: create what the run needs (images, the volume disk, the
 * instance), follow its serial console and status until the prover ends, then release everything the ledger
 * recorded unless kept. The gce machine driver (machine/drivers/gce.ts) drives it for every Compute Engine run.
 */
import { appendFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UniproveError } from '../errors.js';
import { newRunId } from '../record/record.js';
import type { GcpClients } from './clients.js';
import {
  cleanupError,
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
} from './context.js';
import { type ExecutionContext, executeCalls, noteRetry, type PerformedCall, resourceOf } from './execute.js';
import type { LedgerReleaseResult } from './ledger.js';
import { abortReason, gcpError, isNotFound, withRetry } from './operations.js';
import {
  type GcpCall,
  type GcpDiskType,
  type GcpImageSource,
  type GcpMachineSpec,
  type GcpPlan,
  type GcpRunSpec,
  imageNameFor,
  instanceNameFor,
  planRun,
  volumeDiskName,
} from './plan.js';
import { SerialConsoleReader } from './serial.js';

/** Decides, for each console line, whether the prover has ended; any truthy value ends the run and is kept. */
export type GcpEndDetector = (line: string) => unknown;

export interface GcpRunOptions extends GcpCommonOptions {
  /** The boot image: an existing image, or a raw disk to import (reused by digest). */
  image: { existing: string } | GcpRawDisk;
  volume?: ({ existing: string } | GcpRawDisk) & { diskType?: GcpDiskType; sizeGb?: number };
  machine: GcpMachineSpec;
  bootDisk?: { type?: GcpDiskType; sizeGb?: number };
  network?: string;
  labels?: Record<string, string>;
  bucket?: string;
  keep?: boolean;
  runId?: string;
  dryRun?: boolean;
  /** The service account the instance runs as (GcpRunSpec.serviceAccounts). */
  serviceAccounts?: GcpRunSpec['serviceAccounts'];
  /** How long the prover may run once the instance is up (ms; default 6 h). */
  timeoutMs?: number;
  /** Append the serial console here as it arrives. */
  consolePath?: string;
  /** Called with each whole console line, in order. */
  onConsoleLine?: (line: string) => void;
  /** The prover's end; without one, the run ends when the instance stops (Nanos powers off at exit). */
  isEnd?: GcpEndDetector;
  /**
   * A line that ends the run early whatever the proof (the Nanos kernel stopping). Unlike isEnd, no match is
   * waited for: without isEnd the instance's stop is still the run's end.
   */
  isFatal?: GcpEndDetector;
  /** Console and status polling (ms; defaults 2000 and every 3rd poll). */
  watch?: { intervalMs?: number; statusEvery?: number };
  workDir?: string;
}

export interface GcpRunResult {
  dryRun: false;
  runId: string;
  project: string;
  zone: string;
  instance: string;
  image: string;
  volumeDisk?: string;
  /** marker: the end detector matched; stopped: the instance stopped on its own. */
  ended: 'marker' | 'stopped';
  endMatch?: unknown;
  consolePath?: string;
  consoleLines: number;
  /** Console bytes the instance dropped before uniprove read them (its buffer holds 1 MiB). */
  consoleLostBytes: number;
  /** Calls tried again after a transient error (HTTP 5xx, 429, a rate limit), over the whole run. */
  retries: number;
  durationMs: { setup: number; run: number; cleanup: number };
  calls: PerformedCall[];
  deleted: { kind: string; name: string }[];
  kept: { kind: string; name: string }[];
}

/** How long an instance's prover may run when no --timeout is given. */
export const DEFAULT_RUN_TIMEOUT_MS = 6 * 3600_000;

/** The resolved "what to run" of gcp run (digests computed, or placeholders in a dry run). */
export async function resolveGcpRunSpec(
  options: GcpRunOptions,
  dryRun: boolean,
): Promise<{ spec: GcpRunSpec; sources: GcpImageSource[] }> {
  const sources: GcpImageSource[] = [];
  const image =
    'existing' in options.image
      ? { existing: options.image.existing }
      : await sourceOf(options.image, dryRun, options.signal);
  if (!('existing' in image)) sources.push(image);
  let volume: GcpRunSpec['volume'];
  if (options.volume) {
    const v = options.volume;
    const source =
      'existing' in v
        ? { existing: v.existing }
        : await sourceOf({ ...v, name: v.name ?? 'volume' }, dryRun, options.signal);
    if (!('existing' in source)) sources.push(source);
    volume = { source, diskType: v.diskType ?? 'pd-balanced', sizeGb: v.sizeGb ?? 10 };
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const spec: GcpRunSpec = {
    target: options.target,
    runId: options.runId ?? newRunId(),
    bucket: options.bucket ?? defaultBucket(options.target),
    image,
    ...(volume ? { volume } : {}),
    machine: options.machine,
    bootDisk: { type: options.bootDisk?.type ?? 'pd-balanced', sizeGb: options.bootDisk?.sizeGb },
    network: options.network ?? 'default',
    labels: options.labels ?? {},
    // The instance deletes itself a while after uniprove's own limit, in case uniprove is gone.
    maxRunSeconds: Math.ceil(timeoutMs / 1000) + 30 * 60,
    keep: Boolean(options.keep),
    ...(options.serviceAccounts ? { serviceAccounts: options.serviceAccounts } : {}),
  };
  return { spec, sources };
}

/**
 * One instance from an image, without a run record: start it, stream its console, delete everything unless kept.
 * The platform's own primitive (the contract tests drive it); `gcp run --image` is gcp/run-image.ts, which runs
 * the same instance through the run lifecycle.
 */
export async function runInstance(options: GcpRunOptions & { dryRun: true }): Promise<GcpDryRunResult>;
export async function runInstance(options: GcpRunOptions): Promise<GcpRunResult | GcpDryRunResult>;
export async function runInstance(options: GcpRunOptions): Promise<GcpRunResult | GcpDryRunResult> {
  const { spec, sources } = await resolveGcpRunSpec(options, Boolean(options.dryRun));
  if (options.dryRun) return dryRunOf(planRun(spec).calls);
  return withClients(options, async (clients) => {
    const instance = new GceInstance({ ...options, clients }, spec, sources);
    let failure: unknown;
    try {
      await instance.start();
      await instance.wait();
    } catch (error) {
      failure = error;
    }
    await instance.release(failure);
    return instance.result();
  });
}

/**
 * One run's instance, in the three steps a driver takes: start (images, volume disk, the instance: every
 * resource recorded in the ledger the moment it exists), wait (console and status until the prover ends),
 * release (delete what the ledger holds unless kept, even after Ctrl-C).
 */
export class GceInstance {
  readonly plan: GcpPlan;
  readonly name: string;
  private readonly ctx: ExecutionContext;
  private startedMs = 0;
  private setupMs = 0;
  private runMs = 0;
  private cleanupMs = 0;
  private watched: WatchResult | undefined;
  private released: LedgerReleaseResult | undefined;

  constructor(
    private readonly options: GcpRunOptions & { clients: GcpClients },
    readonly spec: GcpRunSpec,
    sources: GcpImageSource[],
    /** The calls to make instead of planRun's (a fleet's attempt: its instance on images made once). */
    plan?: GcpPlan,
  ) {
    this.plan = plan ?? planRun(spec);
    const insert = this.plan.calls.find((c) => c.method === 'instances.insert');
    this.name = String((insert?.body as { name?: string } | undefined)?.name ?? instanceNameFor(spec.runId));
    const workDir =
      options.workDir ??
      ('rawPath' in options.image
        ? dirname(options.image.rawPath)
        : options.consolePath
          ? dirname(options.consolePath)
          : '.');
    this.ctx = newContext(options, options.clients, workDir, sources);
  }

  /** Make the images, the volume disk and the instance (what is there already, by digest, is reused). */
  async start(): Promise<void> {
    this.startedMs = performance.now();
    await executeCalls(this.ctx, this.plan.calls);
    this.setupMs = performance.now() - this.startedMs;
  }

  /** Follow the console and the status until the prover ends, the instance stops, or time runs out. */
  async wait(): Promise<WatchResult> {
    const watchCalls = this.plan.calls.filter((c) => c.phase === 'watch');
    this.watched = await watchInstance(this.ctx, watchCalls, this.options);
    this.runMs = performance.now() - this.startedMs - this.setupMs;
    return this.watched;
  }

  /**
   * Delete what the run made unless kept (once). Without `failure`, what could not be deleted is thrown; with
   * it, it is added to the failure's details and the failure is thrown.
   */
  async release(failure?: unknown): Promise<LedgerReleaseResult> {
    if (!this.released) {
      const t0 = performance.now();
      this.released = await releaseAll(this.ctx, failure === undefined ? 'success' : 'failure', 10 * 60_000);
      this.cleanupMs = performance.now() - t0;
    }
    if (failure !== undefined) throw cleanupError(failure, this.released);
    const leftover = leftoverError(this.released);
    if (leftover) throw leftover;
    return this.released;
  }

  /** What the run did, once released. */
  result(): GcpRunResult {
    const { spec } = this;
    const w = this.watched!;
    const release = this.released!;
    return {
      dryRun: false,
      runId: spec.runId,
      project: spec.target.project,
      zone: spec.target.zone,
      instance: this.name,
      image: 'existing' in spec.image ? spec.image.existing : imageNameFor(spec.image),
      ...(spec.volume
        ? { volumeDisk: volumeDiskName(spec.volume.source, spec.volume.diskType, spec.volume.sizeGb) }
        : {}),
      ended: w.ended,
      ...(w.endMatch !== undefined ? { endMatch: w.endMatch } : {}),
      ...(this.options.consolePath ? { consolePath: this.options.consolePath } : {}),
      consoleLines: w.reader.lineCount,
      consoleLostBytes: w.reader.lostBytes,
      retries: this.ctx.retries,
      durationMs: {
        setup: Math.round(this.setupMs),
        run: Math.round(this.runMs),
        cleanup: Math.round(this.cleanupMs),
      },
      calls: this.ctx.performed,
      deleted: release.deleted.map((r) => ({ kind: r.kind, name: r.name })),
      kept: release.kept.filter((r) => r.kind !== 'bucket').map((r) => ({ kind: r.kind, name: r.name })),
    };
  }
}

export interface WatchResult {
  ended: 'marker' | 'stopped';
  endMatch?: unknown;
  reader: SerialConsoleReader;
}

/** Follow the console and the instance's status until the prover ends, it stops, or time runs out. */
async function watchInstance(
  ctx: ExecutionContext,
  calls: GcpCall[],
  options: GcpRunOptions,
): Promise<WatchResult> {
  return new InstanceWatch(ctx, calls, options).run();
}

/** The instance states in which the guest no longer runs. */
const STOPPED_STATES = new Set(['TERMINATED', 'STOPPED', 'STOPPING', 'SUSPENDED', 'DELETED']);

/** One watch of one instance: the serial console read from where it was left, and the status now and then. */
class InstanceWatch {
  private readonly serialCall: GcpCall;
  private readonly statusCall: GcpCall;
  private readonly p: Record<string, string>;
  private readonly reader = new SerialConsoleReader();
  private readonly tail: string[] = [];
  private readonly step: string;
  private endMatch: unknown;

  constructor(
    private readonly ctx: ExecutionContext,
    calls: GcpCall[],
    private readonly options: GcpRunOptions,
  ) {
    this.serialCall = calls.find((c) => c.method === 'instances.getSerialPortOutput')!;
    this.statusCall = calls.find((c) => c.method === 'instances.get')!;
    this.p = this.serialCall.params as Record<string, string>;
    this.step = `run on ${this.p.instance}`;
  }

  async run(): Promise<WatchResult> {
    const { ctx, options, reader, step } = this;
    const interval = options.watch?.intervalMs ?? 2000;
    const statusEvery = options.watch?.statusEvery ?? 3;
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    const started = Date.now();
    ctx.onProgress?.({ kind: 'step-start', step });
    for (let poll = 0; ; poll++) {
      if (ctx.signal?.aborted) throw abortReason(ctx.signal);
      await this.readConsole();
      if (this.endMatch !== undefined) {
        await this.drain();
        return this.ended();
      }
      if (poll % statusEvery === statusEvery - 1 || poll === 0) {
        const s = await this.status();
        if (STOPPED_STATES.has(s)) return this.stopped(s);
      }
      const elapsed = Date.now() - started;
      if (elapsed > timeoutMs) {
        throw new UniproveError('E_GCP_TIMEOUT', {
          message: `the prover on ${this.p.instance} did not end within ${Math.round(timeoutMs / 1000)} s`,
          hint: 'Raise --timeout; the console so far is in the run record.',
          details: { instance: this.p.instance, consoleTail: this.tail.join('\n') },
        });
      }
      ctx.onProgress?.({
        kind: 'update',
        step,
        detail: `${reader.lineCount} console lines, ${Math.round(elapsed / 1000)} s`,
      });
      await sleep(interval, undefined, { signal: ctx.signal }).catch(() => {
        throw abortReason(ctx.signal);
      });
    }
  }

  private ended(): WatchResult {
    this.ctx.onProgress?.({ kind: 'step-done', step: this.step, detail: 'the prover ended' });
    return { ended: 'marker', endMatch: this.endMatch, reader: this.reader };
  }

  /** The instance stopped: the end if the console says so (or nothing was to say it), else preempted. */
  private async stopped(s: string): Promise<WatchResult> {
    if (s !== 'DELETED') await this.drain();
    else for (const line of this.reader.flush()) this.handleLine(line);
    if (this.endMatch !== undefined) return this.ended();
    if (!this.options.isEnd && s !== 'DELETED') {
      this.ctx.onProgress?.({ kind: 'step-done', step: this.step, detail: `the instance stopped (${s})` });
      return { ended: 'stopped', reader: this.reader };
    }
    const spot = this.options.machine.spot;
    throw new UniproveError('E_GCP_PREEMPTED', {
      message: `instance ${this.p.instance} ${s === 'DELETED' ? 'was deleted' : `went ${s}`} before the prover ended${spot ? ' (the Spot instance was probably preempted)' : ''}`,
      hint: spot
        ? 'Spot capacity was reclaimed: run again, or without --spot for a run that must finish.'
        : 'Read the console tail below: the guest may have crashed or powered off.',
      details: { instance: this.p.instance, status: s, consoleTail: this.tail.join('\n') },
    });
  }

  /** Read the console on from where it was left; -1 when the instance is gone, else the characters read. */
  private async readConsole(): Promise<number> {
    const { ctx, p, reader, serialCall } = this;
    let chunk: { contents?: string | null; start?: unknown; next?: unknown };
    const t0 = performance.now();
    try {
      [chunk] = (await this.retrying(serialCall, () =>
        ctx.clients.instances.getSerialPortOutput({
          project: p.project!,
          zone: p.zone!,
          instance: p.instance!,
          port: 1,
          start: reader.next,
        }),
      )) as [typeof chunk, ...unknown[]];
    } catch (error) {
      if (isNotFound(error)) return -1;
      throw gcpError(error, serialCall.method, resourceOf(serialCall));
    } finally {
      this.performed(serialCall, Math.round(performance.now() - t0));
    }
    const read = reader.accept({
      contents: chunk.contents ?? '',
      start: Number(chunk.start ?? reader.next),
      next: Number(chunk.next ?? reader.next),
    });
    if (read.text && this.options.consolePath) await appendFile(this.options.consolePath, read.text);
    for (const line of read.lines) this.handleLine(line);
    return read.text.length;
  }

  private handleLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
    this.options.onConsoleLine?.(line);
    if (this.endMatch === undefined) {
      const m = this.options.isFatal?.(line) || this.options.isEnd?.(line);
      if (m) this.endMatch = m;
    }
  }

  private async status(): Promise<string> {
    const { p, statusCall } = this;
    try {
      const [inst] = await this.retrying(statusCall, () =>
        this.ctx.clients.instances.get({ project: p.project!, zone: p.zone!, instance: p.instance! }),
      );
      return inst.status ?? 'UNKNOWN';
    } catch (error) {
      if (isNotFound(error)) return 'DELETED';
      throw gcpError(error, statusCall.method, resourceOf(statusCall));
    } finally {
      this.performed(statusCall, 0);
    }
  }

  /** A watch call, tried again after a transient error: one HTTP 500 in six hours must not end the proof. */
  private retrying<T>(call: GcpCall, make: () => Promise<T>): Promise<T> {
    const step = `${call.method} ${resourceOf(call)}`;
    return withRetry(make, {
      retry: this.ctx.poll?.retry,
      signal: this.ctx.signal,
      onRetry: (error) => noteRetry(this.ctx, step, error),
    });
  }

  private performed(call: GcpCall, ms: number): void {
    this.ctx.performed.push({ method: call.method, resource: resourceOf(call), outcome: 'done', ms });
  }

  /** Read until the console stops growing, so the last lines (the proof markers) are kept. */
  private async drain(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const n = await this.readConsole();
      if (n <= 0) break;
    }
    for (const line of this.reader.flush()) this.handleLine(line);
  }
}
