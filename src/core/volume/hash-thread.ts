/**
 * Hashing downloads off the main thread. The main thread receives, writes and
 * copies each chunk to a worker that keeps the hash state of that file, so
 * several downloads hash on several cores while the event loop stays free.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Hasher } from './digest.js';

// Evaluated as CommonJS so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { createHash } = require('node:crypto');
const { parentPort } = require('node:worker_threads');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'init') hashes.set(m.id, createHash(m.algorithm));
  else if (m.op === 'update') hashes.get(m.id).update(m.chunk);
  else if (m.op === 'digest') {
    const h = hashes.get(m.id);
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
  } else if (m.op === 'drop') hashes.delete(m.id);
});
`;

/** A small pool of hashing threads; a file's hash stays on one thread so its chunks hash in order. */
export class HashThreads {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (hex: string) => void>();
  private nextId = 0;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /** A Hasher whose bytes are hashed on a worker thread (`node` is the node:crypto algorithm name). */
  create(node: string, format: (hex: string) => string): Hasher {
    const id = this.nextId++;
    const worker = this.workerFor(id);
    worker.postMessage({ op: 'init', id, algorithm: node });
    let done = false;
    return {
      update: (chunk) => {
        // A copy: the caller keeps writing its buffer to disk, and undici reuses its memory.
        worker.postMessage({ op: 'update', id, chunk: Uint8Array.prototype.slice.call(chunk) });
      },
      digest: () =>
        new Promise<string>((resolve) => {
          done = true;
          this.waiting.set(id, (hex) => resolve(format(hex)));
          worker.postMessage({ op: 'digest', id });
        }),
      discard: () => {
        if (done) return;
        done = true;
        worker.postMessage({ op: 'drop', id });
      },
    };
  }

  private workerFor(id: number): Worker {
    if (this.workers.length < this.size) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on('message', (m: { id: number; hex: string }) => {
        const resolve = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        resolve?.(m.hex);
      });
      this.workers.push(worker);
    }
    return this.workers[id % this.workers.length] as Worker;
  }

  /** Stop the threads; call when the downloads are over. */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}
