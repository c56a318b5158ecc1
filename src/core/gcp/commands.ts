/**
 * The four Google Cloud commands as library functions: gcpImage, gcpRun,
 * gcpList, gcpGc. Each resolves what to do into a plan first (that is all a
 * dry run does: no credentials, no hashing, no requests), then performs it.
 */
import { appendFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UniproveError } from '../errors.js';
import type { OnProgress } from '../progress.js';
import { newRunId } from '../run/record.js';
import { createGcpClients, type GcpClients, type GcpEndpoints } from './clients.js';
import type { GcpTarget } from './config.js';
import {
  type ExecutionContext,
  executeCalls,
  type PerformedCall,
  performCall,
  resourceOf,
} from './execute.js';
import { type LedgerReleaseResult, ResourceLedger } from './ledger.js';
import { LABEL } from './names.js';
import { abortReason, gcpError, isNotFound, type PollOptions } from './operations.js';
import {
  type GcpCall,
  type GcpDiskType,
  type GcpImageSource,
  type GcpMachineSpec,
  type GcpRunSpec,
  imageNameFor,
  instanceNameFor,
  planImageCommand,
  planRun,
  releaseCalls,
  stagingObject,
  volumeDiskName,
} from './plan.js';
import { SerialConsoleReader } from './serial.js';
import { sha256File } from './tarball.js';

/** What every GCP command takes. */
export interface GcpCommonOptions {
  target: GcpTarget;
  endpoints?: GcpEndpoints;
  accessToken?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
  /** Operation polling: backoff and limit. */
  poll?: PollOptions;
  /** Clients to use instead of making them (tests, long-lived callers). */
  clients?: GcpClients;
}

/** The staging bucket when none is given: one per project. */
export function defaultBucket(target: GcpTarget): string {
  return `${target.project.replace(/^.*:/, '').replace(/\./g, '-')}-uniprove`;
}

/** A dry run's answer: the calls, in order, with bodies; nothing was sent. */
export interface GcpDryRunResult {
  dryRun: true;
  calls: {
    method: string;
    params: Record<string, string | number>;
    body?: unknown;
    purpose: string;
    when?: string;
  }[];
}

function dryRunOf(calls: GcpCall[]): GcpDryRunResult {
  return {
    dryRun: true,
    calls: calls.map((c) => ({
      method: c.method,
      params: c.params,
      ...(c.body ? { body: c.body } : {}),
      purpose: c.purpose,
      ...(c.when ? { when: c.when } : {}),
    })),
  };
}

/** A raw disk to turn into an image: its path and a name for humans. */
export interface GcpRawDisk {
  rawPath: string;
  /** Defaults to the file name without extension. */
  name?: string;
  /** A digest already known (a recipe image's build key); without one the file is hashed. */
  sha256?: string;
  /** What a dry run shows instead of the digest (the file may not exist yet). */
  dryRunDigest?: string;
}

async function sourceOf(disk: GcpRawDisk, dryRun: boolean, signal?: AbortSignal): Promise<GcpImageSource> {
  const name = disk.name ?? (basename(disk.rawPath).replace(/\.[^.]*$/, '') || 'disk');
  return {
    name,
    rawPath: disk.rawPath,
    sha256: dryRun
      ? (disk.dryRunDigest ?? `<sha256 of ${basename(disk.rawPath)}>`)
      : (disk.sha256 ?? (await sha256File(disk.rawPath, signal))),
  };
}

async function withClients<T>(
  options: GcpCommonOptions,
  use: (clients: GcpClients) => Promise<T>,
): Promise<T> {
  if (options.clients) return use(options.clients);
  const clients = await createGcpClients({
    project: options.target.project,
    endpoints: options.endpoints,
    accessToken: options.accessToken,
  });
  try {
    await clients.checkAuth();
    return await use(clients);
  } finally {
    await clients.close();
  }
}

