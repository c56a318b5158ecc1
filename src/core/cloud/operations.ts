/**
 * Errors of the Google Cloud APIs, and long operations followed to the end
 * with backoff, a time limit and progress.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { UniproveError } from '../errors.js';
import type { OnProgress } from '../progress.js';
import { authError, type GcpClients, redact } from './clients.js';

/** How operations are polled. */
export interface PollOptions {
  /** First wait between polls (ms, default 1000), growing by `factor` up to `maxMs` (default 10000). */
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Give up after this long (ms; default 30 minutes). */
  timeoutMs?: number;
  /** How a call that met a transient error (5xx, 429, a rate limit, a dropped connection) is tried again. */
  retry?: RetryOptions;
}

/**
 * Retries of one call, as Google's client libraries' retry settings have them: exponential backoff with
 * jitter, a bounded number of tries. A six-hour proof must not end on one HTTP 500.
 */
export interface RetryOptions {
  /** Tries in all, the first included (default 8); 1 turns retries off. */
  attempts?: number;
  /** First wait (ms, default 1000), times `factor` (default 2) each try, up to `maxMs` (default 30000). */
  initialMs?: number;
  maxMs?: number;
  factor?: number;
}

const DEFAULT_RETRY = { attempts: 8, initialMs: 1000, maxMs: 30_000, factor: 2 };

/** Reasons of a 403 that goes away when the call is made again later (the others come with a 5xx). */
const TRANSIENT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);
/** Errors of the connection itself (the answer was lost, not refused). */
const TRANSIENT_SOCKET = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

/** True for an error worth another try: 5xx, 408, 429, a rate-limit reason, a dropped connection. */
export function isTransient(error: unknown): boolean {
  if (error instanceof UniproveError) return false;
  const status = httpStatusOf(error);
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  const { reason } = messageOf(error);
  if (reason && TRANSIENT_REASONS.has(reason)) return true;
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && TRANSIENT_SOCKET.has(code);
}

/**
 * Make `call`, again after a transient error, waiting between half the backoff and all of it (jitter, so that
 * many callers do not retry in step) between tries; the last error is thrown when the tries run out or the error is not transient. `onRetry` hears each
 * retry (what a record counts). Ctrl-C during a wait throws the abort reason.
 */
export async function withRetry<T>(
  call: () => Promise<T>,
  options: {
    retry?: RetryOptions | undefined;
    signal?: AbortSignal | undefined;
    onRetry?: (error: unknown) => void;
  },
): Promise<T> {
  const retry = { ...DEFAULT_RETRY, ...stripUndefined(options.retry ?? {}) };
  let delay = retry.initialMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= retry.attempts || !isTransient(error) || options.signal?.aborted) throw error;
      options.onRetry?.(error);
      const wait = Math.round(delay / 2 + Math.random() * (delay / 2));
      await sleep(wait, undefined, { signal: options.signal }).catch(() => {
        throw abortReason(options.signal);
      });
      delay = Math.min(retry.maxMs, delay * retry.factor);
    }
  }
}

const DEFAULT_POLL = { initialMs: 1000, maxMs: 10_000, factor: 1.5, timeoutMs: 30 * 60_000 };

/** HTTP status of a client error (gaxios puts it in `code` or `status`; gax in `code` as a gRPC code). */
export function httpStatusOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [e?.response?.status, e?.status, e?.code]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
  }
  if (e?.code === 5) return 404; // gRPC NOT_FOUND
  return undefined;
}

/** True for "not found" from either client. */
export function isNotFound(error: unknown): boolean {
  return httpStatusOf(error) === 404;
}

function messageOf(error: unknown): { message: string; reason?: string } {
  const raw = error instanceof Error ? error.message : String(error);
  try {
    const parsed = JSON.parse(raw) as { error?: { message?: string; errors?: { reason?: string }[] } };
    if (parsed.error?.message)
      return { message: parsed.error.message, reason: parsed.error.errors?.[0]?.reason };
  } catch {
    // not JSON
  }
  const reason = (error as { errors?: { reason?: string }[] })?.errors?.[0]?.reason;
  return { message: raw, ...(reason ? { reason } : {}) };
}

