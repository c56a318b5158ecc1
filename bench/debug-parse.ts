/**
 * Speed and memory of `uniprove debug` on a large Nanos trace log.
 *
 * Generates a log (default 1 GiB) from the line shapes of a real
 * `ops run --trace` console (test/fixtures/nanos): debugsyscalls lines with
 * varied addresses, indented kernel trace lines, unfinished/resumed pairs,
 * library searches that succeed after failed probes, program output; one real
 * miss at the end. Then diagnoses it in a fresh process and prints MB/s and
 * peak RSS. Targets: >= 150 MB/s, < 150 MB.
 *
 *   node --import tsx bench/debug-parse.ts [--size-mb 1024] [--keep]
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);

if (args[0] === '--parse') {
  // The built code when there is one (what users run); the sources through tsx otherwise.
  const built = new URL('../dist/core/diagnose/index.js', import.meta.url);
  const { diagnoseLogs, locateNothing } = (await import(
    existsSync(built) ? built.href : '../src/core/diagnose/index.js'
  )) as typeof import('../src/core/diagnose/index.js');
  const file = args[1]!;
  const started = performance.now();
  const result = await diagnoseLogs({ logs: [file], locate: locateNothing });
  const seconds = (performance.now() - started) / 1000;
  const { bytes, lines } = result.logs[0]!;
  process.stdout.write(
    `${JSON.stringify({
      bytes,
      lines,
      seconds,
      maxRssKiB: process.resourceUsage().maxRSS,
      findings: result.findings.map((f) => `${f.severity} ${f.kind} ${f.name}`),
    })}\n`,
  );
  process.exit(0);
}

const sizeMb = Number(args[args.indexOf('--size-mb') + 1] ?? 0) || 1024;
const keep = args.includes('--keep');
const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-'));
const file = join(dir, 'trace.console.log');

let seq = 0x1000;
const hex = () => {
  seq = (seq * 1103515245 + 12345) >>> 0;
  return seq.toString(16).padStart(12, '0');
};

/** One block of console lines, as `ops run --trace` prints them for a prover at work. */
function block(i: number): string {
  const lib = `libfield${i % 97}.so`;
  return [
    `[2] mmap(0x0000000000000000, 1974096, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x${hex()}`,
    '    2    fd 3: file-backed (regular)',
    `    2    associated with cache node 0xffffc00000a0${hex().slice(0, 4)} @ offset 0x26000`,
    `    2 vmap_remove_intersection: q [0x${hex()} 0x${hex()}), r [0x${hex()} 0x${hex()})`,
    `[2] mmap(0x0000${hex()}, 1400832, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 155648) = 0x${hex()}`,
    `    2 file_read: f 0xffffc000001768f8, dest 0x00000000${hex().slice(0, 8)}, offset 0 (file), length 832, file length 1926232`,
    '    2 sleep uninterruptible',
    `[2] read(3, 0x00000000${hex().slice(0, 8)}, 832 <unfinished ...>`,
    `    2 thread_wakeup: 2->2 blocked_on uninterruptible, RIP=0x${hex()}`,
    '[2] <... read resumed>) = 832',
    `[2] openat(-100, "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/${lib}", 0x80000, 0x0) = -ENOENT`,
    `[2] newfstatat(-100, "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3", 0x00000000ffdd32a0, 0) = -ENOENT`,
    `[2] openat(-100, "/lib/x86_64-linux-gnu/${lib}", 0x80000, 0x0) = 3`,
    `[2] newfstatat(3, "", [{st_ino=0xffffbcc000000200, st_mode=0x81ff, st_size=46471}], 4096) = 0`,
    `[3] futex(0x0000${hex()}, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>`,
    `[2] write(1, 0x00000000009e82a0, 47) = 47`,
    `proving: partition ${i % 10} sector ${i} layer ${i % 11} of 11, ${(i % 100) + 1}% done`,
    '[3] <... futex resumed>) = 0',
    `[2] munmap(0x0000${hex()}, 46471) = 0`,
    `[2] close(3) = 0`,
    '',
  ].join('\n');
}

const target = sizeMb * 1024 * 1024;
const genStart = performance.now();
const out = createWriteStream(file, { highWaterMark: 8 * 1024 * 1024 });
out.write('[0.590352] NET: no network interface found\n');
let written = 0;
let i = 0;
while (written < target) {
  let batch = '';
  while (batch.length < 4 * 1024 * 1024) batch += block(i++);
  written += batch.length;
  if (!out.write(batch)) await new Promise<void>((r) => out.once('drain', () => r()));
}
out.end(
  [
    '[2] openat(-100, "/lib/x86_64-linux-gnu/libzkplug.so", 0x80000, 0x0) = -ENOENT',
    '[2] openat(-100, "/usr/lib/libzkplug.so", 0x80000, 0x0) = -ENOENT',
    'prover: dlopen error: libzkplug.so: cannot open shared object file: No such file or directory',
    '',
  ].join('\n'),
);
await new Promise<void>((r) => out.once('finish', () => r()));
const genSeconds = (performance.now() - genStart) / 1000;
const size = (await stat(file)).size;

const self = fileURLToPath(import.meta.url);
const raw = execFileSync(process.execPath, ['--import', 'tsx', self, '--parse', file], { encoding: 'utf8' });
// tsx itself adds about 35 MiB to the child's RSS (node alone starts at about 40 MiB).
const r = JSON.parse(raw.trim().split('\n').pop()!) as {
  bytes: number;
  lines: number;
  seconds: number;
  maxRssKiB: number;
  findings: string[];
};
const mbps = r.bytes / 1e6 / r.seconds;
const rssMb = r.maxRssKiB / 1024;
console.log(
  `log: ${(size / 1024 / 1024).toFixed(0)} MiB, ${r.lines} lines (generated in ${genSeconds.toFixed(1)} s)`,
);
console.log(`parse+diagnose: ${r.seconds.toFixed(2)} s, ${mbps.toFixed(0)} MB/s (target >= 150)`);
console.log(`peak RSS: ${rssMb.toFixed(0)} MiB (target < 150, includes node + tsx)`);
console.log(`findings: ${r.findings.join('; ')}`);
if (keep) console.log(`kept ${file}`);
else await rm(dir, { recursive: true, force: true });