function newContext(
  options: GcpCommonOptions,
  clients: GcpClients,
  workDir: string,
  sources: GcpImageSource[],
): ExecutionContext {
  return {
    clients,
    target: options.target,
    ledger: new ResourceLedger(),
    sources: new Map(sources.map((s) => [stagingObject(s), s])),
    workDir,
    signal: options.signal,
    onProgress: options.onProgress,
    poll: options.poll,
    found: new Set(),
    performed: [],
  };
}

/** Release the ledger with a context that ignores the abort signal (cleanup must finish after Ctrl-C). */
async function releaseAll(
  ctx: ExecutionContext,
  outcome: 'success' | 'failure',
  cleanupTimeoutMs: number,
): Promise<LedgerReleaseResult> {
  const cleanupCtx: ExecutionContext = {
    ...ctx,
    signal: undefined,
    poll: { ...ctx.poll, timeoutMs: cleanupTimeoutMs },
  };
  if (ctx.ledger.list().some((r) => r.release !== 'never')) {
    ctx.onProgress?.({ kind: 'step-start', step: 'clean up' });
  }
  const result = await ctx.ledger.release(ctx.target, outcome, (call) => performCall(cleanupCtx, call));
  return result;
}

function cleanupError(error: unknown, release: LedgerReleaseResult): unknown {
  if (release.failed.length === 0) return error;
  if (error instanceof UniproveError) {
    error.details.leftovers = release.failed.map((f) => ({ ...f.resource, error: f.message }));
    return error;
  }
  return error;
}

function leftoverError(release: LedgerReleaseResult): UniproveError | undefined {
  if (release.failed.length === 0) return undefined;
  return new UniproveError('E_GCP', {
    message: `could not delete ${release.failed.map((f) => `${f.resource.kind} ${f.resource.name}`).join(', ')}: ${release.failed[0]!.message}`,
    hint: 'Run `uniprove gcp gc` to delete leftovers; `uniprove gcp ls` shows them.',
    details: { leftovers: release.failed.map((f) => ({ ...f.resource, error: f.message })) },
  });
}

// ---------------------------------------------------------------- gcp image

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

// ---------------------------------------------------------------- gcp run

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
  /** How long the prover may run once the instance is up (ms; default 6 h). */
  timeoutMs?: number;
  /** Append the serial console here as it arrives. */
  consolePath?: string;
  /** Called with each whole console line, in order. */
  onConsoleLine?: (line: string) => void;
  /** The prover's end; without one, the run ends when the instance stops (Nanos powers off at exit). */
  isEnd?: GcpEndDetector;
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
  durationMs: { setup: number; run: number; cleanup: number };
  calls: PerformedCall[];
  deleted: { kind: string; name: string }[];
  kept: { kind: string; name: string }[];
}

const DEFAULT_RUN_TIMEOUT_MS = 6 * 3600_000;

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
  };
  return { spec, sources };
}