const HINTS: Record<string, string> = {
  QUOTA_EXCEEDED:
    'A quota is used up: see IAM & Admin > Quotas for the region, ask for more, or pick another machine type or region.',
  quotaExceeded:
    'A quota is used up: see IAM & Admin > Quotas for the region, ask for more, or pick another machine type or region.',
  ZONE_RESOURCE_POOL_EXHAUSTED:
    'The zone has no capacity for this machine right now: try another zone (--zone), another machine type, or later.',
  ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS:
    'The zone has no capacity for this machine right now: try another zone (--zone), another machine type, or later.',
  notFound: 'Check the name, the project (--project) and the zone (--zone).',
  forbidden:
    'The account lacks a permission: it needs roles/compute.instanceAdmin.v1 and roles/storage.admin.',
  alreadyExists:
    'A resource with this name exists: `uniprove gcp ls` shows it, `uniprove gcp gc` deletes leftovers.',
};

/** Turn a client error into E_GCP naming the call and the resource (or E_GCP_AUTH for credentials). */
export function gcpError(error: unknown, call: string, resource: string): UniproveError {
  if (error instanceof UniproveError) return error;
  const status = httpStatusOf(error);
  const { message, reason } = messageOf(error);
  if (status === 401 || /Could not load the default credentials|invalid_grant/i.test(message)) {
    return authError(error);
  }
  const text = redact(message);
  return new UniproveError('E_GCP', {
    message: `${call} ${resource} failed${status ? ` (HTTP ${status})` : ''}: ${text}`,
    hint: (reason && HINTS[reason]) ?? (status === 403 ? HINTS.forbidden : undefined),
    details: { call, resource, ...(status ? { status } : {}), ...(reason ? { reason } : {}) },
    // Never the client's error itself: it carries the request, headers included.
    cause: new Error(text),
  });
}

/** What uniprove reads of an Operation resource. */
export interface OperationLike {
  name?: string | null;
  status?: string | null;
  progress?: number | null;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
  httpErrorStatusCode?: number | null;
}

/** Follow an operation until DONE; throws E_GCP with the operation's error, E_GCP_TIMEOUT past the limit. */
export async function waitOperation(
  clients: GcpClients,
  first: OperationLike,
  where: { project: string; zone?: string; call: string; resource: string },
  options: PollOptions & {
    signal?: AbortSignal;
    onProgress?: OnProgress;
    /** Hears each retry of a poll that met a transient error. */
    onRetry?: (error: unknown) => void;
  } = {},
): Promise<OperationLike> {
  const poll = { ...DEFAULT_POLL, ...stripUndefined(options) };
  const started = Date.now();
  let op = first;
  let delay = poll.initialMs;
  const step = `${where.call} ${where.resource}`;
  while (op.status !== 'DONE') {
    const waited = Date.now() - started;
    if (waited > poll.timeoutMs) {
      throw new UniproveError('E_GCP_TIMEOUT', {
        message: `${step} was still ${op.status ?? 'pending'} after ${Math.round(waited / 1000)} s`,
        hint: 'Raise the limit (--op-timeout), or look at the operation in the Cloud Console; uniprove has deleted what it created.',
        details: { call: where.call, resource: where.resource, operation: op.name },
      });
    }
    options.onProgress?.({
      kind: 'update',
      step,
      detail: `${op.status ?? 'PENDING'}${op.progress ? ` ${op.progress}%` : ''}, ${Math.round(waited / 1000)} s`,
    });
    await sleep(delay, undefined, { signal: options.signal }).catch(() => {
      throw abortReason(options.signal);
    });
    delay = Math.min(poll.maxMs, Math.round(delay * poll.factor));
    try {
      const name = op.name ?? '';
      const [next] = await withRetry(
        () =>
          where.zone
            ? clients.zoneOperations.get({ project: where.project, zone: where.zone, operation: name })
            : clients.globalOperations.get({ project: where.project, operation: name }),
        { retry: options.retry, signal: options.signal, onRetry: options.onRetry },
      );
      op = next as OperationLike;
    } catch (error) {
      throw gcpError(
        error,
        where.zone ? 'zoneOperations.get' : 'globalOperations.get',
        `${op.name} (${step})`,
      );
    }
  }
  const errors = op.error?.errors ?? [];
  if (errors.length > 0) {
    const first = errors[0]!;
    const code = first.code ?? 'ERROR';
    throw new UniproveError('E_GCP', {
      message: `${step} failed: ${code}: ${redact(first.message ?? '')}`,
      hint: HINTS[code],
      details: { call: where.call, resource: where.resource, operation: op.name, reason: code },
    });
  }
  return op;
}

/** The abort reason as a UniproveError. */
export function abortReason(signal: AbortSignal | undefined): UniproveError {
  const reason = signal?.reason;
  if (reason instanceof UniproveError) return reason;
  return new UniproveError('E_INTERRUPTED', { message: 'interrupted', cause: reason });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
