/**
 * Brevis Pico (perf's `bench`, CPU backend, KoalaBear) through uniprove: the shipped recipe packaged with the
 * real binary, then run inside Nanos on bench's smallest program (`pure-fibonacci`: Pico's committed
 * pure-fibonacci-elf with n = 0) through the whole chain RISCV, CONVERT, COMBINE, COMPRESS, EMBED, each phase
 * verified by Pico in the guest (bench asserts each verify; it writes no proof file). Needs the binary
 * (UNIPROVE_PICO_BENCH and UNIPROVE_PICO_ELF, or the toolchain folder): without it these tests skip, and fail
 * under UNIPROVE_REQUIRE=pico (or all, when the toolchain folder lists the build).
 *
 * Not yet run against a real binary: the build is blocked on this project's machines (provers/pico/README.md).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { findPicoBench, findPicoElf, needPico } from '../helpers/pico.js';
import { needUnikernel } from '../helpers/tools.js';

const bench = findPicoBench();
const elf = findPicoElf();
const noPico = needPico({ bench, elf });
if (noPico) console.log(`# pico tests: ${noPico}`);

const dir = await mkdtemp(join(tmpdir(), 'uniprove-pico-'));
after(async () => {
  if (!process.env.UNIPROVE_KEEP_TMP) await rm(dir, { recursive: true, force: true });
});

/** The shipped recipe in a folder of its own, proving `pure-fibonacci` with its ELF beside it. */
async function smallRecipe(): Promise<string> {
  const recipe = join(dir, 'pico');
  await mkdir(recipe, { recursive: true });
  await copyFile(elf as string, join(recipe, 'pure-fibonacci-elf'));
  const shipped = JSON.parse(await readFile(join(REPO_ROOT, 'provers', 'pico', 'recipe.json'), 'utf8'));
  await writeFile(
    join(recipe, 'recipe.json'),
    JSON.stringify({
      ...shipped,
      $schema: undefined,
      args: ['--programs', 'pure-fibonacci', '--field', 'kb'],
      files: [
        {
          host: 'pure-fibonacci-elf',
          guest: '/perf/bench_data/pure-fibonacci-elf',
          reason: 'the guest program bench proves as pure-fibonacci',
        },
      ],
      probe: { args: ['--programs', 'pure-fibonacci', '--field', 'kb', '--noprove'], timeoutSeconds: 600 },
    }),
  );
  return recipe;
}

test('package pico --binary: bench, its libraries and the guest ELF where bench reads it', {
  skip: noPico,
  timeout: 900_000,
}, async () => {
  const recipe = await smallRecipe();
  const out = join(dir, 'pkg');
  const r = await uniprove(['package', recipe, '--binary', bench as string, '--out', out, '--json'], {
    timeoutMs: 800_000,
  });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, 'bench');
  assert.deepEqual(config.Args, ['--programs', 'pure-fibonacci', '--field', 'kb']);
  assert.equal(config.Env.VK_VERIFICATION, 'false');
  assert.equal(config.Env.RAYON_NUM_THREADS, '2');
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string }[];
  };
  const paths = lock.files.map((f) => f.path);
  for (const want of ['/bench', '/perf/bench_data/pure-fibonacci-elf'])
    assert.ok(paths.includes(want), `${want} not in ${paths.join(', ')}`);
});

test('run pico inside Nanos: pure-fibonacci proved through EMBED and every phase verified in the guest', {
  skip: noPico ?? needUnikernel(),
  timeout: 3_700_000,
}, async () => {
  const recipe = await smallRecipe();
  const r = await uniprove(
    [
      'run',
      recipe,
      '--binary',
      bench as string,
      '--package-out',
      join(dir, 'run-pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--timeout',
      '3600',
      '--json',
    ],
    { env: { UNIPROVE_CACHE: join(dir, 'cache') }, timeoutMs: 3_650_000 },
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; dir: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  const console = await readFile(join(run.dir, 'console.log'), 'utf8');
  // bench logs each phase's verify at RUST_LOG=info and asserts it; exit 0 means all five held.
  for (const phase of ['RISCV', 'CONVERT', 'COMBINE', 'COMPRESS', 'EMBED'])
    assert.match(console, new RegExp(`Verifying ${phase} proof`));
});