/** Run a prover image on a Compute Engine instance, stream its console, delete everything unless kept. */
export async function gcpRun(options: GcpRunOptions & { dryRun: true }): Promise<GcpDryRunResult>;
export async function gcpRun(options: GcpRunOptions): Promise<GcpRunResult | GcpDryRunResult>;
export async function gcpRun(options: GcpRunOptions): Promise<GcpRunResult | GcpDryRunResult> {
  const { spec, sources } = await resolveGcpRunSpec(options, Boolean(options.dryRun));
  const plan = planRun(spec);
  if (options.dryRun) return dryRunOf(plan.calls);
  const workDir =
    options.workDir ??
    ('rawPath' in options.image
      ? dirname(options.image.rawPath)
      : options.consolePath
        ? dirname(options.consolePath)
        : '.');
  return withClients(options, async (clients) => {
    const ctx = newContext(options, clients, workDir, sources);
    const instance = instanceNameFor(spec.runId);
    const started = performance.now();
    let setupMs = 0;
    let runMs = 0;
    let outcome: 'success' | 'failure' = 'failure';
    let failure: unknown;
    let watched: WatchResult | undefined;
    try {
      await executeCalls(ctx, plan.calls);
      setupMs = performance.now() - started;
      const watchCalls = plan.calls.filter((c) => c.phase === 'watch');
      watched = await watchInstance(ctx, watchCalls, options);
      runMs = performance.now() - started - setupMs;
      outcome = 'success';
    } catch (error) {
      failure = error;
    }
    const cleanupStarted = performance.now();
    const release = await releaseAll(ctx, outcome, 10 * 60_000);
    const cleanupMs = performance.now() - cleanupStarted;
    if (failure) throw cleanupError(failure, release);
    const leftover = leftoverError(release);
    if (leftover) throw leftover;
    const w = watched!;
    return {
      dryRun: false,
      runId: spec.runId,
      project: spec.target.project,
      zone: spec.target.zone,
      instance,
      image: 'existing' in spec.image ? spec.image.existing : imageNameFor(spec.image),
      ...(spec.volume
        ? { volumeDisk: volumeDiskName(spec.volume.source, spec.volume.diskType, spec.volume.sizeGb) }
        : {}),
      ended: w.ended,
      ...(w.endMatch !== undefined ? { endMatch: w.endMatch } : {}),
      ...(options.consolePath ? { consolePath: options.consolePath } : {}),
      consoleLines: w.reader.lineCount,
      consoleLostBytes: w.reader.lostBytes,
      durationMs: { setup: Math.round(setupMs), run: Math.round(runMs), cleanup: Math.round(cleanupMs) },
      calls: ctx.performed,
      deleted: release.deleted.map((r) => ({ kind: r.kind, name: r.name })),
      kept: release.kept.filter((r) => r.kind !== 'bucket').map((r) => ({ kind: r.kind, name: r.name })),
    };
  });
}

interface WatchResult {
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
  const serialCall = calls.find((c) => c.method === 'instances.getSerialPortOutput')!;
  const statusCall = calls.find((c) => c.method === 'instances.get')!;
  const p = serialCall.params as Record<string, string>;
  const reader = new SerialConsoleReader();
  const interval = options.watch?.intervalMs ?? 2000;
  const statusEvery = options.watch?.statusEvery ?? 3;
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const started = Date.now();
  const tail: string[] = [];
  let endMatch: unknown;
  const step = `run on ${p.instance}`;
  ctx.onProgress?.({ kind: 'step-start', step });

