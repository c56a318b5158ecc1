/**
 * Wall time of commands run natively and under runProbe (what `uniprove discover` runs), as a ratio.
 * Target: <= 1.2 for a syscall-heavy, prover-like workload (a program opening many files).
 * Usage: node --import tsx bench/discover-overhead.ts [runs]   (default 7; native and probe runs
 * alternate and the best of each is kept, since other work on the machine only ever adds time)
 *
 * Commands:
 * - python imports (primary): the real interpreter (a pyenv shim resolved through sys.executable)
 *   importing ssl, sqlite3, ctypes, json, decimal...: hundreds of opens of modules and shared
 *   objects, plus the stat storm of the import system, like a prover loading its libraries.
 * - find /usr/lib (extreme): opens every directory and stats every entry.
 * - a CPU-heavy command: the floor, where tracing should cost nothing.
 * Each is run with the default syscall set (minimal), with --probe-cpu 0 (strace and the program on
 * one CPU), and with --trace-stats (full).
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run, which } from '../src/core/exec.js';
import { type ProbeSyscalls, runProbe } from '../src/core/strace/probe.js';

const TARGET = 1.2;
const runs = Number(process.argv[2] ?? 7);

async function realPython(): Promise<string | undefined> {
  const python = await which('python3');
  if (!python) return undefined;
  const r = await run([python, '-c', 'import sys; print(sys.executable)'], { allowFailure: true });
  return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : python;
}

interface Case {
  name: string;
  argv: string[];
  primary?: boolean;
}

const cases: Case[] = [];
const python = await realPython();
if (python) {
  cases.push({
    name: 'python imports',
    primary: true,
    argv: [
      python,
      '-c',
      'import ssl, sqlite3, ctypes, json, decimal, email, http.client, xml.dom.minidom, asyncio, unittest, csv, zipfile, tarfile, hashlib, uuid, argparse',
    ],
  });
} else {
  console.log('python3 not found: the primary workload is skipped');
}
cases.push({ name: 'find /usr/lib', argv: ['find', '/usr/lib', '-name', '*.so*'] });
cases.push({
  name: 'cpu-heavy (sha256 of 256 MB of zeros)',
  argv: ['sh', '-c', 'head -c 268435456 /dev/zero | sha256sum'],
});

async function timeNative(argv: string[]): Promise<number> {
  const t = performance.now();
  await run(argv, { allowFailure: true, stdout: 'ignore', stderr: 'ignore' });
  return performance.now() - t;
}

async function timeProbe(argv: string[], syscalls: ProbeSyscalls, cpu?: number): Promise<number> {
  const probe = await runProbe({ argv, allowFailure: true, syscalls, ...(cpu === undefined ? {} : { cpu }) });
  await rm(dirname(probe.logPath), { recursive: true, force: true });
  return probe.durationMs;
}

const rows: Record<string, unknown>[] = [];
for (const c of cases) {
  let native = Number.POSITIVE_INFINITY;
  const best: Record<ProbeSyscalls | 'oneCpu', number> = {
    minimal: Number.POSITIVE_INFINITY,
    full: Number.POSITIVE_INFINITY,
    oneCpu: Number.POSITIVE_INFINITY,
  };
  await timeNative(c.argv); // warm the page cache
  for (let i = 0; i < runs; i++) {
    native = Math.min(native, await timeNative(c.argv));
    best.minimal = Math.min(best.minimal, await timeProbe(c.argv, 'minimal'));
    best.full = Math.min(best.full, await timeProbe(c.argv, 'full'));
    best.oneCpu = Math.min(best.oneCpu, await timeProbe(c.argv, 'minimal', 0));
  }
  const ratio = best.minimal / native;
  const row = {
    command: c.name,
    nativeMs: +native.toFixed(0),
    probeMs: +best.minimal.toFixed(0),
    ratio: +ratio.toFixed(2),
    probeCpu0Ms: +best.oneCpu.toFixed(0),
    probeCpu0Ratio: +(best.oneCpu / native).toFixed(2),
    traceStatsMs: +best.full.toFixed(0),
    traceStatsRatio: +(best.full / native).toFixed(2),
    target: `<= ${TARGET}: default ${ratio <= TARGET ? 'met' : 'NOT met'}, --probe-cpu 0 ${best.oneCpu / native <= TARGET ? 'met' : 'NOT met'}${c.primary ? ' (primary)' : ''}`,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
}

const find = rows.find((r) => r.command === 'find /usr/lib');
if (find && (find.ratio as number) > TARGET) {
  console.log(
    'find: it opens every directory it walks (openat, traced: each costs two ptrace stops), and those ' +
      'opens are the very calls discovery needs, so no syscall set can spare them; only the per-entry ' +
      'stats were dropped. Its ratio is the worst case (a few microseconds of work per open), not a ' +
      'prover-like one.',
  );
}
