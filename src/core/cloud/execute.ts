/**
 * Performs a plan's calls with the official clients, one by one, in the
 * order the planner gave them; records what each creates in the ledger
 * before asking for it, so a failure or Ctrl-C at any point leaves nothing
 * behind.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UniproveError } from '../errors.js';
import { formatBytes } from '../format.js';
import type { OnProgress } from '../progress.js';
import type { GcpClients } from './clients.js';
import type { GcpTarget } from './config.js';
import type { ResourceLedger } from './ledger.js';
import {
  gcpError,
  httpStatusOf,
  isNotFound,
  type OperationLike,
  type PollOptions,
  waitOperation,
  withRetry,
} from './operations.js';
import type { GcpCall, GcpImageSource } from './plan.js';
import { packImageTarball } from './tarball.js';

/** A call as it was made, for results and run records (no bodies: they are in the plan). */
export interface PerformedCall {
  method: string;
  resource: string;
  outcome: 'done' | 'found' | 'absent' | 'skipped' | 'gone';
  ms: number;
  /** Tries after a transient error (HTTP 5xx, 429, a rate limit) before this answer; absent when none. */
  retries?: number;
}

/** State of one execution; never shared between commands. */
export interface ExecutionContext {
  clients: GcpClients;
  target: GcpTarget;
  ledger: ResourceLedger;
  /** Raw disks by the staging object their tarball goes to. */
  sources: Map<string, GcpImageSource>;
  /** Where tarballs are packed (a folder on a disk with room for them). */
  workDir: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
  poll?: PollOptions;
  found: Set<string>;
  performed: PerformedCall[];
  /** Transient errors met and retried, over every call of this execution. */
  retries: number;
  lastOperation?: { op: OperationLike; call: string; resource: string };
}

/** Make the plan's main calls in order, skipping those whose look-up found the resource. */
export async function executeCalls(ctx: ExecutionContext, calls: GcpCall[]): Promise<void> {
  for (const call of calls) {
    if (call.phase !== 'main') continue;
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    if (call.skipIfFound?.some((k) => ctx.found.has(k))) {
      ctx.performed.push({ method: call.method, resource: resourceOf(call), outcome: 'skipped', ms: 0 });
      continue;
    }
    await performCall(ctx, call);
  }
}

function abortError(signal: AbortSignal): UniproveError {
  return signal.reason instanceof UniproveError
    ? signal.reason
    : new UniproveError('E_INTERRUPTED', { message: 'interrupted' });
}

/** The resource a call is about, for messages. */
export function resourceOf(call: GcpCall): string {
  const p = call.params;
  const b = call.body as { name?: string } | undefined;
  if (call.method.startsWith('storage.objects')) return `gs://${p.bucket}/${p.object ?? p.name ?? ''}`;
  if (call.method.startsWith('storage.buckets')) return `gs://${p.bucket ?? b?.name}`;
  const name = p.image ?? p.disk ?? p.instance ?? b?.name ?? p.operation ?? '';
  return `${p.zone ? `${p.zone}/` : ''}${name}`;
}

/** Make one call (and, for waits, follow the last operation to its end). */
export async function performCall(ctx: ExecutionContext, call: GcpCall): Promise<void> {
  const started = performance.now();
  const resource = resourceOf(call);
  let outcome: PerformedCall['outcome'] = 'done';
  const step = `${call.method} ${resource}`;
  if (call.creates) ctx.ledger.record(call.creates);
  const params = { ...(call.params as Record<string, string>) };
  // An insert is not idempotent: every try carries the same requestId, which Compute Engine deduplicates.
  if (/^(images|disks|instances)\.insert$/.test(call.method)) params.requestId = randomUUID();
  let retries = 0;
  try {
    const execute = EXECUTORS[call.method];
    if (!execute) throw new UniproveError('E_INTERNAL', { message: `no executor for ${call.method}` });
    // Storage calls retry in their own client; waits retry each poll.
    outcome = SELF_RETRYING.test(call.method)
      ? await execute(ctx, call, params, resource)
      : await withRetry(() => execute(ctx, call, params, resource), {
          retry: ctx.poll?.retry,
          signal: ctx.signal,
          onRetry: (error) => {
            retries++;
            noteRetry(ctx, step, error);
          },
        });
  } catch (error) {
    // A call cut short by Ctrl-C (an upload, a poll) is the interrupt, not a Google Cloud failure.
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    throw gcpError(error, call.method, resource);
  } finally {
    ctx.performed.push({
      method: call.method,
      resource,
      outcome,
      ms: Math.round(performance.now() - started),
      ...(retries > 0 ? { retries } : {}),
    });
  }
  if (call.lookup && outcome === 'found') ctx.found.add(call.lookup);
  if (outcome !== 'absent' && call.method !== 'images.get' && call.method !== 'disks.get') {
    ctx.onProgress?.({ kind: 'note', step, detail: `${step}: ${outcome}` });
  }
}

