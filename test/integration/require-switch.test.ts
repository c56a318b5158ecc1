/**
 * UNIPROVE_REQUIRE turns a skip for a missing tool into a failure naming it, so that CI cannot go green by
 * skipping the unikernel path. Each case runs the real run-local suite with one tool taken away.
 */
import assert from 'node:assert/strict';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { findTool, needOps } from '../helpers/tools.js';

const SUITE = join('test', 'integration', 'run-local.test.ts');

/** Run the run-local suite with this PATH, HOME and UNIPROVE_REQUIRE. */
async function suite(env: { PATH: string; HOME: string; UNIPROVE_REQUIRE: string }) {
  const r = await execa(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', SUITE], {
    cwd: REPO_ROOT,
    // Not the parent's environment: its NODE_TEST_CONTEXT would make the child runner refuse to run files.
    env: { ...env, UNIPROVE_CACHE: join(env.HOME, 'cache') },
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
  return { exitCode: r.exitCode, output: `${r.stdout}\n${r.stderr}` };
}

/** A folder holding only an ops link, for a PATH that has ops and nothing else. */
async function pathWithOnlyOps(): Promise<string> {
  const bin = join(await tempDir(), 'bin');
  await mkdir(bin);
  await symlink(findTool('ops') as string, join(bin, 'ops'));
  return bin;
}

test('without ops: the suite skips, saying why; with UNIPROVE_REQUIRE=ops it fails naming ops', {
  timeout: 300_000,
}, async () => {
  const home = await tempDir();
  const bare = { PATH: '/usr/bin:/bin', HOME: home };
  const skipped = await suite({ ...bare, UNIPROVE_REQUIRE: '' });
  assert.equal(skipped.exitCode, 0, skipped.output);
  assert.match(skipped.output, /run-local tests skipped: ops is not installed/);
  assert.match(skipped.output, /ℹ skipped [1-9]/);

  const failed = await suite({ ...bare, UNIPROVE_REQUIRE: 'ops,nanos,qemu,benchy' });
  assert.notEqual(failed.exitCode, 0, failed.output);
  assert.match(failed.output, /UNIPROVE_REQUIRE names ops, but ops is not installed/);
  assert.match(failed.output, /ℹ fail [1-9]/);
});

test('without a Nanos release: UNIPROVE_REQUIRE=nanos fails naming it', {
  skip: needOps(),
  timeout: 300_000,
}, async () => {
  const failed = await suite({
    PATH: await pathWithOnlyOps(),
    HOME: await tempDir(),
    UNIPROVE_REQUIRE: 'nanos',
  });
  assert.notEqual(failed.exitCode, 0, failed.output);
  assert.match(failed.output, /UNIPROVE_REQUIRE names nanos, but no Nanos release/);
});

test('without QEMU: UNIPROVE_REQUIRE=all fails naming qemu', {
  skip: needOps(),
  timeout: 300_000,
}, async () => {
  const home = process.env.HOME as string;
  const failed = await suite({ PATH: await pathWithOnlyOps(), HOME: home, UNIPROVE_REQUIRE: 'all' });
  assert.notEqual(failed.exitCode, 0, failed.output);
  assert.match(failed.output, /UNIPROVE_REQUIRE names qemu, but qemu-system-x86_64 is not installed/);
});
