/**
 * The --json contract: every error object has a code, a message and a hint, and `run --parallel --json` that
 * does not succeed carries a top-level `error`. Real CLI processes.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { abortReason, gcpError } from '../../src/core/cloud/operations.js';
import { summarizeError, UniproveError } from '../../src/core/errors.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface ErrorJson {
  code: string;
  message: string;
  hint?: string;
}

test('E_GCP, E_INTERRUPTED and E_INTERNAL carry a hint, as every code does', () => {
  const gcp = gcpError(Object.assign(new Error('boom'), { code: 418 }), 'instances.get', 'z/i');
  assert.equal(gcp.code, 'E_GCP');
  assert.match(gcp.summary().hint ?? '', /gcp gc/);
  const interrupted = abortReason(new AbortController().signal);
  assert.match(interrupted.summary().hint ?? '', /run the command again/i);
  const internal = summarizeError(new TypeError('x is undefined'));
  assert.equal(internal.code, 'E_INTERNAL');
  assert.match(internal.hint ?? '', /report it with the command .* stack/);
  assert.match(
    new UniproveError('E_CONFIG', { message: 'x' }).summary().hint ?? '',
    /docs\/errors\.md#e_config/,
  );
});

test('run --parallel --json that fails has a top-level error with code, message and hint; each run its own', async () => {
  const dir = await tempDir('uniprove-json-');
  await mkdir(join(dir, 'home'));
  await writeFile(join(dir, 'inputs.txt'), '0\n1\n');
  // No ops on PATH nor in ~/.ops: each run fails at its check, before any VM.
  const r = await uniprove(['run', 'demo', '--parallel', '2', '--inputs', 'inputs.txt', '--json'], {
    cwd: dir,
    env: { PATH: '/usr/bin:/bin', HOME: join(dir, 'home') },
  });
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const out = parseJson<{ ok: boolean; error?: ErrorJson; runs: { error?: ErrorJson }[] }>(r);
  assert.equal(out.ok, false);
  assert.equal(out.error?.code, 'E_RUN_FAILED');
  assert.match(out.error?.message ?? '', /2 of 2 runs did not succeed/);
  assert.ok(out.error?.hint);
  assert.equal(out.runs.length, 2);
  for (const run of out.runs) {
    assert.equal(run.error?.code, 'E_TOOL_MISSING');
    assert.ok(run.error?.message && run.error.hint);
  }
});
