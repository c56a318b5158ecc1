/**
 * How a fleet tells a failed attempt apart: a preempted instance (retry the
 * input elsewhere), a lack of capacity (back off, fewer at once, maybe another
 * zone), or a failure of the input itself (not retried). Compute Engine
 * reports capacity three ways, all seen through the official clients:
 * an operation error on instances.insert (ZONE_RESOURCE_POOL_EXHAUSTED,
 * QUOTA_EXCEEDED; waitOperation puts the code in details.reason), an HTTP
 * error on the request (403 quotaExceeded, 403/429 rateLimitExceeded;
 * gcpError puts the reason and status in details), or gax's RESOURCE_EXHAUSTED.
 */
import { isUniproveError } from '../../errors.js';

/** What a failed attempt means to the fleet. */
export type AttemptFailureKind =
  | 'preempted'
  | 'zone-exhausted'
  | 'quota'
  | 'rate-limit'
  | 'interrupted'
  | 'error';

const ZONE_EXHAUSTED = new Set(['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS']);
const QUOTA = new Set(['QUOTA_EXCEEDED', 'quotaExceeded']);
const RATE = new Set([
  'rateLimitExceeded',
  'userRateLimitExceeded',
  'RATE_LIMIT_EXCEEDED',
  'RESOURCE_EXHAUSTED',
]);

/** Classify an error thrown by an attempt (a UniproveError from the gcp module, or anything else). */
export function classifyAttemptError(error: unknown): AttemptFailureKind {
  if (!isUniproveError(error)) return 'error';
  if (error.code === 'E_GCP_PREEMPTED') return 'preempted';
  if (error.code === 'E_INTERRUPTED') return 'interrupted';
  if (error.code !== 'E_GCP') return 'error';
  const details = error.details as { reason?: unknown; status?: unknown };
  const reason = typeof details.reason === 'string' ? details.reason : '';
  if (ZONE_EXHAUSTED.has(reason)) return 'zone-exhausted';
  if (QUOTA.has(reason)) return 'quota';
  if (RATE.has(reason) || details.status === 429) return 'rate-limit';
  // Reasons are not always carried (an error rewrapped by a caller): the message names them.
  if (/ZONE_RESOURCE_POOL_EXHAUSTED/.test(error.message)) return 'zone-exhausted';
  if (/QUOTA_EXCEEDED|quotaExceeded|Quota '[A-Z0-9_]+' exceeded/.test(error.message)) return 'quota';
  if (/rateLimitExceeded|Rate Limit Exceeded/i.test(error.message)) return 'rate-limit';
  return 'error';
}

/** True for the kinds that mean "no capacity now" rather than a failure of the input. */
export function isCapacityKind(kind: AttemptFailureKind): kind is 'zone-exhausted' | 'quota' | 'rate-limit' {
  return kind === 'zone-exhausted' || kind === 'quota' || kind === 'rate-limit';
}

/** Backoff settings: the n-th capacity error in a row waits about base x 2^(n-1), capped. */
export interface BackoffOptions {
  /** First wait (ms, default 2000). */
  baseMs?: number;
  /** Longest wait (ms, default 60000). */
  maxMs?: number;
}

/**
 * Exponential backoff with "equal jitter": half the delay fixed, half random,
 * so instances that failed together do not come back together.
 */
export function backoffDelay(streak: number, options: BackoffOptions = {}, random = Math.random): number {
  const base = options.baseMs ?? 2000;
  const max = options.maxMs ?? 60_000;
  const delay = Math.min(max, base * 2 ** Math.max(0, streak - 1));
  return Math.round(delay / 2 + random() * (delay / 2));
}