const SELF_RETRYING = /^storage\.|Operations\.get$/;

/** A transient error met and about to be retried: counted for the record, told to progress. */
export function noteRetry(ctx: ExecutionContext, step: string, error: unknown): void {
  ctx.retries++;
  const status = httpStatusOf(error);
  ctx.onProgress?.({
    kind: 'note',
    step,
    detail: `${step}: ${status ? `HTTP ${status}` : 'connection lost'}, trying again`,
  });
}

type Executor = (
  ctx: ExecutionContext,
  call: GcpCall,
  p: Record<string, string>,
  resource: string,
) => Promise<PerformedCall['outcome']>;

/** found when `get` finds it, absent when Compute Engine or Storage says 404. */
async function foundOrAbsent(get: () => Promise<unknown>): Promise<PerformedCall['outcome']> {
  try {
    await get();
    return 'found';
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return 'absent';
  }
}

/** An insert or delete started: its operation is what the next wait call follows. */
function follow(ctx: ExecutionContext, call: GcpCall, resource: string, op: { latestResponse?: unknown }) {
  ctx.lastOperation = { op: op.latestResponse as OperationLike, call: call.method, resource };
  return 'done' as const;
}

/** A delete (instance, disk, image); a 404 is `gone`, and its wait is done at once. */
const deleteExecutor: Executor = async (ctx, call, p, resource) => {
  const c = ctx.clients;
  try {
    const [op] =
      call.method === 'instances.delete'
        ? await c.instances.delete({ project: p.project!, zone: p.zone!, instance: p.instance! })
        : call.method === 'disks.delete'
          ? await c.disks.delete({ project: p.project!, zone: p.zone!, disk: p.disk! })
          : await c.images.delete({ project: p.project!, image: p.image! });
    return follow(ctx, call, resource, op);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    ctx.lastOperation = { op: { status: 'DONE' }, call: call.method, resource };
    return 'gone';
  }
};

/** Follow the last operation started to its end. */
const waitExecutor: Executor = async (ctx, call, p) => {
  const last = ctx.lastOperation;
  if (!last) throw new UniproveError('E_INTERNAL', { message: `${call.method} with no operation to follow` });
  ctx.lastOperation = undefined;
  await waitOperation(
    ctx.clients,
    last.op,
    {
      project: p.project!,
      ...(call.method === 'zoneOperations.get' ? { zone: p.zone! } : {}),
      call: last.call,
      resource: last.resource,
    },
    {
      ...ctx.poll,
      signal: ctx.signal,
      onProgress: ctx.onProgress,
      onRetry: (error) => noteRetry(ctx, `${call.method} ${last.resource}`, error),
    },
  );
  return 'done';
};

