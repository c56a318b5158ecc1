/**
 * What every Compute Engine verb shares: its options, the clients (made once, credentials checked first), the
 * execution context of a plan, and the release of what the ledger recorded (cleanup that outlives Ctrl-C).
 */
import { basename } from 'node:path';
import { UniproveError } from '../errors.js';
import { sha256File } from '../hash.js';
import type { OnProgress } from '../progress.js';
import { createGcpClients, type GcpClients, type GcpEndpoints } from './clients.js';
import type { GcpTarget } from './config.js';
import { type ExecutionContext, performCall } from './execute.js';
import { type LedgerReleaseResult, ResourceLedger } from './ledger.js';
import type { PollOptions } from './operations.js';
import { type GcpCall, type GcpImageSource, stagingObject } from './plan.js';

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

export function dryRunOf(calls: GcpCall[]): GcpDryRunResult {
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

export async function sourceOf(
  disk: GcpRawDisk,
  dryRun: boolean,
  signal?: AbortSignal,
): Promise<GcpImageSource> {
  const name = disk.name ?? (basename(disk.rawPath).replace(/\.[^.]*$/, '') || 'disk');
  return {
    name,
    rawPath: disk.rawPath,
    sha256: dryRun
      ? (disk.dryRunDigest ?? `<sha256 of ${basename(disk.rawPath)}>`)
      : (disk.sha256 ?? (await rawDiskSha256(disk.rawPath, signal))),
  };
}

/** sha256 (hex) of a raw disk image, streamed; a missing file is named. */
async function rawDiskSha256(path: string, signal?: AbortSignal): Promise<string> {
  try {
    return await sha256File(path, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UniproveError('E_NOT_FOUND', {
        message: `${path} does not exist`,
        hint: 'Check the path of the raw disk image.',
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Make the clients (unless given) and check the credentials before anything else: a missing login should not
 * cost a build first. `use` gets them; they are closed after.
 */
export async function withClients<T>(
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

export function newContext(
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
    retries: 0,
  };
}

/** Release the ledger with a context that ignores the abort signal (cleanup must finish after Ctrl-C). */
export async function releaseAll(
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

export function cleanupError(error: unknown, release: LedgerReleaseResult): unknown {
  if (release.failed.length === 0) return error;
  if (error instanceof UniproveError) {
    error.details.leftovers = release.failed.map((f) => ({ ...f.resource, error: f.message }));
    return error;
  }
  return error;
}

export function leftoverError(release: LedgerReleaseResult): UniproveError | undefined {
  if (release.failed.length === 0) return undefined;
  return new UniproveError('E_GCP', {
    message: `could not delete ${release.failed.map((f) => `${f.resource.kind} ${f.resource.name}`).join(', ')}: ${release.failed[0]!.message}`,
    hint: 'Run `uniprove gcp gc` to delete leftovers; `uniprove gcp ls` shows them.',
    details: { leftovers: release.failed.map((f) => ({ ...f.resource, error: f.message })) },
  });
}

/** The options every GCP command takes, picked out of a larger options object. */
export function commonOf(o: GcpCommonOptions): GcpCommonOptions {
  return {
    target: o.target,
    ...(o.endpoints ? { endpoints: o.endpoints } : {}),
    ...(o.accessToken ? { accessToken: o.accessToken } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.poll ? { poll: o.poll } : {}),
    ...(o.clients ? { clients: o.clients } : {}),
  };
}
