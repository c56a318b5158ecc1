/**
 * The one file hasher: every digest uniprove takes of a file (package files, lock checks, raw disks, proofs,
 * parameter files) is read here. Big files go to the hashing threads of hash-workers.ts when a pool is given
 * (a package of many large libraries hashes on every core); the rest are streamed on this thread.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { HashWorkers } from './hash-workers.js';

export { HashWorkers } from './hash-workers.js';

/** Files at least this big go to a hashing thread when a pool is given (smaller ones cost more to hand over). */
export const WORKER_THRESHOLD = 4 << 20;

/** Options of a file hash. */
export interface HashFileOptions {
  /** A node:crypto algorithm (default sha256). */
  algorithm?: string;
  signal?: AbortSignal;
  /** Hash bytes [0, end) only (a partial download). */
  end?: number;
  /** Called with the length of each chunk read. */
  onBytes?: (n: number) => void;
  /** Hashing threads, used for a file of `size` at least WORKER_THRESHOLD. */
  workers?: HashWorkers;
  /** The file's size, when known (decides whether the threads take it). */
  size?: number;
}

/** Feed bytes [0, end) of a file (all of it without end) to `onChunk`, in 1 MiB reads. */
export async function readFileChunks(
  path: string,
  onChunk: (chunk: Buffer) => void,
  options: { end?: number; signal?: AbortSignal } = {},
): Promise<number> {
  if (options.end === 0) return 0;
  const stream = createReadStream(path, {
    highWaterMark: 1 << 20,
    ...(options.end === undefined ? {} : { end: options.end - 1 }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    onChunk(chunk);
    bytes += chunk.length;
  }
  return bytes;
}

/** The hex digest of a file (sha256 unless told). */
export async function hashFile(path: string, options: HashFileOptions = {}): Promise<string> {
  const algorithm = options.algorithm ?? 'sha256';
  if (options.workers && options.end === undefined && (options.size ?? 0) >= WORKER_THRESHOLD) {
    const hex = await options.workers.hashFile(path, algorithm);
    options.onBytes?.(options.size ?? 0);
    return hex;
  }
  const hash = createHash(algorithm);
  await readFileChunks(
    path,
    (chunk) => {
      hash.update(chunk);
      options.onBytes?.(chunk.length);
    },
    options,
  );
  return hash.digest('hex');
}

/** sha256 (hex) of a file's content, streamed. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  return hashFile(path, signal ? { signal } : {});
}

/** sha256 (hex) of text or bytes in memory. */
export function sha256Of(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