/** How each call of a plan is made. */
const EXECUTORS: Record<string, Executor> = {
  'storage.buckets.get': (ctx, _call, p) =>
    foundOrAbsent(() => ctx.clients.storage.bucket(p.bucket!).getMetadata()),
  'storage.buckets.insert': async (ctx, call, _p, resource) => {
    const { name, ...metadata } = call.body as { name: string };
    try {
      await ctx.clients.storage.createBucket(name, metadata as never);
    } catch (error) {
      if ((error as { code?: number }).code === 409) {
        throw new UniproveError('E_GCP', {
          message: `bucket gs://${name} exists but belongs to another project, or is not reachable with these credentials`,
          hint: 'Bucket names are global: pick another with --bucket NAME.',
          details: { call: call.method, resource },
        });
      }
      throw error;
    }
    return 'done';
  },
  'storage.objects.insert': async (ctx, call) => {
    await uploadTarball(ctx, call);
    return 'done';
  },
  'storage.objects.delete': async (ctx, _call, p) => {
    await ctx.clients.storage.bucket(p.bucket!).file(p.object!).delete({ ignoreNotFound: true });
    ctx.ledger.forget({ kind: 'object', name: p.object! });
    return 'done';
  },
  'images.get': (ctx, call) => lookupImage(ctx, call),
  'images.insert': async (ctx, call, p, resource) => {
    ctx.onProgress?.({ kind: 'step-start', step: `import image ${(call.body as { name: string }).name}` });
    const [op] = await ctx.clients.images.insert({
      project: p.project!,
      requestId: p.requestId,
      imageResource: call.body as never,
    });
    return follow(ctx, call, resource, op);
  },
  'disks.get': (ctx, call, p, resource) =>
    foundOrAbsent(async () => {
      const [disk] = await ctx.clients.disks.get({ project: p.project!, zone: p.zone!, disk: p.disk! });
      checkExpectedLabels(call, disk.labels);
      if (disk.status !== 'READY') {
        throw new UniproveError('E_GCP', {
          message: `disk ${p.disk} exists but is ${disk.status}`,
          hint: 'Wait for it, or delete it (`uniprove gcp gc`) and run again.',
          details: { call: call.method, resource },
        });
      }
    }),
  'disks.insert': async (ctx, call, p, resource) => {
    const [op] = await ctx.clients.disks.insert({
      project: p.project!,
      zone: p.zone!,
      requestId: p.requestId,
      diskResource: call.body as never,
    });
    return follow(ctx, call, resource, op);
  },
  'instances.insert': async (ctx, call, p, resource) => {
    ctx.onProgress?.({ kind: 'step-start', step: `start instance ${(call.body as { name: string }).name}` });
    const [op] = await ctx.clients.instances.insert({
      project: p.project!,
      zone: p.zone!,
      requestId: p.requestId,
      instanceResource: call.body as never,
    });
    return follow(ctx, call, resource, op);
  },
  'instances.delete': deleteExecutor,
  'disks.delete': deleteExecutor,
  'images.delete': deleteExecutor,
  'globalOperations.get': waitExecutor,
  'zoneOperations.get': waitExecutor,
};

async function lookupImage(ctx: ExecutionContext, call: GcpCall): Promise<PerformedCall['outcome']> {
  const p = call.params as Record<string, string>;
  let image: { status?: string | null; labels?: Record<string, string> | null };
  try {
    [image] = await ctx.clients.images.get({ project: p.project!, image: p.image! });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    if (!call.lookup) {
      throw new UniproveError('E_GCP', {
        message: `image ${p.image} does not exist in project ${p.project}`,
        hint: 'Make it with `uniprove gcp image`, or list what exists with `uniprove gcp ls`.',
        details: { call: call.method, resource: p.image },
      });
    }
    return 'absent';
  }
  if (image.status === 'FAILED') {
    throw new UniproveError('E_GCP', {
      message: `image ${p.image} exists but its import failed`,
      hint: 'Delete it with `uniprove gcp gc` and run again.',
      details: { call: call.method, resource: p.image },
    });
  }
  checkExpectedLabels(call, image.labels);
  if (image.status !== 'READY') {
    // Another upload of the same content is being imported: wait for it.
    const started = Date.now();
    const limit = ctx.poll?.timeoutMs ?? 30 * 60_000;
    while (image.status !== 'READY') {
      if (image.status === 'FAILED' || Date.now() - started > limit) {
        throw new UniproveError('E_GCP', {
          message: `image ${p.image} did not become READY (${image.status})`,
          hint: 'Delete it with `uniprove gcp gc` and run again.',
          details: { call: call.method, resource: p.image },
        });
      }
      await new Promise((r) => setTimeout(r, ctx.poll?.initialMs ?? 2000));
      [image] = await ctx.clients.images.get({ project: p.project!, image: p.image! });
    }
  }
  return 'found';
}

