/**
 * Download one file to a partial path while hashing it, resuming with Range
 * after an interruption and retrying with backoff on 5xx, resets and stalls.
 * The caller checks the digest and moves the file into the cache.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { UniproveError } from '../errors.js';
import { withWriteErrors, writeJsonAtomic } from '../fs.js';
import type { HashWorkers } from '../hash-workers.js';
import { removeIfPresent } from './cache.js';
import { createHasher, type DigestAlgorithm, type Hasher, hashFileInto } from './digest.js';

/** What is remembered next to a partial download so it can be resumed safely. */
interface PartialMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
  /** The server answered a Range request, or advertised Accept-Ranges: bytes. */
  resumable: boolean;
}

export interface DownloadFileOptions {
  url: string;
  partialPath: string;
  metaPath: string;
  algorithm: DigestAlgorithm;
  /** Hash on these worker threads instead of the main thread. */
  hashThreads?: HashWorkers;
  /** Size the set expects; a server announcing another size is refused, and one announcing none is cut off past it. */
  expectedSize?: number;
  /** What is being downloaded, for errors: `a.params of set test-set`. */
  label?: string;
  dispatcher: Dispatcher;
  signal?: AbortSignal;
  /** Attempts in a row that bring no new bytes before giving up. */
  retries: number;
  /** First backoff delay; doubles per failure, capped at 30 s. */
  retryDelayMs: number;
  /** A response that sends nothing for this long is dropped and resumed. */
  stallTimeoutMs: number;
  /** Bytes added to (or, on restart, removed from) the partial file; `network` false when re-hashing what was there. */
  onBytes: (delta: number, network: boolean) => void;
  /** The file's full size, once a server says it. */
  onTotal: (total: number) => void;
  onRetry: (info: { attempt: number; delayMs: number; reason: string; offset: number }) => void;
}

