/**
 * sha256 of many files on every core: hashing is the cost of packaging
 * (the bytes themselves are hardlinked), and one thread hashes ~1.7 GB/s.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Large files go to worker threads; small ones are cheaper to hash in place. */
export const WORKER_THRESHOLD = 4 << 20;

export interface HashPool {
  hash(path: string): Promise<string>;
  close(): Promise<void>;
}

// The worker's body, evaluated as CommonJS: no file to find, so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { parentPort } = require('node:worker_threads');
// Synchronous reads into one reused buffer: a worker has nothing else to do while it hashes.
const buffer = Buffer.allocUnsafe(8 << 20);
parentPort.on('message', (job) => {
  let fd;
  try {
    fd = openSync(job.path, 'r');
    const hash = createHash('sha256');
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
    }
    parentPort.postMessage({ id: job.id, sha256: hash.digest('hex') });
  } catch (error) {
    parentPort.postMessage({ id: job.id, error: String((error && error.message) || error) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

/** A pool of `size` worker threads (default: the number of cores, at most 4). */
export function createHashPool(size = Math.min(4, availableParallelism())): HashPool {
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const queue: { path: string; resolve: (v: string) => void; reject: (e: Error) => void }[] = [];
  const pending = new Map<
    number,
    { resolve: (v: string) => void; reject: (e: Error) => void; worker: Worker }
  >();
  let nextId = 0;
  const dispatch = () => {
    while (idle.length && queue.length) {
      const worker = idle.pop() as Worker;
      const job = queue.shift() as (typeof queue)[number];
      const id = nextId++;
      pending.set(id, { resolve: job.resolve, reject: job.reject, worker });
      worker.postMessage({ id, path: job.path });
    }
  };
  const spawn = () => {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on('message', (msg: { id: number; sha256?: string; error?: string }) => {
      const job = pending.get(msg.id);
      if (!job) return;
      pending.delete(msg.id);
      if (msg.sha256) job.resolve(msg.sha256);
      else job.reject(new Error(msg.error ?? 'hash worker failed'));
      idle.push(worker);
      dispatch();
    });
    worker.on('error', (error) => {
      for (const [id, job] of pending) {
        if (job.worker !== worker) continue;
        pending.delete(id);
        job.reject(error);
      }
    });
    workers.push(worker);
    idle.push(worker);
  };
  return {
    hash(path) {
      if (workers.length < size && idle.length === 0) spawn();
      return new Promise((resolve, reject) => {
        queue.push({ path, resolve, reject });
        dispatch();
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