  const readConsole = async (): Promise<number> => {
    let chunk: { contents?: string | null; start?: unknown; next?: unknown };
    const t0 = performance.now();
    try {
      [chunk] = (await ctx.clients.instances.getSerialPortOutput({
        project: p.project!,
        zone: p.zone!,
        instance: p.instance!,
        port: 1,
        start: reader.next,
      })) as [typeof chunk, ...unknown[]];
    } catch (error) {
      if (isNotFound(error)) return -1;
      throw gcpError(error, serialCall.method, resourceOf(serialCall));
    } finally {
      ctx.performed.push({
        method: serialCall.method,
        resource: resourceOf(serialCall),
        outcome: 'done',
        ms: Math.round(performance.now() - t0),
      });
    }
    const read = reader.accept({
      contents: chunk.contents ?? '',
      start: Number(chunk.start ?? reader.next),
      next: Number(chunk.next ?? reader.next),
    });
    if (read.text && options.consolePath) await appendFile(options.consolePath, read.text);
    for (const line of read.lines) handleLine(line);
    return read.text.length;
  };
  const handleLine = (line: string) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    options.onConsoleLine?.(line);
    if (endMatch === undefined && options.isEnd) {
      const m = options.isEnd(line);
      if (m) endMatch = m;
    }
  };
  const status = async (): Promise<string> => {
    try {
      const [inst] = await ctx.clients.instances.get({
        project: p.project!,
        zone: p.zone!,
        instance: p.instance!,
      });
      return inst.status ?? 'UNKNOWN';
    } catch (error) {
      if (isNotFound(error)) return 'DELETED';
      throw gcpError(error, statusCall.method, resourceOf(statusCall));
    } finally {
      ctx.performed.push({
        method: statusCall.method,
        resource: resourceOf(statusCall),
        outcome: 'done',
        ms: 0,
      });
    }
  };
  const consoleTail = () => tail.join('\n');
  const drain = async () => {
    // Read until the console stops growing, so the last lines (the proof markers) are kept.
    for (let i = 0; i < 5; i++) {
      const n = await readConsole();
      if (n <= 0) break;
    }
    for (const line of reader.flush()) handleLine(line);
  };

  for (let poll = 0; ; poll++) {
    if (ctx.signal?.aborted) throw abortReason(ctx.signal);
    await readConsole();
    if (endMatch !== undefined) {
      await drain();
      ctx.onProgress?.({ kind: 'step-done', step, detail: 'the prover ended' });
      return { ended: 'marker', endMatch, reader };
    }
    if (poll % statusEvery === statusEvery - 1 || poll === 0) {
      const s = await status();
      if (s === 'TERMINATED' || s === 'STOPPED' || s === 'STOPPING' || s === 'SUSPENDED' || s === 'DELETED') {
        if (s !== 'DELETED') await drain();
        else for (const line of reader.flush()) handleLine(line);
        if (endMatch !== undefined) {
          ctx.onProgress?.({ kind: 'step-done', step, detail: 'the prover ended' });
          return { ended: 'marker', endMatch, reader };
        }
        if (!options.isEnd && s !== 'DELETED') {
          ctx.onProgress?.({ kind: 'step-done', step, detail: `the instance stopped (${s})` });
          return { ended: 'stopped', reader };
        }
        throw new UniproveError('E_GCP_PREEMPTED', {
          message: `instance ${p.instance} ${s === 'DELETED' ? 'was deleted' : `went ${s}`} before the prover ended${spec(options).spot ? ' (the Spot instance was probably preempted)' : ''}`,
          hint: spec(options).spot
            ? 'Spot capacity was reclaimed: run again, or without --spot for a run that must finish.'
            : 'Read the console tail below: the guest may have crashed or powered off.',
          details: { instance: p.instance, status: s, consoleTail: consoleTail() },
        });
      }
    }
    const elapsed = Date.now() - started;
    if (elapsed > timeoutMs) {
      throw new UniproveError('E_GCP_TIMEOUT', {
        message: `the prover on ${p.instance} did not end within ${Math.round(timeoutMs / 1000)} s`,
        hint: 'Raise --timeout; the console so far is in the run record.',
        details: { instance: p.instance, consoleTail: consoleTail() },
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

function spec(options: GcpRunOptions): GcpMachineSpec {
  return options.machine;
}

// ---------------------------------------------------------------- gcp ls / gc

/** One resource uniprove made, as listed. */
export interface GcpListedResource {
  kind: 'instance' | 'disk' | 'image' | 'object';
  name: string;
  zone?: string;
  bucket?: string;
  status?: string;
  created?: string;
  labels?: Record<string, string>;
  sizeGb?: number;
  bytes?: number;
}

export interface GcpListOptions extends GcpCommonOptions {
  bucket?: string;
}

export interface GcpListResult {
  project: string;
  resources: GcpListedResource[];
}

const OWNER_FILTER = `labels.${LABEL.owner} = "1"`;

/** Everything uniprove created in the project (by label; instances and disks in every zone). */
export async function gcpList(options: GcpListOptions): Promise<GcpListResult> {
  return withClients(options, (clients) => listWith(clients, options));
}

async function listWith(clients: GcpClients, options: GcpListOptions): Promise<GcpListResult> {
  const project = options.target.project;
  const bucket = options.bucket ?? defaultBucket(options.target);
  const resources: GcpListedResource[] = [];
  const zoneOf = (key: string) => key.replace(/^zones\//, '');
  try {
    for await (const [key, scoped] of clients.instances.aggregatedListAsync({
      project,
      filter: OWNER_FILTER,
    })) {
      for (const i of scoped.instances ?? []) {
        resources.push({
          kind: 'instance',
          name: i.name ?? '',
          zone: zoneOf(key),
          status: i.status ?? undefined,
          created: i.creationTimestamp ?? undefined,
          labels: (i.labels as Record<string, string>) ?? {},
        });
      }
    }
  } catch (error) {
    throw gcpError(error, 'instances.aggregatedList', project);
  }
  try {
    for await (const [key, scoped] of clients.disks.aggregatedListAsync({ project, filter: OWNER_FILTER })) {
      for (const d of scoped.disks ?? []) {
        resources.push({
          kind: 'disk',
          name: d.name ?? '',
          zone: zoneOf(key),
          status: d.status ?? undefined,
          created: d.creationTimestamp ?? undefined,
          labels: (d.labels as Record<string, string>) ?? {},
          sizeGb: Number(d.sizeGb ?? 0),
        });
      }
    }
  } catch (error) {
    throw gcpError(error, 'disks.aggregatedList', project);
  }
  try {
    for await (const i of clients.images.listAsync({ project, filter: OWNER_FILTER })) {
      resources.push({
        kind: 'image',
        name: i.name ?? '',
        status: i.status ?? undefined,
        created: i.creationTimestamp ?? undefined,
        labels: (i.labels as Record<string, string>) ?? {},
        sizeGb: Number(i.diskSizeGb ?? 0),
      });
    }
  } catch (error) {
    throw gcpError(error, 'images.list', project);
  }
  try {
    const [files] = await clients.storage.bucket(bucket).getFiles({ prefix: 'uniprove/' });
    for (const f of files) {
      resources.push({
        kind: 'object',
        name: f.name,
        bucket,
        created: f.metadata.timeCreated,
        bytes: Number(f.metadata.size ?? 0),
      });
    }
  } catch (error) {
    if (!isNotFound(error)) throw gcpError(error, 'storage.objects.list', `gs://${bucket}`);
  }
  return { project, resources };
}

export interface GcpGcOptions extends GcpListOptions {
  /** Only what was created longer ago than this (ms). */
  olderThanMs?: number;
  /** Only what belongs to this run. */
  runId?: string;
  dryRun?: boolean;
  now?: Date;
}

export interface GcpGcResult {
  project: string;
  dryRun: boolean;
  /** Deleted (or, in a dry run, to delete), in the order of deletion. */
  deleted: GcpListedResource[];
  failed: { resource: GcpListedResource; message: string }[];
}

/** Delete what uniprove left behind: instances first, then disks, images and staging objects. */
export async function gcpGc(options: GcpGcOptions): Promise<GcpGcResult> {
  return withClients(options, async (clients) => {
    const { resources } = await listWith(clients, options);
    const now = (options.now ?? new Date()).getTime();
    const order = ['instance', 'disk', 'image', 'object'];
    const doomed = resources
      .filter((r) => !options.runId || r.labels?.[LABEL.run] === options.runId)
      .filter((r) => {
        if (!options.olderThanMs) return true;
        const t = r.created ? Date.parse(r.created) : Number.NaN;
        return Number.isFinite(t) && now - t >= options.olderThanMs;
      })
      .sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    const result: GcpGcResult = {
      project: options.target.project,
      dryRun: Boolean(options.dryRun),
      deleted: [],
      failed: [],
    };
    if (options.dryRun) return { ...result, deleted: doomed };
    const ctx = newContext({ ...options, signal: undefined }, clients, '.', []);
    for (const r of doomed) {
      const target = { ...options.target, zone: r.zone ?? options.target.zone };
      const resource = {
        kind: r.kind,
        name: r.name,
        zone: r.zone,
        bucket: r.bucket,
        release: 'always' as const,
      };
      try {
        const resourceCtx: ExecutionContext = { ...ctx, target };
        for (const call of releaseCalls(target, resource)) await performCall(resourceCtx, call);
        result.deleted.push(r);
        options.onProgress?.({ kind: 'note', step: 'gc', detail: `deleted ${r.kind} ${r.name}` });
      } catch (error) {
        result.failed.push({ resource: r, message: error instanceof Error ? error.message : String(error) });
      }
    }
    return result;
  });
}