export interface DownloadFileResult {
  digest: string;
  size: number;
  /** Bytes already in the partial file when this download started. */
  resumedFrom: number;
  /** Network attempts made (1 when nothing went wrong). */
  attempts: number;
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** A failure worth retrying (the network or the server, not the request). */
class RetryableError extends Error {
  override readonly name = 'RetryableError';
}

function isRetryable(error: unknown): boolean {
  if (error instanceof RetryableError) return true;
  let current: unknown = error;
  for (let depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: string }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${code ? `${code} ` : ''}${error.message}${cause}`;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readMeta(path: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PartialMeta;
  } catch {
    return undefined;
  }
}

const WRITE_BATCH = 4 * 1024 * 1024;

/** The most bytes a body may bring, and the error once it brings more. */
interface BodyLimit {
  bytes: number;
  exceeded: () => UniproveError;
}

/** The limit for a body: the size the server announced, else the size the set declares (a server that never ends is cut off). */
function bodyLimit(total: number | undefined, options: DownloadFileOptions): BodyLimit | undefined {
  if (total !== undefined) {
    return {
      bytes: total,
      exceeded: () =>
        new UniproveError('E_DOWNLOAD', {
          message: `the server sent more than the ${total} bytes it announced`,
          hint: 'The server or a proxy is misbehaving; try another --base-url.',
        }),
    };
  }
  const declared = options.expectedSize;
  if (declared === undefined) return undefined;
  return {
    bytes: declared,
    exceeded: () =>
      new UniproveError('E_DOWNLOAD', {
        message: `${options.label ?? options.url} is declared as ${declared} bytes, but ${options.url} sent more (it announced no size); stopped at ${declared + 1} bytes and removed the partial`,
        hint: 'The URL serves a different or endless file: check --base-url, or fix size in the set file.',
        details: { url: options.url, expected: declared, oversize: true },
      }),
  };
}

/** Mutable state of one download across attempts. */
interface State {
  hasher: Hasher;
  /** Bytes hashed and written to the partial file. */
  offset: number;
  meta: PartialMeta;
}

/**
 * Append chunks to the partial file, hashing them (as they arrive, or as they are written when the hasher reads its file). Writes are batched
 * (one writev in flight at a time); on error every chunk received is still
 * written, so the file and the hash always cover the same bytes.
 */
async function appendBody(
  body: AsyncIterable<Uint8Array>,
  file: FileHandle,
  state: State,
  limit: BodyLimit | undefined,
  onBytes: (delta: number, network: boolean) => void,
): Promise<void> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let inflight: Promise<void> | undefined;
  const flush = async () => {
    if (pending.length === 0) return;
    const buffers = pending;
    const bytes = pendingBytes;
    pending = [];
    pendingBytes = 0;
    const start = state.offset;
    let position = start;
    // writev may write less than asked; loop until every byte is on disk.
    let remaining = buffers;
    while (remaining.length > 0) {
      const { bytesWritten } = await file.writev(remaining, position);
      position += bytesWritten;
      let skip = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const buffer of remaining) {
        if (skip >= buffer.length) {
          skip -= buffer.length;
        } else {
          rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
          skip = 0;
        }
      }
      remaining = rest;
    }
    state.offset += bytes;
    state.hasher.written?.(start, bytes);
    onBytes(bytes, true);
  };
  let failure: unknown;
  try {
    for await (const chunk of body) {
      if (limit !== undefined && state.offset + pendingBytes + chunk.length > limit.bytes)
        throw limit.exceeded();
      if (!state.hasher.written) state.hasher.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BATCH) {
        await inflight;
        inflight = flush();
      }
    }
  } catch (error) {
    failure = error;
  }
  await inflight;
  await flush();
  if (failure) throw failure;
}

function parseContentRange(value: string | undefined): { start?: number; total?: number } {
  const match = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return {};
  return {
    ...(match[1] === undefined ? {} : { start: Number(match[1]) }),
    ...(match[2] === '*' || match[2] === undefined ? {} : { total: Number(match[2]) }),
  };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Restart from byte 0: empty the partial file and forget the hash. */
async function restart(state: State, options: DownloadFileOptions): Promise<void> {
  if (state.offset > 0) options.onBytes(-state.offset, false);
  await truncate(options.partialPath, 0);
  state.offset = 0;
  state.hasher.discard?.();
  state.hasher = createHasher(options.algorithm, options.hashThreads, options.partialPath);
}

type Outcome = 'complete' | 'again';

async function attemptHttp(state: State, file: FileHandle, options: DownloadFileOptions): Promise<Outcome> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'uniprove' };
  const resuming = state.offset > 0;
  if (resuming) {
    headers.range = `bytes=${state.offset}-`;
    // Only resume the same version of the file: with If-Range a changed file comes back whole.
    const validator =
      state.meta.etag && !state.meta.etag.startsWith('W/') ? state.meta.etag : state.meta.lastModified;
    if (validator) headers['if-range'] = validator;
  }
  const { request } = await import('undici');
  const response = await request(options.url, {
    method: 'GET',
    headers,
    dispatcher: options.dispatcher,
    headersTimeout: options.stallTimeoutMs,
    bodyTimeout: options.stallTimeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const status = response.statusCode;
  const h = response.headers;
  const drop = () => {
    response.body.dump().catch(() => {});
  };
  if (status === 416 && resuming) {
    drop();
    const { total } = parseContentRange(header(h, 'content-range'));
    if (total === state.offset) return 'complete';
    await restart(state, options);
    throw new RetryableError(`the server refused range ${state.offset}- (HTTP 416)`);
  }
  if (status >= 500 || status === 429 || status === 408) {
    drop();
    throw new RetryableError(`HTTP ${status} from ${options.url}`);
  }
  if (status !== 200 && status !== 206) {
    drop();
    throw new UniproveError('E_DOWNLOAD', {
      message: `HTTP ${status} for ${options.url}`,
      hint:
        status === 404
          ? 'The file is not at that address: check --base-url (a mirror serves files by name, a gateway by CID under /ipfs/).'
          : 'Check the URL and any proxy in between.',
      details: { url: options.url, status },
    });
  }
  const length = header(h, 'content-length');
  let total: number | undefined;
  if (status === 206) {
    const range = parseContentRange(header(h, 'content-range'));
    if (range.start !== state.offset) {
      drop();
      await restart(state, options);
      throw new RetryableError(
        `the server answered range ${state.offset}- with ${header(h, 'content-range')}`,
      );
    }
    total = range.total;
    state.meta.resumable = true;
  } else {
    // 200: a whole file, either asked for or because the server ignored Range / the file changed.
    if (resuming) await restart(state, options);
    total = length === undefined ? undefined : Number(length);
    state.meta = {
      url: options.url,
      resumable: header(h, 'accept-ranges')?.toLowerCase() === 'bytes',
      ...(header(h, 'etag') ? { etag: header(h, 'etag')! } : {}),
      ...(header(h, 'last-modified') ? { lastModified: header(h, 'last-modified')! } : {}),
    };
  }
  if (total !== undefined) {
    if (options.expectedSize !== undefined && total !== options.expectedSize) {
      drop();
      throw new UniproveError('E_DOWNLOAD', {
        message: `${options.url} is ${total} bytes but the parameter set says ${options.expectedSize}`,
        hint: 'The URL serves a different file: check --base-url, or fix size in the set file.',
        details: { url: options.url, total, expected: options.expectedSize },
      });
    }
    state.meta.total = total;
    options.onTotal(total);
  }
  await writeJsonAtomic(options.metaPath, state.meta);
  await appendBody(response.body, file, state, bodyLimit(total, options), options.onBytes);
  if (total !== undefined && state.offset < total) {
    throw new RetryableError(`the connection ended at byte ${state.offset} of ${total}`);
  }
  return 'complete';
}

async function attemptFile(state: State, file: FileHandle, options: DownloadFileOptions): Promise<Outcome> {
  const source = fileURLToPath(options.url);
  let total: number;
  try {
    const info = await stat(source);
    if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    total = info.size;
  } catch (error) {
    throw new UniproveError('E_DOWNLOAD', {
      message: `cannot read ${source}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      hint: 'With a file:// --base-url, the folder must hold the files by name (or CID).',
      cause: error,
      details: { url: options.url },
    });
  }
  if (options.expectedSize !== undefined && total !== options.expectedSize) {
    throw new UniproveError('E_DOWNLOAD', {
      message: `${source} is ${total} bytes but the parameter set says ${options.expectedSize}`,
      hint: 'The folder holds a different file under that name.',
      details: { url: options.url, total, expected: options.expectedSize },
    });
  }
  state.meta = { url: options.url, resumable: true, total };
  options.onTotal(total);
  if (state.offset > total) await restart(state, options);
  await writeJsonAtomic(options.metaPath, state.meta);
  const stream = createReadStream(source, {
    start: state.offset,
    highWaterMark: 1024 * 1024,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await appendBody(
    stream as AsyncIterable<Uint8Array>,
    file,
    state,
    bodyLimit(total, options),
    options.onBytes,
  );
  return 'complete';
}

function interrupted(url: string, cause: unknown): UniproveError {
  return new UniproveError('E_INTERRUPTED', { message: `download of ${url} was interrupted`, cause });
}

/**
 * Download `url` into `partialPath`, resuming what is there when it came from
 * the same URL, and return the digest of the whole file. On a final failure a
 * partial that the server can resume is kept; any other is removed.
 */
export async function downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult> {
  return withWriteErrors(
    {
      what: `the download of ${options.url}`,
      path: options.partialPath,
      ...(options.expectedSize ? { bytes: options.expectedSize } : {}),
      elsewhere: 'point UNIPROVE_CACHE at a folder on a disk with room',
    },
    () => download(options),
  );
}

async function download(options: DownloadFileOptions): Promise<DownloadFileResult> {
  const { partialPath, metaPath } = options;
  await mkdir(dirname(partialPath), { recursive: true });
  let meta = await readMeta(metaPath);
  let onDisk = await sizeOf(partialPath);
  if (onDisk > 0 && (!meta || meta.url !== options.url || !meta.resumable)) onDisk = -1;
  if (onDisk > 0 && options.expectedSize !== undefined && onDisk > options.expectedSize) onDisk = -1;
  if (onDisk < 0) {
    await truncate(partialPath, 0);
    onDisk = 0;
    meta = undefined;
  }
  const file = await open(partialPath, onDisk > 0 ? 'r+' : 'w');
  const state: State = {
    hasher: createHasher(options.algorithm, options.hashThreads, options.partialPath),
    offset: 0,
    meta: meta ?? { url: options.url, resumable: false },
  };
  const resumedFrom = onDisk;
  let attempts = 0;
  try {
    if (onDisk > 0) {
      // The hash of what is already there, so the digest covers the whole file.
      await hashFileInto(partialPath, state.hasher, {
        end: onDisk,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      state.offset = onDisk;
      options.onBytes(onDisk, false);
    }
    let failures = 0;
    for (;;) {
      if (options.signal?.aborted) throw interrupted(options.url, options.signal.reason);
      const before = state.offset;
      attempts++;
      try {
        const outcome = options.url.startsWith('file:')
          ? await attemptFile(state, file, options)
          : await attemptHttp(state, file, options);
        if (outcome === 'complete') break;
      } catch (error) {
        if (options.signal?.aborted) throw interrupted(options.url, error);
        if (!isRetryable(error)) throw error;
        failures = state.offset > before ? 1 : failures + 1;
        if (failures > options.retries) {
          throw new UniproveError('E_DOWNLOAD', {
            message: `${options.url} failed ${failures} times in a row without progress: ${describe(error)}`,
            hint: 'Check the network or the server, or try a mirror with --base-url; run again to resume.',
            cause: error,
            details: { url: options.url, offset: state.offset },
          });
        }
        const delayMs =
          Math.min(30_000, options.retryDelayMs * 2 ** (failures - 1)) * (0.75 + Math.random() / 2);
        options.onRetry({ attempt: attempts, delayMs, reason: describe(error), offset: state.offset });
        try {
          await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {});
        } catch (sleepError) {
          throw interrupted(options.url, sleepError);
        }
      }
    }
    await file.sync();
    return { digest: await state.hasher.digest(), size: state.offset, resumedFrom, attempts };
  } catch (error) {
    await file.close().catch(() => {});
    const oversize = error instanceof UniproveError && error.details.oversize === true;
    if (oversize || !state.meta.resumable || state.offset === 0) {
      await removeIfPresent(partialPath);
      await removeIfPresent(metaPath);
    }
    throw error;
  } finally {
    await file.close().catch(() => {});
  }
}