async function uploadTarball(ctx: ExecutionContext, call: GcpCall): Promise<void> {
  const p = call.params as Record<string, string>;
  const source = ctx.sources.get(p.name!);
  if (!source?.rawPath) {
    throw new UniproveError('E_INTERNAL', { message: `no raw disk for staging object ${p.name}` });
  }
  const tarPath = join(ctx.workDir, basename(p.name!));
  const packStep = `pack ${source.name}`;
  ctx.onProgress?.({ kind: 'step-start', step: packStep, detail: source.rawPath });
  let closeAgent: (() => void) | undefined;
  try {
    const packed = await packImageTarball(source.rawPath, tarPath, { signal: ctx.signal });
    ctx.onProgress?.({
      kind: 'step-done',
      step: packStep,
      detail: `${formatBytes(packed.rawBytes)} disk -> ${formatBytes(packed.bytes)} tarball with ${packed.method} in ${(packed.durationMs / 1000).toFixed(1)} s`,
    });
    const body = call.body as { contentType: string; metadata: Record<string, string> };
    const file = ctx.clients.storage.bucket(p.bucket!).file(p.name!);
    const upStep = `upload gs://${p.bucket}/${p.name}`;
    ctx.onProgress?.({ kind: 'step-start', step: upStep });
    const metadata = { contentType: body.contentType, metadata: body.metadata };
    // The library leaves its upload request open when the stream is destroyed (Ctrl-C): the upload's requests go
    // through an agent of their own, whose sockets are closed when the upload ends, however it ends.
    const agent = /^http:/.test(ctx.clients.storage.apiEndpoint) ? new HttpAgent() : new HttpsAgent();
    type Interceptor = (typeof file.interceptors)[number];
    file.interceptors.push({
      // The library's types have the interceptor take one request shape and return another; it is the same object.
      request: (reqOpts) =>
        Object.assign(reqOpts, { agent }) as unknown as ReturnType<NonNullable<Interceptor['request']>>,
    });
    closeAgent = () => agent.destroy();
    ctx.signal?.addEventListener('abort', closeAgent, { once: true });
    // Open the session first (an authenticated POST); the session URI then authorises the data itself.
    const [uri] = await file.createResumableUpload({ metadata });
    const stream = file.createWriteStream({ uri, resumable: true, validation: 'md5', metadata });
    stream.on('progress', (e: { bytesWritten?: number }) =>
      ctx.onProgress?.({
        kind: 'update',
        step: upStep,
        detail: `${formatBytes(e.bytesWritten ?? 0)} of ${formatBytes(packed.bytes)}`,
        done: e.bytesWritten ?? 0,
        total: packed.bytes,
      }),
    );
    await pipeline(createReadStream(tarPath), stream, { signal: ctx.signal });
    ctx.onProgress?.({ kind: 'step-done', step: upStep, detail: formatBytes(packed.bytes) });
  } finally {
    if (closeAgent) {
      ctx.signal?.removeEventListener('abort', closeAgent);
      closeAgent();
    }
    await rm(tarPath, { force: true });
  }
}

/** A found resource must carry the labels the look-up expects (its content digest), else it is not ours to reuse. */
function checkExpectedLabels(call: GcpCall, labels: Record<string, string> | null | undefined): void {
  for (const [key, value] of Object.entries(call.expectLabels ?? {})) {
    const have = labels?.[key];
    if (have !== value) {
      throw new UniproveError('E_GCP', {
        message: `${resourceOf(call)} exists but its label ${key} is ${have ?? 'missing'}, not ${value}`,
        hint: 'It was not made by uniprove from this content: delete it (`uniprove gcp gc`, or gcloud) and run again.',
        details: { call: call.method, resource: resourceOf(call) },
      });
    }
  }
}
