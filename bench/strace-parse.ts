/**
 * Parse speed and peak memory of parseStraceLog on a generated strace -f log
 * (2000 pids, unfinished/resumed pairs across pids, escapes, failed dlopen probes).
 * Usage: node --import tsx bench/strace-parse.ts [MB] [runs]   (or BENCH_MB=...; default 512 MB, 3 runs)
 *
 * The log is written first, then each parse runs in its own child process (plain
 * node on an esbuild bundle of the parser), so the peak RSS printed
 * (process.resourceUsage().maxRSS) is the parser's, not the generator's or tsx's. The best speed of the runs is kept (the machine may be busy) and the
 * largest peak RSS. The log is written to a temp folder and deleted afterwards
 * (BENCH_KEEP=1 keeps it).
 * Targets: >= 150 MB/s, peak RSS < 150 MB whatever the log size.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { run } from '../src/core/exec.js';

const TARGET_MB_PER_S = 150;
const TARGET_RSS_MB = 150;

/**
 * The child: parse one log, print one JSON line. It runs as plain JS on a bundle of
 * the parser (esbuild, which tsx brings) so that tsx's own ~50 MB is not counted;
 * without esbuild it runs under tsx and says so.
 */
const CHILD = `
import { stat } from 'node:fs/promises';
const { parseStraceLog } = await import(process.argv[2]);
const logPath = process.argv[3];
const size = (await stat(logPath)).size;
const rssBefore = process.resourceUsage().maxRSS;
const started = performance.now();
const cpuStart = process.cpuUsage();
const result = await parseStraceLog(logPath, { cwd: '/home/prover/work' });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
console.log(JSON.stringify({
  bytes: size,
  seconds,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  peakRssMB: (process.resourceUsage().maxRSS * 1024) / 1e6,
  rssBeforeParseMB: (rssBefore * 1024) / 1e6,
  lines: result.stats.lines,
  pids: result.stats.pids,
  opened: result.opened.length,
  missing: result.missing.length,
  warnings: result.warnings.map((w) => w.kind + ':' + w.count),
}));
`;

const targetMb = Number(process.argv[2] ?? process.env.BENCH_MB ?? 512);
const runs = Number(process.argv[3] ?? 3);
const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-'));
const logPath = join(dir, 'strace.log');

/** A small deterministic PRNG so runs are comparable. */
let seed = 42;
const rand = (n: number) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

const libs = Array.from(
  { length: 400 },
  (_, i) => `lib${['ssl', 'crypto', 'z', 'gmp', 'ocl', 'cuda', 'hwloc'][i % 7]}${i}.so.${i % 5}`,
);
const dirs = [
  '/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3',
  '/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2',
  '/lib/x86_64-linux-gnu/tls/x86_64',
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/local/lib',
];
const data = Array.from(
  { length: 3000 },
  (_, i) =>
    `/var/tmp/filecoin-proof-parameters/v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-${i.toString(16)}.params`,
);

function line(pid: number): string {
  const r = rand(100);
  const lib = libs[rand(libs.length)]!;
  if (r < 40) {
    const d = dirs[rand(dirs.length)]!;
    return `${pid} openat(AT_FDCWD</home/prover/work>, "${d}/${lib}", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n`;
  }
  if (r < 70) {
    return `${pid} openat(AT_FDCWD</home/prover/work>, "/usr/lib/x86_64-linux-gnu/${lib}", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/${lib}>\n`;
  }
  if (r < 78) {
    const p = data[rand(data.length)]!;
    return `${pid} openat(AT_FDCWD</home/prover/work>, "${p}", O_RDONLY) = 5<${p}>\n`;
  }
  if (r < 80) {
    // unfinished/resumed pair, with another pid's line in between
    const other = pid + 1;
    return (
      `${pid} openat(AT_FDCWD</home/prover/work>, "cache/\\"quoted\\" \\303\\251t\\303\\251/${lib}", O_RDONLY|O_CLOEXEC <unfinished ...>\n` +
      `${other} newfstatat(AT_FDCWD</home/prover/work>, "/etc/ld.so.cache", {st_mode=S_IFREG|0644, st_size=45687, ...}, 0) = 0\n` +
      `${pid} <... openat resumed>) = 7</home/prover/work/cache/"quoted" \\303\\251t\\303\\251/${lib}>\n`
    );
  }
  if (r < 88) {
    return `${pid} newfstatat(AT_FDCWD</home/prover/work>, "/usr/share/zoneinfo/Etc/UTC${rand(50)}", 0x7ffd1c9e8c70, 0) = -1 ENOENT (No such file or directory)\n`;
  }
  if (r < 93) {
    return `${pid} access("/etc/ld.so.preload", R_OK)      = -1 ENOENT (No such file or directory)\n`;
  }
  if (r < 95) {
    return `${pid} statx(AT_FDCWD</home/prover/work>, "/var/tmp/filecoin-proof-parameters", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFDIR|0755, stx_size=4096, ...}) = 0\n`;
  }
  if (r < 97) {
    return `${pid} execve("/usr/local/bin/benchy", ["benchy", "winning-post", "--size", "2KiB"], 0x7ffe6b1b8e98 /* 39 vars */) = 0\n`;
  }
  if (r < 98) return `${pid} chdir("/home/prover/work")       = 0\n`;
  if (r < 99) return `${pid} readlink("/proc/self/exe", "/usr/local/bin/benchy", 4096) = 21\n`;
  return `${pid} clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f1c5e5fe990, parent_tid=0x7f1c5e5fe990, exit_signal=0, stack=0x7f1c5ddfe000, stack_size=0x7ff980, tls=0x7f1c5e5fe6c0} => {parent_tid=[${pid + 2}]}, 88) = ${pid + 2}\n`;
}

