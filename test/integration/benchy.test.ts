/**
 * The prover of Gevulot's guide: rust-fil-proofs' benchy, `winning-post --size 2KiB --fake`.
 * benchy is not published on crates.io; it builds with cargo from the rust-fil-proofs sources
 * (`cargo build --release -p fil-proofs-tooling --bin benchy`), and `paramcache` (crate
 * fil-proofs-param) makes 2KiB parameters locally. Point UNIPROVE_BENCHY at the binary and
 * UNIPROVE_BENCHY_PARAMS at a folder of 2KiB parameters, or UNIPROVE_TOOLCHAIN at a toolchain folder that has
 * both; without them these tests skip (and fail under UNIPROVE_REQUIRE=benchy).
 */
import assert from 'node:assert/strict';
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { benchyRecipeWithLocalParams, findBenchy, findBenchyParams } from '../helpers/benchy.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { gate, needTool, needUnikernel } from '../helpers/tools.js';

const benchy = findBenchy();
const params = findBenchyParams();
const noBenchy = gate(
  'benchy',
  benchy
    ? undefined
    : 'no benchy binary: set UNIPROVE_TOOLCHAIN to a toolchain folder (CI: ../shared/toolchain), or build it from rust-fil-proofs (cargo build --release -p fil-proofs-tooling --bin benchy) and set UNIPROVE_BENCHY',
);
const noParams = gate(
  'benchy',
  params
    ? undefined
    : 'no 2KiB parameters: set UNIPROVE_TOOLCHAIN, or make them with paramcache and set UNIPROVE_BENCHY_PARAMS',
);
for (const why of [noBenchy, noParams]) if (why) console.log(`# benchy tests: ${why}`);

test('package benchy --binary: the Gevulot guide config, generated and explained', {
  skip: noBenchy ?? needTool('strace', 'apt-get install strace'),
  timeout: 900_000,
}, async () => {
  const out = join(await tempDirOutsideTmp(), 'benchy');
  const r = await uniprove(['package', 'benchy', '--binary', benchy as string, '--out', out, '--json'], {
    timeoutMs: 900_000,
  });
  assert.equal(r.exitCode, 0, r.stderr);
  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, 'benchy');
  assert.deepEqual(config.Args, ['winning-post', '--size', '2KiB', '--fake']);
  assert.equal(config.Env.BELLMAN_NO_GPU, '1');
  assert.deepEqual(config.Files, ['rust-fil-proofs.config.toml']);
  assert.deepEqual(Object.values(config.Mounts), ['/tmp']);
  assert.equal(config.RebootOnExit, false);
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string; reasons: string[] }[];
  };
  assert.ok(lock.files.some((f) => f.path === '/benchy' && f.reasons.includes('explicit')));
  assert.ok(lock.files.some((f) => /\/libgcc_s\.so\.1$/.test(f.path)));
});

test('verify benchy from the package alone, with the 2KiB parameters at /tmp', {
  skip: noBenchy ?? noParams ?? needTool('bwrap', 'apt-get install bubblewrap'),
  timeout: 900_000,
}, async () => {
  const dir = await tempDirOutsideTmp();
  const out = join(dir, 'benchy');
  const tmp = join(dir, 'tmp');
  await cp(params as string, tmp, { recursive: true });
  assert.equal(
    (
      await uniprove(['package', 'benchy', '--binary', benchy as string, '--out', out], {
        timeoutMs: 900_000,
      })
    ).exitCode,
    0,
  );
  const r = await uniprove(['verify', out, '--bind', `/tmp=${tmp}`, '--json', '--timeout', '600'], {
    timeoutMs: 900_000,
  });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.equal(parseJson<{ ok: boolean }>(r).ok, true);
});

test('run benchy inside Nanos with its parameter volume at /tmp', {
  skip: noBenchy ?? noParams ?? needUnikernel(),
  timeout: 1_800_000,
}, async () => {
  const dir = await tempDirOutsideTmp();
  // The shipped recipe, with the volume made from the local parameters (their digests differ from the public ones).
  const recipe = await benchyRecipeWithLocalParams(dir, params as string, {
    UNIPROVE_CACHE: join(dir, 'cache'),
  });
  const env = { UNIPROVE_CACHE: join(dir, 'cache') };
  const r = await uniprove(
    [
      'run',
      recipe,
      '--binary',
      benchy as string,
      '--runs-dir',
      join(dir, 'runs'),
      '--timeout',
      '1500',
      '--json',
    ],
    { env, timeoutMs: 1_700_000 },
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; exitCode: number; dir: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  const console = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.match(console, /winning/i);
});
