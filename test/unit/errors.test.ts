import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES, ExitCode, UniproveError } from '../../src/core/errors.js';
import { REPO_ROOT, uniprove } from '../helpers/cli.js';

test('every error code has an anchor in docs/errors.md', async () => {
  const doc = await readFile(`${REPO_ROOT}/docs/errors.md`, 'utf8');
  const missing = Object.keys(ERROR_CODES).filter((code) => !doc.includes(`## ${code.toLowerCase()}\n`));
  assert.deepEqual(missing, []);
});

test('exit classes map to distinct statuses', () => {
  const values = Object.values(ExitCode);
  assert.equal(new Set(values).size, values.length);
  assert.equal(new UniproveError('E_CONFIG', { message: 'x' }).exitCode, 2);
  assert.equal(new UniproveError('E_TOOL_MISSING', { message: 'x' }).exitCode, 3);
  assert.equal(new UniproveError('E_INTERNAL', { message: 'x' }).exitCode, 70);
});

test('the CLI teaches with --help and rejects unknown flags with the usage status', async () => {
  const help = await uniprove(['--help']);
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /Nanos unikernel/);
  const bad = await uniprove(['--no-such-flag']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /unknown option '--no-such-flag'/);
});
