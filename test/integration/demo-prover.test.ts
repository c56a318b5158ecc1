/** The demo prover proves for real: setup, prove and verify natively, and it rejects what it must. */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { execa } from 'execa';
import { buildDemoProver, needCargo } from '../helpers/demo-prover.js';
import { tempDir } from '../helpers/tmp.js';

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The text between two marker lines of a console log. */
function between(stdout: string, begin: string, end: string): string {
  const lines = stdout.split('\n');
  const from = lines.indexOf(begin);
  const to = lines.indexOf(end);
  assert.ok(from >= 0 && to > from, `markers ${begin}/${end} missing in:\n${stdout}`);
  return lines.slice(from + 1, to).join('\n');
}

// Made at file level: tempDir's cleanup hook belongs to the file, not to a before() hook.
const dir = await tempDir('uniprove-demo-');

describe('demo prover', { skip: needCargo() }, () => {
  let binary: string;

  const run = async (args: string[]): Promise<Run> => {
    const result = await execa(binary, args, { cwd: dir, reject: false, timeout: 60_000 });
    if (result.exitCode === undefined) throw new Error(`${binary} did not run: ${result.message}`);
    return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  };

  before(async () => {
    const built = await buildDemoProver();
    assert.ok(built, 'cargo is present, so the build must produce a binary');
    binary = built;
  });

  test('setup is deterministic per seed', async () => {
    assert.equal((await run(['setup', '--out', 'host'])).exitCode, 0);
    assert.equal((await run(['setup', '--out', 'again', '--seed', '1'])).exitCode, 0);
    assert.equal((await run(['setup', '--out', 'other', '--seed', '2'])).exitCode, 0);
    const vk = await readFile(join(dir, 'host', 'vk.bin'));
    assert.deepEqual(await readFile(join(dir, 'again', 'vk.bin')), vk);
    assert.deepEqual(
      await readFile(join(dir, 'again', 'params.bin')),
      await readFile(join(dir, 'host', 'params.bin')),
    );
    assert.notDeepEqual(await readFile(join(dir, 'other', 'vk.bin')), vk);
  });

  test('a proof from params on disk verifies against the host key, and the console carries it', async () => {
    const proved = await run(['prove', '--params', 'host', '--out', 'out']);
    assert.equal(proved.exitCode, 0, proved.stderr);
    const proof = await readFile(join(dir, 'out', 'proof.bin'));
    assert.equal(proof.length, 192);
    const consoleHex = between(proved.stdout, 'UNIPROVE-PROOF-BEGIN', 'UNIPROVE-PROOF-END').replace(
      /\s+/g,
      '',
    );
    assert.deepEqual(Buffer.from(consoleHex, 'hex'), proof);
    const consolePublic = JSON.parse(between(proved.stdout, 'UNIPROVE-PUBLIC-BEGIN', 'UNIPROVE-PUBLIC-END'));
    assert.deepEqual(consolePublic, JSON.parse(await readFile(join(dir, 'out', 'public.json'), 'utf8')));

    const verified = await run([
      'verify',
      '--vk',
      'host/vk.bin',
      '--proof',
      'out/proof.bin',
      '--public',
      'out/public.json',
    ]);
    assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^proof OK/);
  });

  test('a tampered proof byte fails verification with status 1', async () => {
    const proof = await readFile(join(dir, 'out', 'proof.bin'));
    proof[100] = (proof[100] ?? 0) ^ 0x01;
    await writeFile(join(dir, 'tampered.bin'), proof);
    const verified = await run([
      'verify',
      '--vk',
      'host/vk.bin',
      '--proof',
      'tampered.bin',
      '--public',
      'out/public.json',
    ]);
    assert.equal(verified.exitCode, 1);
    assert.match(verified.stdout, /^proof INVALID/);
  });

  test('a valid proof does not verify for another public output', async () => {
    assert.equal((await run(['prove', '--params', 'host', '--out', 'out43', '--input', '43'])).exitCode, 0);
    const verified = await run([
      'verify',
      '--vk',
      'host/vk.bin',
      '--proof',
      'out/proof.bin',
      '--public',
      'out43/public.json',
    ]);
    assert.equal(verified.exitCode, 1);
    assert.match(verified.stdout, /^proof INVALID: InvalidProof/);
  });

  test('without --params the prover generates the default parameters and proves reproducibly', async () => {
    const first = await run(['prove', '--out', 'mem1', '--proof-seed', '7']);
    assert.equal(first.exitCode, 0, first.stderr);
    assert.match(first.stdout, /generated in memory from seed 1/);
    assert.equal((await run(['prove', '--out', 'mem2', '--proof-seed', '7'])).exitCode, 0);
    assert.deepEqual(
      await readFile(join(dir, 'mem1', 'proof.bin')),
      await readFile(join(dir, 'mem2', 'proof.bin')),
    );
    await copyFile(join(dir, 'host', 'vk.bin'), join(dir, 'mem1', 'vk.bin'));
    const verified = await run(['verify', '--dir', 'mem1']);
    assert.equal(verified.exitCode, 0, verified.stdout);
  });

  test('an invalid witness (--fail) exits 3 and writes nothing', async () => {
    const failed = await run(['prove', '--out', 'failed', '--fail']);
    assert.equal(failed.exitCode, 3);
    assert.match(failed.stderr, /does not verify/);
    assert.doesNotMatch(failed.stdout, /UNIPROVE-PROOF-BEGIN/);
    assert.equal(existsSync(join(dir, 'failed', 'proof.bin')), false);
  });

  test('bad usage exits 2 and a missing parameters file exits 4, each naming the input', async () => {
    const usage = await run(['prove', '--out', 'x', '--input', 'abc']);
    assert.equal(usage.exitCode, 2);
    assert.match(usage.stderr, /--input must be a whole number/);
    const missing = await run(['prove', '--out', 'x', '--params', 'nowhere']);
    assert.equal(missing.exitCode, 4);
    assert.match(missing.stderr, /cannot read parameters nowhere/);
  });
});
