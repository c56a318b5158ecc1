/**
 * Hashing on worker threads, for the two places uniprove hashes many bytes:
 * the lock of a package (sha256 of whole files) and parameter downloads
 * (BLAKE2b or sha256 of files as they are written). A worker reads the bytes
 * itself, with synchronous reads into one reused buffer (it has nothing else to
 * do meanwhile), so the main thread never copies or sends file contents: it
 * names a file, and for a download each byte range once it is on disk. The
 * digest then covers the bytes as written, not only as received.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

// Evaluated as CommonJS: no file to find, so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { parentPort } = require('node:worker_threads');
const buffer = Buffer.allocUnsafe(8 << 20);
const files = new Map();
const close = (f) => {
  if (f.fd === undefined) return;
  try { closeSync(f.fd); } catch {}
  f.fd = undefined;
};
const message = (e) => String((e && e.message) || e);
parentPort.on('message', (m) => {
  const f = files.get(m.id);
  if (m.op === 'open') {
    const entry = { hash: undefined, fd: undefined, error: undefined };
    try {
      entry.hash = createHash(m.algorithm);
      entry.fd = openSync(m.path, 'r');
    } catch (e) { entry.error = message(e); }
    files.set(m.id, entry);
  } else if (m.op === 'range') {
    // length -1: to the end of the file.
    if (!f || f.error) return;
    try {
      let position = m.position;
      let left = m.length < 0 ? Infinity : m.length;
      while (left > 0) {
        const n = readSync(f.fd, buffer, 0, Math.min(left, buffer.length), position);
        if (n === 0) {
          if (m.length < 0) break;
          throw new Error('the file ended at byte ' + position + ' while hashing it');
        }
        f.hash.update(buffer.subarray(0, n));
        position += n;
        left -= n;
      }
    } catch (e) { f.error = message(e); }
  } else if (m.op === 'digest') {
    files.delete(m.id);
    if (!f) return parentPort.postMessage({ id: m.id, error: 'unknown hash ' + m.id });
    close(f);
    parentPort.postMessage(f.error ? { id: m.id, error: f.error } : { id: m.id, hex: f.hash.digest('hex') });
  } else if (m.op === 'drop') {
    files.delete(m.id);
    if (f) close(f);
  }
});
`;

/** A hash fed with the byte ranges of a file as they are written. */
export interface WrittenFileHash {
  /** Bytes [position, position + length) are on disk now; they must not change afterwards. */
  written(position: number, length: number): void;
  /** The hex digest of every range given, in order (once). */
  digest(): Promise<string>;
  /** Forget it without a digest. */
  discard(): void;
}

/** A pool of hashing threads (default: one per core, at most 4); a file's hash stays on one thread. */
export class HashWorkers {
  private readonly workers: { worker: Worker; open: number }[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (hex: string) => void; reject: (e: Error) => void; slot: { open: number } }
  >();
  private readonly idleWaiters: (() => void)[] = [];
  private nextId = 0;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /**
   * The digest (hex) of a whole file. It waits for an idle thread, so that a small file is never
   * queued behind a large one while another thread has nothing to do.
   */
  async hashFile(path: string, algorithm = 'sha256'): Promise<string> {
    while (!this.workers.some((w) => w.open === 0) && this.workers.length >= this.size) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    const h = this.start(path, algorithm);
    h.written(0, -1);
    return h.digest();
  }

  /** A hash of the file at `path` that is being written: see WrittenFileHash. */
  hashWritten(path: string, algorithm: string): WrittenFileHash {
    return this.start(path, algorithm);
  }

  private start(path: string, algorithm: string): WrittenFileHash {
    const id = this.nextId++;
    const slot = this.leastBusy();
    slot.open++;
    slot.worker.postMessage({ op: 'open', id, algorithm, path });
    let done = false;
    const finish = () => {
      if (done) return false;
      done = true;
      return true;
    };
    return {
      written: (position, length) => {
        if (length !== 0 && !done) slot.worker.postMessage({ op: 'range', id, position, length });
      },
      digest: () =>
        new Promise<string>((resolve, reject) => {
          if (!finish()) {
            reject(new Error('digest() called twice, or after discard()'));
            return;
          }
          this.waiting.set(id, { resolve, reject, slot });
          slot.worker.postMessage({ op: 'digest', id });
        }),
      discard: () => {
        if (!finish()) return;
        this.release(slot);
        slot.worker.postMessage({ op: 'drop', id });
      },
    };
  }

  private leastBusy(): { worker: Worker; open: number } {
    const idle = this.workers.find((w) => w.open === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) {
      const slot = { worker: new Worker(WORKER_SOURCE, { eval: true }), open: 0 };
      slot.worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
        const waiter = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (!waiter) return;
        this.release(waiter.slot);
        if (m.error !== undefined) waiter.reject(new Error(`hashing failed: ${m.error}`));
        else waiter.resolve(m.hex as string);
      });
      slot.worker.on('error', (error) => {
        for (const [id, waiter] of this.waiting) {
          if (waiter.slot !== slot) continue;
          this.waiting.delete(id);
          this.release(slot);
          waiter.reject(error);
        }
      });
      this.workers.push(slot);
      return slot;
    }
    return this.workers.reduce((a, b) => (b.open < a.open ? b : a));
  }

  private release(slot: { open: number }): void {
    slot.open--;
    if (slot.open === 0) this.idleWaiters.shift()?.();
  }

  /** Stop the threads; call when the hashing is over. */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }
}
