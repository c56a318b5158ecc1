/**
 * Gevulot's guide prover, natively against inside Nanos: rust-fil-proofs' `benchy winning-post --size 2KiB
 * --fake` run on the host, then through `uniprove run` with the 2KiB parameters as an Ops volume at /tmp.
 * benchy and its parameters: UNIPROVE_BENCHY and UNIPROVE_BENCHY_PARAMS, or UNIPROVE_TOOLCHAIN.
 * Needs ops, a Nanos release and QEMU (bash scripts/setup.sh). Run:
 *   UNIPROVE_TOOLCHAIN=../shared/toolchain node --import tsx bench/benchy-native-vs-nanos.ts [native reps] [nanos reps]
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { benchyRecipeWithLocalParams, findBenchy, findBenchyParams } from '../test/helpers/benchy.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'bin', 'uniprove.js');
const nativeReps = Number(process.argv[2] ?? 3);
const nanosReps = Number(process.argv[3] ?? 2);
const ARGS = ['winning-post', '--size', '2KiB', '--fake'];

const benchy = findBenchy();
const params = findBenchyParams();
if (!benchy || !params) {
  console.error(
    'no benchy or no 2KiB parameters: set UNIPROVE_TOOLCHAIN (or UNIPROVE_BENCHY and UNIPROVE_BENCHY_PARAMS)',
  );
  process.exit(3);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-benchy-'));
try {
  // Natively: the parameters in a folder of their own, replicas under TMPDIR, as the guest has them at /tmp.
  const native: number[] = [];
  for (let i = 0; i < nativeReps; i++) {
    const tmp = join(dir, `native-${i}`);
    await cp(params, tmp, { recursive: true });
    const t0 = performance.now();
    const r = await execa(benchy, ARGS, {
      cwd: tmp,
      env: {
        FIL_PROOFS_PARAMETER_CACHE: `${tmp}/`,
        FIL_PROOFS_PARENT_CACHE: join(tmp, 'filecoin-parents'),
        TMPDIR: tmp,
        BELLMAN_NO_GPU: '1',
        RUST_LOG: 'info',
      },
      reject: false,
      all: true,
    });
    if (r.exitCode !== 0)
      throw new Error(`native benchy exited ${r.exitCode}:\n${String(r.all).slice(-2000)}`);
    native.push(performance.now() - t0);
    await rm(tmp, { recursive: true, force: true });
  }

  // Inside Nanos: the shipped recipe, its volume imported from the local parameters (local digests).
  const env = { UNIPROVE_CACHE: join(dir, 'cache'), CI: '1' };
  const recipe = await benchyRecipeWithLocalParams(dir, params, env);
  const prover: number[] = [];
  const total: number[] = [];
  let accel = '';
  for (let i = 0; i < nanosReps; i++) {
    const r = await execa(
      process.execPath,
      [
        CLI,
        'run',
        recipe,
        '--binary',
        benchy,
        '--runs-dir',
        join(dir, 'runs'),
        '--package-out',
        join(dir, 'pkg'),
        '--json',
        '-q',
      ],
      { env, reject: false, timeout: 1_800_000 },
    );
    if (r.exitCode !== 0)
      throw new Error(`uniprove run exited ${r.exitCode}:\n${r.stdout}\n${r.stderr.slice(-2000)}`);
    const run = JSON.parse(r.stdout) as { accel: string; timings: { proverMs: number; totalMs: number } };
    accel = run.accel;
    prover.push(run.timings.proverMs);
    total.push(run.timings.totalMs);
  }

  console.log(`benchy ${ARGS.join(' ')} (medians; ${nativeReps} native, ${nanosReps} Nanos runs)`);
  console.log(`  native:        ${s(median(native))} wall`);
  console.log(
    `  inside Nanos:  ${s(median(prover))} prover (first console line to exit), ${s(median(total))} the whole run (${accel}; packaging cached after the first)`,
  );
  console.log(
    `  ratio:         ${(median(prover) / median(native)).toFixed(1)}x the native time (prover), ${(median(total) / median(native)).toFixed(1)}x (whole run)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