const genStart = performance.now();
const out = createWriteStream(logPath, { highWaterMark: 1 << 22 });
const target = targetMb * 1e6;
let written = 0;
while (written < target) {
  let block = '';
  while (block.length < 1 << 20) block += line(10000 + rand(2000));
  written += block.length;
  if (!out.write(block)) await once(out, 'drain');
}
out.end();
await once(out, 'finish');
const size = (await stat(logPath)).size;
console.log(
  `generated ${(size / 1e6).toFixed(0)} MB in ${((performance.now() - genStart) / 1000).toFixed(1)} s`,
);

interface ChildResult {
  bytes: number;
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  rssBeforeParseMB: number;
  lines: number;
  pids: number;
  opened: number;
  missing: number;
  warnings: string[];
}

try {
  const childPath = join(dir, 'child.mjs');
  await writeFile(childPath, CHILD);
  const parserTs = fileURLToPath(new URL('../src/core/strace/parse.ts', import.meta.url));
  let childArgv: string[];
  try {
    const esbuild = await import('esbuild');
    const bundle = join(dir, 'parse.mjs');
    await esbuild.build({
      entryPoints: [parserTs],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: bundle,
      logLevel: 'warning',
    });
    childArgv = [process.execPath, childPath, pathToFileURL(bundle).href];
  } catch {
    console.log(
      'esbuild not found: the parse runs under tsx, whose own memory (~50 MB) counts in its peak RSS',
    );
    childArgv = [process.execPath, '--import', 'tsx', childPath, pathToFileURL(parserTs).href];
  }
  const results: ChildResult[] = [];
  for (let i = 0; i < runs; i++) {
    const child = await run([...childArgv, logPath]);
    const r = JSON.parse(child.stdout.trim().split('\n').pop() as string) as ChildResult;
    results.push(r);
    console.log(
      `run ${i + 1}: ${(r.bytes / 1e6 / r.seconds).toFixed(1)} MB/s wall (${(r.bytes / 1e6 / r.cpuSeconds).toFixed(1)} MB/s of CPU time), peak RSS ${r.peakRssMB.toFixed(1)} MB`,
    );
  }
  const best = results.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const mbPerSecond = best.bytes / 1e6 / best.seconds;
  const peakRssMB = Math.max(...results.map((r) => r.peakRssMB));
  console.log(
    JSON.stringify(
      {
        mb: +(best.bytes / 1e6).toFixed(1),
        runs,
        bestSeconds: +best.seconds.toFixed(2),
        mbPerSecond: +mbPerSecond.toFixed(1),
        cpuMbPerSecond: +Math.max(...results.map((r) => r.bytes / 1e6 / r.cpuSeconds)).toFixed(1),
        peakRssMB: +peakRssMB.toFixed(1),
        rssBeforeParseMB: +best.rssBeforeParseMB.toFixed(1),
        lines: best.lines,
        pids: best.pids,
        opened: best.opened,
        missing: best.missing,
        warnings: best.warnings,
        targets: {
          mbPerSecond: `>= ${TARGET_MB_PER_S}: ${mbPerSecond >= TARGET_MB_PER_S ? 'met' : 'NOT met'}`,
          peakRssMB: `< ${TARGET_RSS_MB}: ${peakRssMB < TARGET_RSS_MB ? 'met' : 'NOT met'}`,
        },
      },
      null,
      2,
    ),
  );
} finally {
  if (!process.env.BENCH_KEEP) await rm(dir, { recursive: true, force: true });
  else console.log(logPath);
}
