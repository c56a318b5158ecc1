/**
 * Virtual time for schedulers: `sleep` registers a timer; `drive` lets every
 * pending promise settle, then jumps to the earliest timer, until the work
 * settles. A fleet of hour-long runs takes milliseconds, deterministically.
 */
import type { FleetClock } from '../../src/core/gcp/fleet/scheduler.js';

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
}

export class FakeClock implements FleetClock {
  #now = 0;
  #seq = 0;
  #timers: Timer[] = [];

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, resolve };
      this.#timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.#timers = this.#timers.filter((t) => t !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  /** Pending timers (for assertions). */
  get pending(): number {
    return this.#timers.length;
  }

  /** Run `work` to its end in virtual time; `onTick(now)` is called each time the clock jumps. */
  async drive<T>(work: Promise<T>, onTick?: (now: number) => void, maxSteps = 100_000): Promise<T> {
    let settled = false;
    const result = work.finally(() => {
      settled = true;
    });
    result.catch(() => {});
    for (let step = 0; step < maxSteps; step++) {
      await flush();
      if (settled) return result;
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers.shift();
      if (!next) {
        await flush();
        if (settled) return result;
        throw new Error(`deadlock at t=${this.#now}: no timer pending and the work has not settled`);
      }
      this.#now = Math.max(this.#now, next.at);
      next.resolve();
      onTick?.(this.#now);
    }
    throw new Error('the work did not settle within maxSteps');
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
