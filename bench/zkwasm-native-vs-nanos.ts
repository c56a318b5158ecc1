/**
 * zkWasm's CLI, natively against inside Nanos: `zkwasm-cli setup -k 18` once on the host (its output becomes
 * the Ops volume at /params), then `prove` of wasm_output.wasm as its test_cli.sh does, natively under
 * /usr/bin/time (CPU seconds and peak RSS) and checked with `zkwasm-cli verify`, then through `uniprove run`
 * of provers/zkwasm (TCG here: about an hour or more; the proof folder comes back and is verified on the host too),
 * once for each vCPU count asked (the recipe's RAYON_NUM_THREADS follows it), printed side by side at the end.
 * The CLI and the wasm: UNIPROVE_ZKWASM_CLI and UNIPROVE_ZKWASM_WASM, or UNIPROVE_TOOLCHAIN. Needs ops, a Nanos
 * release and QEMU for the Nanos part (bash scripts/setup.sh). The native prove peaks at 6.75 GB, the guest
 * gets 10G: they never run at once. Run:
 *   UNIPROVE_TOOLCHAIN=../shared/toolchain node --import tsx bench/zkwasm-native-vs-nanos.ts [native reps] [nanos reps] [vCPUs]
 * (default 1, 0 and the recipe's: the Nanos prove is long; pass 1 to run it; vCPUs is a list, e.g. 1,2, to time
 * each count on the same machine one after the other).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findZkwasmCli, findZkwasmWasm } from '../test/helpers/zkwasm.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'bin', 'uniprove.js');
const nativeReps = Number(process.argv[2] ?? 1);
const nanosReps = Number(process.argv[3] ?? 0);
/** The vCPU counts to prove with inside Nanos; undefined: the recipe's own. */
const vcpuCounts: (number | undefined)[] = process.argv[4]
  ? process.argv[4].split(',').map(Number)
  : [undefined];
const sideBySide: string[] = [];
const PUBLIC = ['--public', '133:i64', '--public', '2:i64'];

const zkwasm = findZkwasmCli();
const wasm = findZkwasmWasm();
if (!zkwasm || !wasm) {
  console.error(
    'no zkwasm-cli or wasm: set UNIPROVE_TOOLCHAIN (or UNIPROVE_ZKWASM_CLI and UNIPROVE_ZKWASM_WASM)',
  );
  process.exit(3);
}

interface Timed {
  wallS: number;
  cpuS: number;
  maxRssKiB: number;
}

