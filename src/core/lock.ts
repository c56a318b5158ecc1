/**
 * A lock file that commands sharing a cache take around work two of them must not do at once (one partial
 * download, one volume name). It holds the owner's pid, so a lock left by a process that died (SIGKILL, a
 * power cut) is taken over, never waited on forever. Written by hand, not with proper-lockfile: that one judges
 * staleness by an mtime it must keep refreshing, where a pid check needs no timer.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UniproveError } from './errors.js';
import { processAlive } from './exec.js';

export interface LockOptions {
  signal?: AbortSignal | undefined;
  /** Called once when the lock is held by another live process and this one starts waiting. */
  onWait?: (holder: number) => void;
  /** Poll interval while waiting (default 100 ms). */
  pollMs?: number;
}

async function holderOf(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/**
 * Take the lock away from a dead holder: renamed aside first (one taker wins the rename), then checked to be
 * the dead one's; a lock a live process took in between is put back.
 */
async function breakStale(path: string, dead: number): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return;
  }
  const pid = await holderOf(aside);
  if (pid !== dead) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
}

/** Run `work` holding the lock file `path`, waiting while another live process holds it. */
export async function withLock<T>(
  path: string,
  work: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  let warned = false;
  let unreadableSince: number | undefined;
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await holderOf(path);
    if (holder === undefined) continue;
    if (holder === 0) {
      // Created but not yet written by its taker; left empty only by a crash between the two.
      unreadableSince ??= Date.now();
      if (Date.now() - unreadableSince > 5000) await breakStale(path, 0);
    } else if (holder !== process.pid && !processAlive(holder)) {
      await breakStale(path, holder);
      continue;
    } else {
      unreadableSince = undefined;
      if (!warned) {
        warned = true;
        options.onWait?.(holder);
      }
    }
    try {
      await sleep(options.pollMs ?? 100, undefined, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      throw new UniproveError('E_INTERRUPTED', {
        message: `interrupted while waiting for ${path}`,
        cause: error,
      });
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}
