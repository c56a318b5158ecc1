/**
 * The prover's CPU time and peak memory under `uniprove verify`: the sandbox runs under native/rusage.c, which
 * waits for every process of the tree (bubblewrap's own init included, which bubblewrap itself never waits for)
 * and writes getrusage(RUSAGE_CHILDREN) to a file. No /usr/bin/time, no sampling of /proc.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildNative, type NativeOptions } from '../native.js';
import { memoryMiB } from '../recipe/schema.js';

/** The C source of the helper, shipped with uniprove (package.json `files`). */
export const RUSAGE_SOURCE = fileURLToPath(new URL('../../../native/rusage.c', import.meta.url));

const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror'];

/** What the prover's process tree used, from the kernel's accounting of every process that ended. */
export interface VerifyUsage {
  /** CPU time in user mode, summed over every process. */
  userMs: number;
  /** CPU time in the kernel on their behalf. */
  sysMs: number;
  /** userMs + sysMs. */
  cpuMs: number;
  /** The largest peak resident set of any one process (Linux ru_maxrss): the prover's own. */
  maxRssBytes: number;
  /** Guest memory to give it (recipe resources.memory, e.g. 768M): the peak and headroom for Nanos. */
  suggestedMemory: string;
}

/** The helper's path: from uniprove's cache, else compiled with gcc now (under rusage/<digest>/). */
export async function buildUsageHelper(options: NativeOptions): Promise<string> {
  const built = await buildNative(
    {
      source: RUSAGE_SOURCE,
      name: 'uniprove-rusage',
      folder: 'rusage',
      cflags: CFLAGS,
      purpose: "compiles the small program that measures the prover's CPU time and peak memory",
    },
    options,
  );
  return built.path;
}

// Headroom a guest needs over the prover's peak: Nanos's own memory and the page cache of the files the prover
// reads from the image. A quarter of the peak, at least this much, rounded up to a multiple of it.
const HEADROOM_MIB = 64;

/** Guest memory for a prover that peaked at `maxRssBytes`, written as a recipe writes it (768M, 2G). */
export function suggestMemory(maxRssBytes: number): string {
  const peakMiB = maxRssBytes / (1024 * 1024);
  const mib = Math.ceil((peakMiB + Math.max(HEADROOM_MIB, peakMiB / 4)) / HEADROOM_MIB) * HEADROOM_MIB;
  return mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
}

/** The helper's report; undefined when it wrote none (it was killed) or one it could not have written. */
export async function readUsage(reportPath: string): Promise<VerifyUsage | undefined> {
  const text = await readFile(reportPath, 'utf8').catch(() => undefined);
  let raw: { userUs?: unknown; sysUs?: unknown; maxRssKiB?: unknown } | undefined;
  try {
    raw = text === undefined ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
  const { userUs, sysUs, maxRssKiB } = raw ?? {};
  if (typeof userUs !== 'number' || typeof sysUs !== 'number' || typeof maxRssKiB !== 'number') {
    return undefined;
  }
  const maxRssBytes = maxRssKiB * 1024;
  return {
    userMs: userUs / 1000,
    sysMs: sysUs / 1000,
    cpuMs: (userUs + sysUs) / 1000,
    maxRssBytes,
    suggestedMemory: suggestMemory(maxRssBytes),
  };
}

/** A warning when the guest's memory (Ops RunConfig.Memory) is below the peak and its headroom. */
export function memoryWarning(
  usage: VerifyUsage,
  guestMemory: string | undefined,
): { code: string; message: string } | undefined {
  if (!guestMemory) return undefined;
  const guestMiB = memoryMiB(guestMemory);
  if (Number.isNaN(guestMiB) || guestMiB >= memoryMiB(usage.suggestedMemory)) return undefined;
  const peakMiB = usage.maxRssBytes / (1024 * 1024);
  return {
    code: 'guest-memory',
    message: `the program peaked at ${peakMiB.toFixed(0)} MiB resident here, and the guest gets ${guestMemory} (resources.memory): give it ${usage.suggestedMemory} or more (the peak, and room for Nanos and the files it reads)`,
  };
}