/** Run argv in cwd under GNU time; its figures come from a file of their own, not the program's stderr. */
async function timed(argv: string[], cwd: string): Promise<Timed> {
  const out = join(cwd, `.time-${process.pid}`);
  const r = await execa('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, ...argv], {
    cwd,
    reject: false,
    all: true,
  });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(' ')} exited ${r.exitCode}:\n${String(r.all).slice(-2000)}`);
  const [wall, user, sys, rss] = (await readFile(out, 'utf8')).trim().split(/\s+/).map(Number);
  await rm(out, { force: true });
  return { wallS: wall!, cpuS: user! + sys!, maxRssKiB: rss! };
}

/** `zkwasm-cli verify` of an output folder: exit 0 and its words, or a throw. */
async function verify(cwd: string, output: string): Promise<void> {
  const r = await execa(
    zkwasm as string,
    ['--params', './params', 'wasm_output', 'verify', '--output', output],
    {
      cwd,
      reject: false,
      all: true,
    },
  );
  if (r.exitCode !== 0 || !/Verification succeeded!/.test(String(r.all)))
    throw new Error(`zkwasm-cli verify of ${output} exited ${r.exitCode}:\n${String(r.all).slice(-2000)}`);
}

const gib = (kib: number) => `${(kib / 1024 / 1024).toFixed(2)} GiB`;
const dir = await mkdtemp(join(tmpdir(), 'uniprove-bench-zkwasm-'));
// UNIPROVE_BENCH_KEEP=1 keeps the folder (the run records, the proofs) for a look afterwards.
const keep = process.env.UNIPROVE_BENCH_KEEP === '1';
if (keep) console.log(`working in ${dir} (kept)`);
try {
  await copyFile(wasm, join(dir, 'zkwasm-wasm_output.wasm'));
  const setup = await timed(
    [zkwasm, '--params', './params', 'wasm_output', 'setup', '-k', '18', '--wasm', 'zkwasm-wasm_output.wasm'],
    dir,
  );
  console.log(
    `setup -k 18: ${setup.wallS} s wall, ${setup.cpuS.toFixed(0)} CPU-s, ${gib(setup.maxRssKiB)} peak`,
  );

  for (let i = 0; i < nativeReps; i++) {
    const output = `./output-${i}`;
    const prove = await timed(
      [
        zkwasm,
        '--params',
        './params',
        'wasm_output',
        'prove',
        '--wasm',
        'zkwasm-wasm_output.wasm',
        ...PUBLIC,
        '--output',
        output,
      ],
      dir,
    );
    await verify(dir, output);
    console.log(
      `prove (native): ${prove.wallS} s wall, ${prove.cpuS.toFixed(0)} CPU-s, ${gib(prove.maxRssKiB)} peak; verify: succeeded`,
    );
  }

  if (nanosReps > 0) {
    // The shipped recipe beside the setup output, which becomes its volume (local digests).
    const recipe = join(dir, 'zkwasm');
    await mkdir(join(recipe, 'etc'), { recursive: true });
    for (const f of ['hosts', 'nsswitch.conf', 'host.conf'])
      await copyFile(join(REPO, 'provers', 'zkwasm', 'etc', f), join(recipe, 'etc', f));
    await copyFile(wasm, join(recipe, 'zkwasm-wasm_output.wasm'));
    await writeFile(
      join(recipe, 'recipe.json'),
      await readFile(join(REPO, 'provers', 'zkwasm', 'recipe.json')),
    );
    const env = { UNIPROVE_CACHE: join(dir, 'cache'), CI: '1' };
    await execa(
      process.execPath,
      [
        CLI,
        'volume',
        'import',
        join(dir, 'params'),
        '--name',
        'zkwasm-bench-k18',
        '--mount-path',
        '/params',
        '-o',
        join(recipe, 'zkwasm-params.json'),
      ],
      { env },
    );
    try {
      for (const cpus of vcpuCounts)
        for (let i = 0; i < nanosReps; i++) {
          const r = await execa(
            process.execPath,
            [
              CLI,
              'run',
              recipe,
              '--binary',
              zkwasm,
              '--runs-dir',
              join(dir, 'runs'),
              '--package-out',
              join(dir, 'pkg'),
              '--timeout',
              '14400',
              ...(cpus ? ['--cpus', String(cpus)] : []),
              '--json',
              '-q',
            ],
            { env, reject: false, timeout: 15_000_000 },
          );
          if (r.exitCode !== 0)
            throw new Error(`uniprove run exited ${r.exitCode}:\n${r.stdout}\n${r.stderr.slice(-2000)}`);
          const run = JSON.parse(r.stdout) as {
            accel: string;
            dir: string;
            vcpus?: { used: number };
            timings: { proverMs: number; totalMs: number };
            proofs: { path: string }[];
          };
          // The proof folder comes back as files under the record (`run --json` gives their absolute paths; the
          // record, paths relative to its folder): verify wants the folder.
          const loadinfo = run.proofs.find((p) => p.path.endsWith('wasm_output.loadinfo.json'));
          if (!loadinfo) throw new Error(`the run brought no proof folder back: ${r.stdout}`);
          const output = resolve(run.dir, dirname(loadinfo.path));
          await verify(dir, output);
          const line = `prove inside Nanos (${run.accel}, ${run.vcpus?.used ?? cpus ?? '?'} vCPU): ${(run.timings.proverMs / 1000).toFixed(0)} s prover (first console line to exit), ${(run.timings.totalMs / 1000).toFixed(0)} s the whole run; verify on the host: succeeded`;
          console.log(line);
          sideBySide.push(line);
        }
      if (sideBySide.length > 1) console.log(`side by side, on this machine:\n  ${sideBySide.join('\n  ')}`);
    } finally {
      await execa(process.execPath, [CLI, 'volume', 'rm', join(recipe, 'zkwasm-params.json')], {
        env,
        reject: false,
      });
    }
  }
} finally {
  if (!keep) await rm(dir, { recursive: true, force: true });
}
