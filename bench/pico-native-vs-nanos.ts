/**
 * Brevis Pico's perf `bench` natively against inside Nanos: one of bench's programs proved through the whole
 * chain (RISCV, CONVERT, COMBINE, COMPRESS, EMBED, each phase verified by bench itself), natively under
 * /usr/bin/time with the recipe's environment, then through `uniprove run` of provers/pico (TCG here), itself
 * under /usr/bin/time: its CPU time is uniprove's, Ops's and QEMU's together, its peak RSS the largest of
 * them (QEMU's). Prints wall time, CPU time and peak memory of each.
 * The binary: UNIPROVE_PICO_BENCH, or the toolchain folder; the ELF: the second argument, or UNIPROVE_PICO_ELF
 * for pure-fibonacci. Needs ops, a Nanos release and QEMU for the Nanos part (bash scripts/setup.sh). Run:
 *   node --import tsx bench/pico-native-vs-nanos.ts [program] [elf] [native reps] [nanos reps]
 * (default pure-fibonacci, UNIPROVE_PICO_ELF, 1 and 1; fibonacci-300kn takes Pico's perf/bench_data/fibonacci-elf).
 * Not yet run against a real binary: the build is blocked on this project's machines (provers/pico/README.md).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findPicoBench, findPicoElf } from '../test/helpers/pico.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'bin', 'uniprove.js');
const program = process.argv[2] ?? 'pure-fibonacci';
/** Where bench reads each program's ELF, from its working directory (perf/src/common/bench_program.rs). */
const ELF_PATHS: Record<string, string> = {
  'pure-fibonacci': 'perf/bench_data/pure-fibonacci-elf',
  'fibonacci-300kn': 'perf/bench_data/fibonacci-elf',
};
const elfPath = ELF_PATHS[program];
const elf = process.argv[3] || (program === 'pure-fibonacci' ? findPicoElf() : undefined);
const nativeReps = Number(process.argv[4] ?? 1);
const nanosReps = Number(process.argv[5] ?? 1);
const bench = findPicoBench();
if (!elfPath) {
  console.error(
    `bench program ${program} is not one this script knows: ${Object.keys(ELF_PATHS).join(', ')}`,
  );
  process.exit(2);
}
if (!bench || !elf) {
  console.error('no Pico bench or ELF: set UNIPROVE_PICO_BENCH and UNIPROVE_PICO_ELF (or pass the ELF)');
  process.exit(3);
}

interface Timed {
  wallS: number;
  cpuS: number;
  maxRssKiB: number;
  /** stdout and stderr together. */
  output: string;
  stdout: string;
}

/** Run argv in cwd under GNU time; its figures come from a file of their own, not the program's stderr. */
async function timed(argv: string[], cwd: string, env: Record<string, string>): Promise<Timed> {
  const out = join(cwd, `.time-${process.pid}`);
  const r = await execa('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, ...argv], {
    cwd,
    env,
    reject: false,
    all: true,
    timeout: 6 * 3600_000,
  });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(' ')} exited ${r.exitCode}:\n${String(r.all).slice(-2000)}`);
  const [wall, user, sys, rss] = (await readFile(out, 'utf8')).trim().split(/\s+/).map(Number);
  await rm(out, { force: true });
  return {
    wallS: wall!,
    cpuS: user! + sys!,
    maxRssKiB: rss!,
    output: String(r.all),
    stdout: String(r.stdout),
  };
}

/** bench logs each phase's verify and asserts it: all five lines, or a throw. */
function checkVerified(output: string, where: string): void {
  for (const phase of ['RISCV', 'CONVERT', 'COMBINE', 'COMPRESS', 'EMBED'])
    if (!output.includes(`Verifying ${phase} proof`))
      throw new Error(`${where}: no "Verifying ${phase} proof" line:\n${output.slice(-2000)}`);
}

const gib = (kib: number) => `${(kib / 1024 / 1024).toFixed(2)} GiB`;
const figures = (t: Timed) =>
  `${t.wallS.toFixed(0)} s wall, ${t.cpuS.toFixed(0)} CPU-s, ${gib(t.maxRssKiB)} peak`;
const shipped = JSON.parse(await readFile(join(REPO, 'provers', 'pico', 'recipe.json'), 'utf8'));
const args = ['--programs', program, '--field', 'kb'];
const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-pico-'));
const keep = process.env.UNIPROVE_BENCH_KEEP === '1';
if (keep) console.log(`working in ${dir} (kept)`);
const lines: string[] = [];
try {
  // Natively: bench in a folder laid out as the guest's root, with the recipe's environment and 2 threads.
  await mkdir(join(dir, 'native', 'perf', 'bench_data'), { recursive: true });
  await copyFile(elf, join(dir, 'native', elfPath));
  for (let i = 0; i < nativeReps; i++) {
    const t = await timed([bench, ...args], join(dir, 'native'), {
      ...shipped.env,
      RAYON_NUM_THREADS: '2',
    });
    checkVerified(t.output, 'native');
    lines.push(`${program} natively: ${figures(t)}; all five phases verified`);
    console.log(lines.at(-1));
  }

  if (nanosReps > 0) {
    const recipe = join(dir, 'pico');
    await mkdir(recipe);
    await copyFile(elf, join(recipe, 'guest-elf'));
    await writeFile(
      join(recipe, 'recipe.json'),
      JSON.stringify({
        ...shipped,
        $schema: undefined,
        args,
        files: [{ host: 'guest-elf', guest: `/${elfPath}`, reason: `the ELF bench proves as ${program}` }],
        probe: { skip: true },
      }),
    );
    const env = { ...process.env, UNIPROVE_CACHE: join(dir, 'cache'), CI: '1' } as Record<string, string>;
    for (let i = 0; i < nanosReps; i++) {
      const argv = [process.execPath, CLI, 'run', recipe, '--binary', bench, '--runs-dir', join(dir, 'runs')];
      argv.push('--package-out', join(dir, 'pkg'), '--timeout', '21600', '--json', '-q');
      const t = await timed(argv, dir, env);
      const run = JSON.parse(t.stdout) as {
        accel: string;
        dir: string;
        vcpus?: { used: number };
        timings: { proverMs: number; totalMs: number };
      };
      checkVerified(await readFile(join(run.dir, 'console.log'), 'utf8'), 'inside Nanos');
      lines.push(
        `${program} inside Nanos (${run.accel}, ${run.vcpus?.used ?? '?'} vCPU): ${(run.timings.proverMs / 1000).toFixed(0)} s prover (first console line to exit), ${figures(t)} for the whole run (uniprove, ops and QEMU); all five phases verified in the guest`,
      );
      console.log(lines.at(-1));
    }
  }
  console.log(`side by side, on this machine:\n  ${lines.join('\n  ')}`);
} finally {
  if (!keep) await rm(dir, { recursive: true, force: true });
}
