/**
 * The report's browser test needs chromium: without it the test skips saying why, and under UNIPROVE_REQUIRE
 * (CI sets `all`) the file fails naming chromium. The real report suite, run with chromium taken away.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const SUITE = join('test', 'integration', 'report.test.ts');

/** The report suite's browser test alone (no evidence is made for a skipped test), chromium nowhere. */
async function browserTest(require: string) {
  const home = await tempDir();
  const r = await execa(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-name-pattern=headless chromium', SUITE],
    {
      cwd: REPO_ROOT,
      // Not the parent's environment: its NODE_TEST_CONTEXT would make the child runner refuse to run files.
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? home,
        UNIPROVE_CACHE: join(home, 'cache'),
        UNIPROVE_CHROMIUM: join(home, 'no-chromium'),
        UNIPROVE_REQUIRE: require,
      },
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    },
  );
  return { exitCode: r.exitCode, output: `${r.stdout}\n${r.stderr}` };
}

test('without chromium the browser test skips saying why; with UNIPROVE_REQUIRE=chromium it fails naming it', {
  timeout: 300_000,
}, async () => {
  const skipped = await browserTest('');
  assert.equal(skipped.exitCode, 0, skipped.output);
  assert.match(skipped.output, /chromium is not installed \(apt-get install chromium/);
  const failed = await browserTest('chromium');
  assert.notEqual(failed.exitCode, 0, failed.output);
  assert.match(failed.output, /UNIPROVE_REQUIRE names chromium, but chromium is not installed/);
});
