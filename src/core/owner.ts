/**
 * Which uniprove made a thing: `<pid>.<start>`, its process id and the moment it started (clock ticks since
 * boot, field 22 of /proc/<pid>/stat), so that a pid the kernel later gives to another process is not taken for
 * it. Temporary folders carry it in their name and child processes in UNIPROVE_OWNER, inherited by everything
 * they start; what a uniprove killed hard left is then known by its owner being gone (core/leftovers.ts).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** The environment variable every program uniprove starts inherits, naming the uniprove that started it. */
export const OWNER_ENV = 'UNIPROVE_OWNER';

/** The start time in /proc/<pid>/stat's text, or undefined where it cannot be read. */
function startOf(stat: string): string | undefined {
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

let self: string | undefined;

/** This uniprove's owner token (`<pid>.<start>`; `<pid>.0` where /proc cannot tell a start). */
export function ownerToken(): string {
  if (self === undefined) {
    let start: string | undefined;
    try {
      start = startOf(readFileSync('/proc/self/stat', 'utf8'));
    } catch {
      start = undefined;
    }
    self = `${process.pid}.${start && /^\d+$/.test(start) ? start : '0'}`;
  }
  return self;
}

/** A token as ownerToken writes it: its pid and start; undefined for any other text. */
export function parseOwner(token: string): { pid: number; start: string } | undefined {
  const match = /^(\d+)\.(\d+)$/.exec(token);
  return match ? { pid: Number(match[1]), start: match[2] as string } : undefined;
}

/**
 * Whether the uniprove a token names still runs: its pid alive with the same start. Where /proc cannot be
 * read it counts as alive, so nothing is swept on a guess.
 */
export async function ownerAlive(token: string): Promise<boolean> {
  const owner = parseOwner(token);
  if (!owner) return true;
  if (token === ownerToken()) return true;
  let stat: string;
  try {
    stat = await readFile(`/proc/${owner.pid}/stat`, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  return owner.start === '0' || startOf(stat) === owner.start;
}
