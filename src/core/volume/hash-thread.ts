/**
 * Hashing downloads off the main thread. The main thread receives and writes;
 * after each write it tells a worker which byte range of the partial file is
 * now on disk, and the worker reads that range back (from the page cache) and
 * hashes it. The main thread never copies or sends the bytes themselves, so
 * several downloads hash on several cores while the event loop only receives;
 * and the digest covers the bytes as written, not only as received.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Hasher } from './digest.js';

// Evaluated as CommonJS so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { parentPort } = require('node:worker_threads');
const buffer = Buffer.allocUnsafe(1 << 20);
const files = new Map();
const close = (f) => { if (f.fd !== undefined) { try { closeSync(f.fd); } catch {} f.fd = undefined; } };
parentPort.on('message', (m) => {
  const f = files.get(m.id);
  if (m.op === 'open') {
    const entry = { hash: createHash(m.algorithm), fd: undefined, error: undefined };
    try { entry.fd = openSync(m.path, 'r'); } catch (e) { entry.error = String(e && e.message || e); }
    files.set(m.id, entry);
  } else if (m.op === 'range') {
    if (!f || f.error) return;
    try {
      let position = m.position;
      let left = m.length;
      while (left > 0) {
        const n = readSync(f.fd, buffer, 0, Math.min(left, buffer.length), position);
        if (n === 0) throw new Error('the file ended at byte ' + position + ' while hashing it');
        f.hash.update(buffer.subarray(0, n));
        position += n;
        left -= n;
      }
    } catch (e) { f.error = String(e && e.message || e); }
  } else if (m.op === 'digest') {
    files.delete(m.id);
    close(f);
    parentPort.postMessage(f.error ? { id: m.id, error: f.error } : { id: m.id, hex: f.hash.digest('hex') });
  } else if (m.op === 'drop') {
    files.delete(m.id);
    if (f) close(f);
  }
});
`;

/** A small pool of hashing threads; a file's hash stays on one thread so its ranges hash in order. */
export class HashThreads {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (hex: string) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /**
   * A Hasher of the file at `path` whose bytes are read back and hashed on a worker thread
   * (`node` is the node:crypto algorithm name). Feed it with `written(position, length)` once
   * those bytes are on disk; the file must not change under a range already given.
   */
  create(node: string, format: (hex: string) => string, path: string): Hasher {
    const id = this.nextId++;
    const worker = this.workerFor(id);
    worker.postMessage({ op: 'open', id, algorithm: node, path });
    let done = false;
    return {
      update: () => {
        throw new Error('a hashing-thread hasher reads its file: call written(position, length)');
      },
      written: (position, length) => {
        if (length > 0) worker.postMessage({ op: 'range', id, position, length });
      },
      digest: () =>
        new Promise<string>((resolve, reject) => {
          done = true;
          this.waiting.set(id, { resolve: (hex) => resolve(format(hex)), reject });
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
      worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
        const waiter = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (m.error !== undefined) waiter?.reject(new Error(`hashing failed: ${m.error}`));
        else waiter?.resolve(m.hex as string);
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
