/**
 * Fetch every file of a parameter set into the content-addressed cache:
 * several at once, each verified before it enters the cache, files already
 * cached and verified left alone.
 */
import { chmod, mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Dispatcher } from 'undici';
import { mapLimit } from '../concurrency.js';
import { isUniproveError, summarizeError, UniproveError } from '../errors.js';
import { formatBytes } from '../format.js';
import { isWriteRefusal, toWriteError, type WriteContext } from '../fs.js';
import { HashWorkers } from '../hash-workers.js';
import { withLock } from '../lock.js';
import type { OnProgress } from '../progress.js';
import {
  cachePaths,
  checkCached,
  keepAsInvalid,
  removeIfPresent,
  type VerifyMode,
  writeStamp,
} from './cache.js';
import { type DigestAlgorithm, parseDigest } from './digest.js';
import { downloadFile } from './download.js';
import { urlFor } from './filecoin.js';
import type { ResolvedParameterFile, ResolvedParameterSet } from './spec.js';

export interface FetchParameterSetOptions {
  /** The cache root ($UNIPROVE_CACHE or ~/.cache/uniprove, chosen by the caller). */
  cacheDir: string;
  /** Download from here instead of the set's URLs (see urlFor: `{cid}`, `{name}`, `/ipfs/`, file://). */
  baseUrl?: string;
  /** Files downloaded at once (default 4). */
  jobs?: number;
  /** Re-check cached files by stat stamp (`quick`, default) or by hashing them again (`full`). */
  verify?: VerifyMode;
  /** Attempts in a row without progress before a file fails (default 5). */
  retries?: number;
  /** First backoff delay in ms (default 500). */
  retryDelayMs?: number;
  /** Drop and resume a response that sends nothing for this long (default 60 s). */
  stallTimeoutMs?: number;
  /** Downloads of a file that fail their digest before giving up (default 2). */
  digestAttempts?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** A file that is in the cache and matched its digest. */
export interface FetchedFile {
  name: string;
  /** Where it is in the cache. */
  path: string;
  guestPath: string;
  digest: string;
  size: number;
  verified: true;
  /** `cache`: it was there already; `download`: fetched now. */
  source: 'cache' | 'download';
  url?: string;
}

/** A file that could not be fetched and verified. */
export interface FetchFailure {
  name: string;
  digest: string;
  error: { code: string; message: string; hint?: string };
  /** Where a download that failed its digest was kept. */
  invalidPath?: string;
}

export interface FetchParameterSetResult {
  set: string;
  setDigest: string;
  files: FetchedFile[];
  failed: FetchFailure[];
  /** Bytes that came over the network (or from file://) in this run. */
  bytesDownloaded: number;
  durationMs: number;
}

/** Rate and ETA over a sliding window of samples. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  private total = 0;
  add(bytes: number): void {
    this.total += bytes;
    const t = performance.now();
    this.samples.push({ t, bytes: this.total });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 5000) this.samples.shift();
  }
  get bytes(): number {
    return this.total;
  }
  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 200) return 0;
    return ((last.bytes - first.bytes) / (last.t - first.t)) * 1000;
  }
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** The dispatcher for downloads: keep-alive, follows redirects (gateways redirect). Loaded only when fetching. */
async function createDispatcher(jobs: number): Promise<Dispatcher> {
  const { Agent, interceptors } = await import('undici');
  return new Agent({ connections: jobs * 2, pipelining: 0 }).compose(
    interceptors.redirect({ maxRedirections: 5 }),
  );
}

function errorSummary(error: unknown): FetchFailure['error'] {
  return summarizeError(error, 'E_DOWNLOAD');
}

/** Bytes done and expected per file, reported as one progress line at most every 250 ms. */
class ByteProgress {
  readonly expected = new Map<string, number>();
  private readonly done = new Map<string, number>();
  readonly meter = new RateMeter();
  private lastEmit = 0;
  filesDone = 0;

  constructor(
    private readonly set: ResolvedParameterSet,
    private readonly step: string,
    private readonly progress: OnProgress,
  ) {
    for (const file of set.files) if (file.size !== undefined) this.expected.set(file.name, file.size);
  }

