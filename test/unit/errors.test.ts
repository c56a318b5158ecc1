import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES, ExitCode, UniproveError } from '../../src/core/errors.js';
import { CLI, REPO_ROOT, uniprove } from '../helpers/cli.js';

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

test('--version prints the version; a reader that closes the pipe early is not a crash', async () => {
  const version = await uniprove(['--version']);
  assert.equal(version.exitCode, 0);
  assert.equal(
    version.stdout.trim(),
    JSON.parse(await readFile(`${REPO_ROOT}/package.json`, 'utf8')).version,
  );
  // `uniprove --help | head -0`: the reader is gone before the help is written.
  const child = spawn(process.execPath, [CLI, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdout.destroy();
  const [code] = (await once(child, 'close')) as [number];
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
});
