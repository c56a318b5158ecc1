/**
 * The demo's end-to-end promise: `uniprove package demo` then `uniprove verify`
 * produces a proof, made by the program running from the package alone, that
 * the host verifies with its own verifying key.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildDemoProver, needCargo } from '../helpers/demo-prover.js';
import { tempDir } from '../helpers/tmp.js';
import { needTool } from '../helpers/tools.js';

const skip =
  needCargo() ??
  needTool('strace', 'apt-get install strace') ??
  needTool('bwrap', 'apt-get install bubblewrap');

test('package demo, verify, and the host verifies the proof', { skip, timeout: 20 * 60_000 }, async () => {
  const prover = await buildDemoProver();
  assert.ok(prover);
  const dir = await tempDir();
  const out = join(dir, 'demo');
  const packaged = await uniprove(['package', 'demo', '--binary', prover, '--out', out, '--json']);
  assert.equal(packaged.exitCode, 0, packaged.stderr);
  const config = JSON.parse(await readFile(join(out, 'local.json'), 'utf8'));
  assert.equal(config.Program, 'uniprove-demo-prover');
  assert.deepEqual(config.Args, ['prove', '--out', '/tmp/proof', '--proof-seed', '7']);

  const verified = await uniprove([
    'verify',
    out,
    '--json',
    '--proof-markers',
    'UNIPROVE-PROOF-BEGIN,UNIPROVE-PROOF-END',
  ]);
  assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
  const v = parseJson<{ ok: boolean; proofs: { guestPath: string; path: string; sha256: string }[] }>(
    verified,
  );
  const proofFile = v.proofs.find((p) => p.guestPath === '/tmp/proof/proof.bin');
  const publicFile = v.proofs.find((p) => p.guestPath === '/tmp/proof/public.json');
  assert.ok(proofFile && publicFile, `proof files come back: ${JSON.stringify(v.proofs)}`);
  const consoleProof = v.proofs.find((p) => p.guestPath === 'console');
  assert.ok(consoleProof, 'the proof printed between markers comes back too');
  const hex = (await readFile(consoleProof.path, 'utf8')).replace(/\s+/g, '');
  assert.equal(hex, (await readFile(proofFile.path)).toString('hex'));

  // The host makes its own verifying key from the public seed, and checks the proof with it.
  const keys = join(dir, 'host-keys');
  await execa(prover, ['setup', '--out', keys, '--seed', '1']);
  const ok = await execa(
    prover,
    ['verify', '--vk', join(keys, 'vk.bin'), '--proof', proofFile.path, '--public', publicFile.path],
    { reject: false },
  );
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /proof OK/);
});