  emit(force = false): void {
    const now = performance.now();
    if (!force && now - this.lastEmit < 250) return;
    this.lastEmit = now;
    let total = 0;
    let doneBytes = 0;
    for (const file of this.set.files) {
      const d = this.done.get(file.name) ?? 0;
      doneBytes += d;
      total += Math.max(this.expected.get(file.name) ?? 0, d);
    }
    const rate = this.meter.rate();
    const etaSeconds = rate > 0 ? Math.max(0, total - doneBytes) / rate : Number.POSITIVE_INFINITY;
    this.progress({
      kind: 'update',
      step: this.step,
      done: doneBytes,
      total,
      bytesPerSecond: rate,
      etaSeconds,
      detail: `${formatBytes(doneBytes)} / ${formatBytes(total)}, ${formatBytes(rate)}/s, ETA ${formatEta(etaSeconds)}, ${this.filesDone}/${this.set.files.length} files`,
    });
  }

  addBytes(name: string, delta: number, network: boolean): void {
    this.done.set(name, (this.done.get(name) ?? 0) + delta);
    if (network && delta > 0) this.meter.add(delta);
    this.emit();
  }
}

/** What every file's fetch of one fetchParameterSet call shares. */
interface FetchContext {
  options: FetchParameterSetOptions;
  setName: string;
  verify: VerifyMode;
  step: string;
  progress: OnProgress;
  bytes: ByteProgress;
  urlsByFile: Map<string, string[]>;
  dispatcher: Dispatcher;
  hashThreads: HashWorkers | undefined;
}

/** Download a file from the first of its URLs that serves it (into the partial path, resuming). */
async function downloadFromUrls(ctx: FetchContext, file: ResolvedParameterFile) {
  const { options, progress, step } = ctx;
  const { signal } = options;
  const paths = cachePaths(options.cacheDir, file.digest);
  const algorithm = parseDigest(file.digest).algorithm as DigestAlgorithm;
  let lastError: unknown;
  for (const url of ctx.urlsByFile.get(file.name)!) {
    try {
      const result = await downloadFile({
        url,
        partialPath: paths.partial,
        metaPath: paths.partialMeta,
        algorithm,
        ...(ctx.hashThreads ? { hashThreads: ctx.hashThreads } : {}),
        ...(file.size === undefined ? {} : { expectedSize: file.size }),
        label: `${file.name} of set ${ctx.setName}`,
        dispatcher: ctx.dispatcher,
        ...(signal ? { signal } : {}),
        retries: options.retries ?? 5,
        retryDelayMs: options.retryDelayMs ?? 500,
        stallTimeoutMs: options.stallTimeoutMs ?? 60_000,
        onBytes: (delta, network) => ctx.bytes.addBytes(file.name, delta, network),
        onTotal: (total) => ctx.bytes.expected.set(file.name, total),
        onRetry: ({ delayMs, reason, offset }) =>
          progress({
            kind: 'note',
            step,
            detail: `${file.name}: ${reason}; retrying in ${(delayMs / 1000).toFixed(1)} s from byte ${offset}`,
          }),
      });
      return { result, url };
    } catch (error) {
      if (signal?.aborted || (isUniproveError(error) && error.code === 'E_INTERRUPTED')) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * One file, holding its partial's lock: another uniprove fetching the same file into this cache (a second
 * `volume fetch`, a `run` building its volume) is waited for, and its file then found in the cache.
 */
async function fetchOne(ctx: FetchContext, file: ResolvedParameterFile): Promise<FetchedFile> {
  const { options, progress, step } = ctx;
  const paths = cachePaths(options.cacheDir, file.digest);
  return withLock(`${paths.partial}.lock`, () => fetchLocked(ctx, file), {
    signal: options.signal,
    onWait: (pid) =>
      progress({
        kind: 'note',
        step,
        detail: `${file.name}: another uniprove (pid ${pid}) is fetching it into this cache; waiting for it`,
      }),
  });
}

/** One file: from the cache when it is there and verifies, else downloaded until its digest matches. */
async function fetchLocked(ctx: FetchContext, file: ResolvedParameterFile): Promise<FetchedFile> {
  const { options, progress, step } = ctx;
  const paths = cachePaths(options.cacheDir, file.digest);
  const base = { name: file.name, guestPath: file.guestPath, digest: file.digest, verified: true as const };
  const cached = await checkCached(paths, file.digest, ctx.verify, {
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (cached.state === 'ok') {
    ctx.bytes.expected.set(file.name, cached.size);
    ctx.bytes.addBytes(file.name, cached.size, false);
    return { ...base, path: paths.blob, size: cached.size, source: 'cache' };
  }
  if (cached.state === 'bad') {
    const kept = await keepAsInvalid(options.cacheDir, paths.blob, file.name);
    await removeIfPresent(paths.stamp);
    progress({
      kind: 'note',
      step,
      detail: `${file.name}: cached copy has digest ${cached.actual}, not ${file.digest}; kept aside as ${kept}, fetching again`,
    });
  }
  const digestAttempts = options.digestAttempts ?? 2;
  for (let round = 1; ; round++) {
    const { result, url } = await downloadFromUrls(ctx, file);
    if (result.digest === file.digest) {
      await mkdir(dirname(paths.blob), { recursive: true });
      await chmod(paths.partial, 0o444);
      await rename(paths.partial, paths.blob);
      await removeIfPresent(paths.partialMeta);
      await writeStamp(paths, file.digest);
      return { ...base, path: paths.blob, size: result.size, source: 'download', url };
    }
    const invalidPath = await keepAsInvalid(options.cacheDir, paths.partial, file.name);
    await removeIfPresent(paths.partialMeta);
    ctx.bytes.addBytes(file.name, -result.size, false);
    const message = `${file.name} from ${url} has digest ${result.digest}, expected ${file.digest}`;
    if (round >= digestAttempts) {
      throw new UniproveError('E_DIGEST_MISMATCH', {
        message: `${message} (${round} downloads); kept as ${invalidPath}`,
        hint: 'The server sends different bytes than the set expects: try a mirror with --base-url, or check the set file.',
        details: { name: file.name, url, expected: file.digest, actual: result.digest, invalidPath },
      });
    }
    progress({ kind: 'note', step, detail: `${message}; kept aside as ${invalidPath}, fetching again` });
  }
}

/** The error for a fetch where some files failed: interrupted, a digest mismatch, or a download error. */
function fetchFailedError(
  set: ResolvedParameterSet,
  result: FetchParameterSetResult,
  aborted: boolean,
): UniproveError {
  const { failed } = result;
  const code = aborted
    ? 'E_INTERRUPTED'
    : failed.some((f) => f.error.code === 'E_DIGEST_MISMATCH')
      ? 'E_DIGEST_MISMATCH'
      : 'E_DOWNLOAD';
  return new UniproveError(code, {
    message:
      code === 'E_INTERRUPTED'
        ? `fetch of ${set.name} was interrupted; ${result.files.length} of ${set.files.length} files are in the cache`
        : `${failed.length} of ${set.files.length} files of ${set.name} could not be fetched and verified:\n  ${failed
            .map((f) => `${f.name}: ${f.error.message}`)
            .join('\n  ')}`,
    hint:
      code === 'E_INTERRUPTED'
        ? 'Run the same command again: partial downloads resume where they stopped.'
        : (failed[0]?.error.hint ?? 'Run again to retry; verified files are kept.'),
    details: { ...result },
  });
}

/**
 * Make every file of the set present and verified in the cache. Returns the
 * files; throws when any file could not be fetched and verified (E_DOWNLOAD,
 * E_DIGEST_MISMATCH or E_INTERRUPTED) with `details.files` and `details.failed`.
 */
export async function fetchParameterSet(
  set: ResolvedParameterSet,
  options: FetchParameterSetOptions,
): Promise<FetchParameterSetResult> {
  const started = performance.now();
  const jobs = Math.max(1, Math.floor(options.jobs ?? 4));
  const progress = options.onProgress ?? (() => {});
  const signal = options.signal;
  const step = `fetch ${set.name}`;
  // Validate every URL before the first download.
  const urlsByFile = new Map<string, string[]>(
    set.files.map((file) => [file.name, options.baseUrl ? [urlFor(options.baseUrl, file)] : file.urls]),
  );
  const bytes = new ByteProgress(set, step, progress);

  progress({
    kind: 'step-start',
    step,
    detail: `${set.files.length} files${set.knownBytes ? `, ${formatBytes(set.knownBytes)}` : ''} into ${options.cacheDir}`,
  });
  const ctx: FetchContext = {
    options,
    setName: set.name,
    verify: options.verify ?? 'quick',
    step,
    progress,
    bytes,
    urlsByFile,
    dispatcher: await createDispatcher(jobs),
    // With several downloads at once, hashing moves to worker threads so it runs beside the receiving.
    hashThreads: jobs > 1 ? new HashWorkers() : undefined,
  };
  const files: (FetchedFile | undefined)[] = new Array(set.files.length);
  const failed: FetchFailure[] = [];

  // The cache is content-addressed: files with the same digest (identical .meta files, say) share one
  // download, or two writers would race on one partial file.
  const byDigest = new Map<string, Promise<FetchedFile>>();
  const fetchShared = async (file: ResolvedParameterFile): Promise<FetchedFile> => {
    const first = byDigest.get(file.digest);
    if (!first) {
      const pending = fetchOne(ctx, file);
      byDigest.set(file.digest, pending);
      return pending;
    }
    const { url: _url, ...got } = await first;
    bytes.expected.set(file.name, got.size);
    bytes.addBytes(file.name, got.size, false);
    return { ...got, name: file.name, guestPath: file.guestPath, source: 'cache' };
  };

  const writing: WriteContext = {
    what: `the parameter cache (${set.name})`,
    path: options.cacheDir,
    ...(set.knownBytes ? { bytes: set.knownBytes } : {}),
    elsewhere: 'point UNIPROVE_CACHE at a folder on a disk with room',
  };
  let diskError: UniproveError | undefined;
  // A file's failure is its own (kept in `failed`): every file gets its turn, the ones after Ctrl-C as interrupted.
  const fetchInTurn = async (file: (typeof set.files)[number], index: number): Promise<void> => {
    if (signal?.aborted) {
      failed.push({
        name: file.name,
        digest: file.digest,
        error: { code: 'E_INTERRUPTED', message: 'interrupted before it started' },
      });
      return;
    }
    try {
      files[index] = await fetchShared(file);
    } catch (caught) {
      // A full or read-only cache is the host's state: typed, and it fails the fetch as itself, not as a download.
      const error = await toWriteError(caught, writing);
      if (isWriteRefusal(error)) diskError ??= error;
      failed.push({
        name: file.name,
        digest: file.digest,
        error: errorSummary(error),
        ...(isUniproveError(error) && typeof error.details.invalidPath === 'string'
          ? { invalidPath: error.details.invalidPath }
          : {}),
      });
    } finally {
      bytes.filesDone++;
      bytes.emit(true);
    }
  };
  try {
    await mapLimit(set.files, jobs, fetchInTurn);
  } finally {
    await ctx.dispatcher.close().catch(() => {});
    await ctx.hashThreads?.close();
  }
  const result: FetchParameterSetResult = {
    set: set.name,
    setDigest: set.setDigest,
    files: files.filter((f): f is FetchedFile => f !== undefined),
    failed,
    bytesDownloaded: bytes.meter.bytes,
    durationMs: performance.now() - started,
  };
  if (diskError && !signal?.aborted) throw diskError;
  if (failed.length > 0) throw fetchFailedError(set, result, Boolean(signal?.aborted));
  progress({
    kind: 'step-done',
    step,
    detail: `${result.files.length} files verified, ${formatBytes(result.bytesDownloaded)} downloaded in ${(result.durationMs / 1000).toFixed(1)} s`,
  });
  return result;
}
