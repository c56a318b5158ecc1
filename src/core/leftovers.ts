/**
 * What a uniprove killed hard (SIGKILL, the OOM killer, a closed session's SIGKILL) leaves behind besides its
 * run records (run/sweep.ts): its temporary folders, and the processes that did not die with it. Programs it
 * starts directly die with it (exec.ts: a parent-death signal), but not what they start in turn: the program
 * strace traces is let go and runs on when strace dies, and `ops run`'s QEMU outlives ops. Each carries its
 * uniprove's owner token (core/owner.ts), in its folder's name or in UNIPROVE_OWNER; the next uniprove ends and
 * removes those whose owner is gone, and says what it swept.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killProcess } from './exec.js';
import { OWNER_ENV, ownerAlive } from './owner.js';

/** A temporary folder uniprove makes (fs.ts makeTempDir): `uniprove-<what>-<pid>.<start>-XXXXXX`. */
const TEMP_DIR = /^uniprove-[a-z][a-z-]*?-(\d+\.\d+)-[A-Za-z0-9]{6}$/;

export interface SweptLeftovers {
  /** Processes ended: their pid, command and the uniprove that started them. */
  processes: { pid: number; command: string; owner: string }[];
  /** Temporary folders removed. */
  folders: string[];
}

/** The owner token in a process's environment, or undefined (none, or not ours to read). */
async function ownerOfProcess(pid: string): Promise<string | undefined> {
  const environ = await readFile(`/proc/${pid}/environ`).catch(() => undefined);
  if (!environ) return undefined;
  const key = Buffer.from(`${OWNER_ENV}=`);
  let at = environ.indexOf(key);
  // Only at the start of a variable (the start of the block, or after a NUL).
  while (at > 0 && environ[at - 1] !== 0) at = environ.indexOf(key, at + 1);
  if (at < 0) return undefined;
  const end = environ.indexOf(0, at);
  return environ.subarray(at + key.length, end < 0 ? environ.length : end).toString('latin1');
}

/** The processes marked by a uniprove that is gone, ended with SIGKILL (they were meant to die with it). */
async function sweepProcesses(): Promise<SweptLeftovers['processes']> {
  const names = await readdir('/proc').catch(() => [] as string[]);
  const found = await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid)
      .map(async (pid) => {
        const owner = await ownerOfProcess(pid);
        if (owner === undefined || (await ownerAlive(owner))) return undefined;
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        return { pid: Number(pid), command: cmdline.split('\0').filter(Boolean).join(' '), owner };
      }),
  );
  const orphans = found.filter((p) => p !== undefined);
  for (const p of orphans) killProcess(p.pid);
  return orphans;
}

/** The temporary folders of a uniprove that is gone, removed. */
async function sweepFolders(root: string): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const removed = await Promise.all(
    names.map(async (name) => {
      const owner = TEMP_DIR.exec(name)?.[1];
      if (owner === undefined || (await ownerAlive(owner))) return undefined;
      const path = join(root, name);
      return rm(path, { recursive: true, force: true }).then(
        () => path,
        () => undefined,
      );
    }),
  );
  return removed.filter((p) => p !== undefined);
}

/**
 * End the processes and remove the temporary folders that a uniprove no longer running left. Nothing of a live
 * uniprove is touched: each is known by its pid and its start time.
 */
export async function sweepLeftovers(options: { tmpDir?: string } = {}): Promise<SweptLeftovers> {
  // Processes first: a swept tracee may still be writing into its temporary folder.
  const processes = await sweepProcesses();
  const folders = await sweepFolders(options.tmpDir ?? tmpdir());
  return { processes, folders };
}
