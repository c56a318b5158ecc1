/**
 * A broken environment or input is a typed error with its own exit status, never exit 70 (a bug in uniprove):
 * a lock file with wrong types, TMPDIR missing or refusing writes, a garbled ~/.ops/latest.txt, a cache path that
 * is a file. Real CLI processes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliRun, parseJson, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface ErrorOut {
  error: { code: string; message: string; hint: string; details?: Record<string, unknown> };
}

function errorOf(r: CliRun, exit: number, code: string): ErrorOut['error'] {
  assert.notEqual(r.exitCode, 70, `exit 70 is a bug:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /internal error/);
  const { error } = parseJson<ErrorOut>(r);
  assert.equal(error.code, code, error.message);
  assert.equal(r.exitCode, exit, r.stderr);
  assert.ok(error.hint);
  return error;
}

const OPS = join(homedir(), '.ops', 'bin', 'ops');
const noOps = existsSync(OPS) ? false : `no Ops in ${OPS} (uniprove setup installs it)`;

test('a lock file whose files is not an array: E_CONFIG with the dot-path from run, verify and why', async () => {
  const dir = await tempDir('uniprove-lock-');
  const pkg = join(dir, 'pkg');
  await mkdir(pkg);
  await writeFile(join(pkg, 'local.json'), '{}');
  await writeFile(join(pkg, 'uniprove.lock.json'), JSON.stringify({ program: '/p', files: { a: 1 } }));
  for (const argv of [
    ['run', pkg, '--json'],
    ['verify', pkg, '--json'],
    ['why', '/p', '--from', pkg, '--json'],
  ]) {
    const r = await uniprove(argv, { cwd: dir });
    const error = errorOf(r, 2, 'E_CONFIG');
    assert.match(
      error.message,
      /uniprove\.lock\.json is not a valid lock file:\n {2}files: expected an array, got an object/,
    );
  }
  await writeFile(
    join(pkg, 'uniprove.lock.json'),
    JSON.stringify({ program: '/p', files: [{ path: 3, reasons: 'explicit' }] }),
  );
  const r = await uniprove(['why', '/p', '--from', pkg, '--json'], { cwd: dir });
  const error = errorOf(r, 2, 'E_CONFIG');
  assert.match(error.message, /files\[0\]\.path: expected a string, got a number/);
  assert.match(error.message, /files\[0\]\.reasons: expected an array, got a string/);
});

test('TMPDIR that does not exist: E_ENV_PATH (exit 3) naming TMPDIR, from discover', async () => {
  const dir = await tempDir('uniprove-tmpdir-');
  const env = { TMPDIR: join(dir, 'no-such-folder'), UNIPROVE_CACHE: join(dir, 'cache') };
  const discover = await uniprove(['discover', '/bin/true', '--json'], { cwd: dir, env });
  const error = errorOf(discover, 3, 'E_ENV_PATH');
  assert.match(error.message, /temporary folder .*no-such-folder \(TMPDIR\) does not exist/);
  assert.match(error.hint, /mkdir -p/);
});

test('TMPDIR that does not exist, from run (which packages the recipe first)', { skip: noOps }, async () => {
  const dir = await tempDir('uniprove-tmpdir-run-');
  const env = { TMPDIR: join(dir, 'no-such-folder'), UNIPROVE_CACHE: join(dir, 'cache') };
  const r = await uniprove(['run', 'demo', '--json'], { cwd: dir, env, timeoutMs: 180_000 });
  assert.match(errorOf(r, 3, 'E_ENV_PATH').message, /\(TMPDIR\) does not exist/);
});

const sysWritable = await mkdir('/sys/uniprove-probe-test').then(
  () => 'writable /sys: no folder here refuses writes',
  () => false,
);

test('TMPDIR that refuses writes is blamed on TMPDIR, not on the run folder', {
  skip: sysWritable,
}, async () => {
  const dir = await tempDir('uniprove-tmpdir-ro-');
  const r = await uniprove(['discover', '/bin/true', '--json'], {
    cwd: dir,
    env: { TMPDIR: '/sys', UNIPROVE_CACHE: join(dir, 'cache') },
  });
  assert.notEqual(r.exitCode, 70, r.stderr);
  const { error } = parseJson<ErrorOut>(r);
  assert.match(error.code, /^E_(PERMISSION|READ_ONLY)$/);
  assert.equal(r.exitCode, 3);
  assert.match(error.message, /temporary folder in \/sys \(TMPDIR\)/);
  assert.match(error.hint, /TMPDIR/);
});

test('a garbled ~/.ops/latest.txt is a missing release (E_NANOS_MISSING, exit 3), shown as printable text', {
  skip: noOps,
}, async () => {
  const dir = await tempDir('uniprove-latest-');
  const home = join(dir, 'home');
  await mkdir(join(home, '.ops'), { recursive: true });
  await symlink(join(homedir(), '.ops', 'bin'), join(home, '.ops', 'bin'));
  await writeFile(join(home, '.ops', 'latest.txt'), Buffer.from('\x00\xff\x1b[31mgarbage\x07\n', 'latin1'));
  const r = await uniprove(['run', 'demo', '--json'], { cwd: dir, env: { HOME: home } });
  const error = errorOf(r, 3, 'E_NANOS_MISSING');
  assert.match(error.message, /latest\.txt does not name one/);
  assert.doesNotMatch(r.stdout + r.stderr, /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw control bytes printed');
});

test('UNIPROVE_CACHE that is a file: E_ENV_PATH (exit 3) naming UNIPROVE_CACHE and the fix', async () => {
  const dir = await tempDir('uniprove-cachefile-');
  const file = join(dir, 'cache');
  await writeFile(file, 'not a folder');
  for (const argv of [
    ['run', 'demo', '--json'],
    ['volume', 'ls', '--json'],
  ]) {
    const r = await uniprove(argv, { cwd: dir, env: { UNIPROVE_CACHE: file } });
    const error = errorOf(r, 3, 'E_ENV_PATH');
    assert.match(error.message, /\(UNIPROVE_CACHE\).* is a file, not a folder/);
    assert.match(error.hint, /Point UNIPROVE_CACHE at a folder/);
  }
});
