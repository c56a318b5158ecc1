import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, ExitCode, UniproveError } from '../../src/core/errors.js';
import { CLI, REPO_ROOT, uniprove } from '../helpers/cli.js';

test('every error code has an anchor in docs/errors.md', async () => {
  const doc = await readFile(`${REPO_ROOT}/docs/errors.md`, 'utf8');
  const missing = Object.keys(ERROR_CODES).filter((code) => !doc.includes(`## ${code.toLowerCase()}\n`));
  assert.deepEqual(missing, []);
});

/** Every .ts file under src/ but errors.ts, which lists the codes. */
async function sourceFiles(): Promise<string[]> {
  const entries = await readdir(join(REPO_ROOT, 'src'), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .filter((path) => path !== join(REPO_ROOT, 'src/core/errors.ts'));
}

/**
 * Codes the source raises: each quoted 'E_...' literal, except in a comparison (`code === 'E_X'` tests for an
 * error, it does not make one).
 */
async function raisedCodes(): Promise<Map<string, string[]>> {
  const raised = new Map<string, string[]>();
  for (const path of await sourceFiles()) {
    const text = await readFile(path, 'utf8');
    for (const m of text.matchAll(/(?<![=!]==\s*)'(E_[A-Z0-9_]+)'/g)) {
      const code = m[1] as string;
      raised.set(code, [...(raised.get(code) ?? []), path.slice(REPO_ROOT.length)]);
    }
  }
  return raised;
}

test('error codes and their docs agree both ways: documented codes are raised, raised codes documented', async () => {
  const doc = await readFile(`${REPO_ROOT}/docs/errors.md`, 'utf8');
  const documented = [...doc.matchAll(/^## (e_[a-z0-9_]+)$/gm)].map((m) => (m[1] as string).toUpperCase());
  const known = new Set(Object.keys(ERROR_CODES));
  assert.deepEqual(
    documented.filter((code) => !known.has(code)),
    [],
    'documented in docs/errors.md but not an ErrorCode',
  );
  const raised = await raisedCodes();
  assert.deepEqual(
    [...raised.keys()].filter((code) => !known.has(code)),
    [],
    'used in src/ but not an ErrorCode (so not documented either)',
  );
  assert.deepEqual(
    documented.filter((code) => !raised.has(code)),
    [],
    'documented but never raised anywhere in src/',
  );
  assert.deepEqual(
    [...known].filter((code) => !documented.includes(code)),
    [],
    'an ErrorCode without its section in docs/errors.md',
  );
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
