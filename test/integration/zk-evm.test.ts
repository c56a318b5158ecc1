/**
 * Polygon Zero's type 1 prover (0xPolygonZero/zk_evm's `leader`), a real prover that others wrote, through
 * uniprove: package it, prove block 3 from the package alone (natively, in bubblewrap) and check the proof with
 * zk_evm's own verifier, then start it inside Nanos and let it read its witness and generate the block's
 * witness (`--test-only`). The full proof inside Nanos took 22 minutes of TCG here (docs/provers.md), more
 * than a test may take; it is run by hand (`uniprove run provers/zk_evm --binary LEADER --timeout 3600`). Needs the leader (UNIPROVE_ZK_EVM_LEADER, or UNIPROVE_TOOLCHAIN);
 * without it these tests skip (and fail under UNIPROVE_REQUIRE=zk_evm or all).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { gate, needGcc, needTool, needUnikernel } from '../helpers/tools.js';
import { findZkEvmLeader, findZkEvmVerifier, findZkEvmWitness, ZK_EVM_BUILD } from '../helpers/zk-evm.js';

const leader = findZkEvmLeader();
const witness = findZkEvmWitness();
const verifier = findZkEvmVerifier();
const noLeader = gate(
  'zk_evm',
  leader && witness ? undefined : `no zk_evm leader or block-3 witness: ${ZK_EVM_BUILD}`,
);
if (noLeader) console.log(`# zk_evm tests: ${noLeader}`);

/** The shipped recipe in a temp folder, with stdin-from-file.so compiled and the witness beside it. */
async function recipeFolder(dir: string): Promise<string> {
  const recipe = join(dir, 'zk_evm');
  await mkdir(recipe, { recursive: true });
  const shipped = join(REPO_ROOT, 'provers', 'zk_evm');
  await copyFile(join(shipped, 'stdin-from-file.c'), join(recipe, 'stdin-from-file.c'));
  await execa('gcc', ['-shared', '-fPIC', '-O2', '-o', 'stdin-from-file.so', 'stdin-from-file.c'], {
    cwd: recipe,
  });
  await copyFile(witness as string, join(recipe, 'zk_evm-witness-b3.json'));
  const json = JSON.parse(await readFile(join(shipped, 'recipe.json'), 'utf8'));
  await writeFile(join(recipe, 'recipe.json'), JSON.stringify({ ...json, $schema: undefined }));
  return recipe;
}

/** Package the recipe with the leader into `out`; returns the recipe's env. */
async function packageIt(dir: string, out: string): Promise<Record<string, string>> {
  const recipe = await recipeFolder(dir);
  const r = await uniprove(['package', recipe, '--binary', leader as string, '--out', out, '--json'], {
    timeoutMs: 900_000,
  });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  return JSON.parse(await readFile(join(recipe, 'recipe.json'), 'utf8')).env;
}

const skipPackage = noLeader ?? needTool('strace', 'apt-get install strace') ?? needGcc();

test('package zk_evm --binary: the leader, its OpenSSL, the stdin shim and the witness', {
  skip: skipPackage,
  timeout: 900_000,
}, async () => {
  const out = join(await tempDirOutsideTmp(), 'pkg');
  await packageIt(await tempDirOutsideTmp(), out);
  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, 'leader');
  assert.equal(config.Args.at(-1), 'stdio');
  assert.equal(config.Env.LD_PRELOAD, './stdin-from-file.so');
  assert.equal(config.Env.CPU_CIRCUIT_SIZE, '13..17');
  assert.equal(config.RebootOnExit, false);
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as {
    files: { path: string; reasons: string[] }[];
  };
  const paths = lock.files.map((f) => f.path);
  for (const want of ['/leader', '/stdin-from-file.so', '/witness/zk_evm-witness-b3.json'])
    assert.ok(paths.includes(want), `${want} not in ${paths.join(', ')}`);
  assert.ok(paths.some((p) => /\/libssl\.so\.3$/.test(p)));
  assert.ok(paths.some((p) => /\/libcrypto\.so\.3$/.test(p)));
});

test('verify zk_evm from the package alone: block 3 proved, and zk_evm`s verifier accepts the proof', {
  skip: skipPackage ?? needTool('bwrap', 'apt-get install bubblewrap'),
  timeout: 2_400_000,
}, async () => {
  const dir = await tempDirOutsideTmp();
  const out = join(dir, 'pkg');
  const env = await packageIt(dir, out);
  // /tmp on disk, where the proof can be read afterwards.
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const r = await uniprove(
    ['verify', out, '--bind', `/tmp=${tmp}`, '--no-trace', '--json', '--timeout', '2100'],
    {
      timeoutMs: 2_300_000,
    },
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const v = parseJson<{ ok: boolean; proofs: { path: string; guestPath: string; size: number }[] }>(r);
  assert.equal(v.ok, true);
  const proof = join(tmp, 'proofs', 'b3.zkproof');
  assert.ok((await readFile(proof)).length > 1000);
  if (!verifier) return; // the leader alone: the proof was written, and nothing here can check it
  // The verifier exits 0 even when it rejects: its log line is the verdict.
  const checked = await execa(verifier, ['-f', proof, '--use-test-config'], {
    // The verifier builds its own circuits (about 80 CPU-s here) into a cache folder it insists ends in _circuit_cache.
    env: { ...env, ZK_EVM_CACHE_DIR: join(dir, 'verifier_circuit_cache'), RUST_LOG: 'info' },
    reject: false,
    timeout: 900_000,
    all: true,
  });
  assert.match(String(checked.all), /All proofs verified successfully!/, String(checked.all));
});

/** Package the recipe and run the leader inside Nanos in --test-only mode (witness checks, no proof). */
async function runTestOnly(extra: string[]) {
  const dir = await tempDirOutsideTmp();
  const out = join(dir, 'pkg');
  await packageIt(dir, out);
  const args = [
    '--runtime',
    'in-memory',
    '--block-batch-size',
    '8',
    '--use-test-config',
    '--test-only',
    'stdio',
  ];
  return uniprove(
    [
      'run',
      out,
      '--runs-dir',
      join(dir, 'runs'),
      '--timeout',
      '900',
      '--json',
      ...extra,
      ...args.map((a) => `--arg=${a}`),
    ],
    { env: { UNIPROVE_CACHE: join(dir, 'cache') }, timeoutMs: 1_100_000 },
  );
}

test('run zk_evm inside Nanos: the leader reads its witness and generates block 3`s witness (--test-only)', {
  skip: skipPackage ?? needUnikernel(),
  timeout: 1_200_000,
}, async () => {
  const r = await runTestOnly([]);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; exitCode: number; dir: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  const console = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.match(console, /Successfully generated witness for block 3/);
  assert.match(console, /All proof witnesses have been generated successfully/);
});

test('run zk_evm inside Nanos with no witness on stdin: the leader fails, and the run names empty-input', {
  skip: skipPackage ?? needUnikernel(),
  timeout: 1_200_000,
}, async () => {
  // UNIPROVE_STDIN empty: stdin-from-file.so leaves fd 0 as Nanos gives it, always at end-of-file.
  const r = await runTestOnly(['--env', 'UNIPROVE_STDIN=']);
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<{ outcome: string; findings?: { kind: string; evidence: string[] }[] }>(r);
  assert.equal(run.outcome, 'failed');
  const found = run.findings?.find((f) => f.kind === 'empty-input');
  assert.ok(found, JSON.stringify(run.findings));
  assert.match(found.evidence.join('\n'), /EOF while parsing a value at line 1 column 0/);
});
