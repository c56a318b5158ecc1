/**
 * Bounded concurrency, one way everywhere: `mapLimit` runs items at most N at once (packaging's copies and
 * digests, parameter downloads, parallel runs, a fleet's image imports); `oneAtATime` makes a lock that runs its
 * tasks in turn (a fleet's `ops build`s); `settleAll` waits for every task before it throws. The fleet's scheduler
 * (gcp/fleet/scheduler.ts) adds retries, zones and capacity on top; everything else comes here.
 */

/** How mapLimit goes on: after a failure (default: nothing new starts) and once a signal aborts. */
export interface MapLimitOptions {
  /** No item starts after this aborts; the ones running finish (each sees the signal itself). */
  signal?: AbortSignal | undefined;
}

/**
 * Each item through `fn`, at most `limit` at once, results in the items' order. After a failure no new item
 * starts, and the promise settles only once the running ones have: a caller that cleans up on failure (removes a
 * staging folder) never races a write still under way. Items that never started (after a failure or an abort)
 * have no result.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  options: MapLimitOptions = {},
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && !options.signal?.aborted && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await settleAll(Array.from({ length: items.length === 0 ? 0 : workers }, worker));
  return results;
}

/** Wait for every promise to settle, then throw the first rejection (in the order given), if any. */
export async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** A lock: each task given to it runs after the one before has settled, whatever that one did. */
export function oneAtATime(): <X>(task: () => Promise<X>) => Promise<X> {
  let chain: Promise<unknown> = Promise.resolve();
  return <X>(task: () => Promise<X>): Promise<X> => {
    const next = chain.then(task, task);
    chain = next.catch(() => {});
    return next;
  };
}
