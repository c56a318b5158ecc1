/**
 * Time from `uniprove run` to the prover's first console line, against `ops run` of the same
 * package on the same host, and the run's overhead on top of the prover itself.
 * Needs ops, a Nanos release, QEMU and gcc. Run: node --import tsx bench/run-vs-ops.ts [reps] [library MB]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { opsProgram } from '../src/core/ops/build.js';

/** ops as `uniprove setup` installs it: on PATH, or in ~/.ops/bin. */
const OPS = await opsProgram({});
const CLI = fileURLToPath(new URL('../bin/uniprove.js', import.meta.url));
const MARKER = 'BENCH-PROVER-FIRST-LINE';
const reps = Number(process.argv[2] ?? 5);
// Library MB in the package besides the prover: 0 for a bare static prover; a GPU prover ships hundreds
// (libcudart, libcublas...), which `ops build` writes into every image.
const libMb = Number(process.argv[3] ?? 0);

/** Spawn argv, return ms until MARKER appears on stdout or stderr, and the total ms. */
async function timeToMarker(
  argv: string[],
  cwd: string,
): Promise<{ first: number; total: number; out: string }> {
  const t0 = performance.now();
  const child = execa(argv[0] as string, argv.slice(1), {
    cwd,
    reject: false,
    env: { CI: '1' },
    timeout: 300_000,
  });
  let first = Number.NaN;
  let out = '';
  const watch = (c: Buffer) => {
    out += c.toString();
    if (Number.isNaN(first) && out.includes(MARKER)) first = performance.now() - t0;
  };
  child.stdout?.on('data', watch);
  child.stderr?.on('data', watch);
  await child;
  return { first, total: performance.now() - t0, out };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const f = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-'));
try {
  // A prover that prints its marker at once, then works for about a second.
  await writeFile(
    join(dir, 'prover.c'),
    `#include <stdio.h>\n#include <time.h>\nint main(void){printf("${MARKER}\\n");fflush(stdout);struct timespec s=${'{'}1,0${'}'};nanosleep(&s,0);printf("done\\n");return 0;}\n`,
  );
  await execa('gcc', ['-O1', '-static', '-o', join(dir, 'prover'), join(dir, 'prover.c')]);
  const { mkdir } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  await mkdir(join(dir, 'lib'));
  for (let i = 0; i < libMb / 16; i++)
    await writeFile(join(dir, 'lib', `libbench${i}.so`), randomBytes(16 << 20));
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'bench',
      binary: './prover',
      probe: { skip: true },
      ...(libMb > 0 ? { dirs: [{ host: 'lib', guest: '/usr/lib/bench' }] } : {}),
      resources: { memory: '512M', cpus: 1 },
    }),
  );
  await execa(process.execPath, [CLI, 'package', join(dir, 'recipe.json'), '--out', join(dir, 'pkg')], {
    cwd: dir,
  });
  const ours: number[] = [];
  const oursCold: number[] = [];
  const theirs: number[] = [];
  const overhead: number[] = [];
  const parts: { build: number[]; boot: number[]; prover: number[]; before: number[] } = {
    build: [],
    boot: [],
    prover: [],
    before: [],
  };
  /** A uniprove run, its console streamed live (as `ops run` streams it) so both are timed the same way. */
  let runNo = 0;
  const ourRun = async (extra: string[]) => {
    const out = join(dir, 'runs', `r${runNo++}`);
    const u = await timeToMarker(
      [
        process.execPath,
        CLI,
        'run',
        join(dir, 'pkg'),
        '--out',
        out,
        '--runs-dir',
        join(dir, 'runs'),
        ...extra,
      ],
      dir,
    );
    const record = JSON.parse(await readFile(join(out, 'record.json'), 'utf8')) as {
      timings: {
        imageBuildMs: number;
        bootMs: number;
        proverMs: number;
        totalMs: number;
        firstConsoleLineMs: number;
      };
    };
    if (Number.isNaN(u.first)) throw new Error(`uniprove run printed no ${MARKER}:\n${u.out.slice(-2000)}`);
    return { u, record, first: u.first };
  };
  // Warm the image cache once (the first run of a package builds, as ops run always does).
  await ourRun([]);
  for (let i = 0; i < reps; i++) {
    oursCold.push((await ourRun(['--no-image-cache'])).first);
    const { u, record, first } = await ourRun([]);
    ours.push(first);
    overhead.push(u.total - record.timings.proverMs);
    parts.build.push(record.timings.imageBuildMs);
    parts.boot.push(record.timings.bootMs);
    parts.before.push(first - record.timings.bootMs);
    parts.prover.push(record.timings.proverMs);
    const o = await timeToMarker(
      [OPS, 'run', 'prover', '-c', 'local.json', '--accel=false', '-i', 'uniprove-bench-ops'],
      join(dir, 'pkg'),
    );
    theirs.push(o.first);
  }
  console.log(
    `reps: ${reps} (median), TCG, a static prover that prints a line then sleeps 1 s, ${libMb} MB of libraries in the package`,
  );
  console.log(
    `time to the prover's first console line: uniprove run ${f(median(ours))} (image cached), ${f(median(oursCold))} (--no-image-cache: ops build every time); ops run ${f(median(theirs))}`,
  );
  console.log(
    `  uniprove run (cached) breakdown: start to QEMU started ${f(median(parts.before))} (of which the image: cache lookup, and a copy when one is needed, ${f(median(parts.build))}), QEMU start to first line ${f(median(parts.boot))}`,
  );
  console.log(
    `prover time (first line to exit) ${f(median(parts.prover))}; uniprove's overhead on top (wall minus prover) ${f(median(overhead))}`,
  );
} finally {
  await rm(join(process.env.HOME ?? '/root', '.ops', 'images', 'uniprove-bench-ops'), { force: true });
  await rm(dir, { recursive: true, force: true });
}
