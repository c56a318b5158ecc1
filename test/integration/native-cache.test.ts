/**
 * uniprove's compiled helpers (native/*.c, cached under the digest of their source and flags) are used only while
 * they hold the bytes they were compiled to: a truncated or overwritten copy in the cache is compiled again, and
 * says why, instead of being preloaded into every run.
 */
import assert from 'node:assert/strict';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildNative } from '../../src/core/native.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

test('a damaged cached helper is compiled again, with the reason; a whole one is reused', {
  skip: needGcc(),
  timeout: 120_000,
}, async () => {
  const cacheDir = await tempDir();
  const spec = {
    source: join(REPO_ROOT, 'native', 'rusage.c'),
    name: 'uniprove-rusage',
    folder: 'rusage-test',
    cflags: ['-O2'],
    purpose: 'compiles the test helper',
  };
  const first = await buildNative(spec, { cacheDir });
  assert.equal(first.compiled, true);
  assert.equal((await buildNative(spec, { cacheDir })).compiled, false, 'a whole copy is reused');

  await truncate(first.path, 64);
  const truncated = await buildNative(spec, { cacheDir });
  assert.equal(truncated.compiled, true);
  assert.match(truncated.damaged ?? '', /no longer has the bytes it was compiled to/);
  assert.equal((await buildNative(spec, { cacheDir })).compiled, false);

  await writeFile(`${first.path}.sha256`, 'not a digest\n');
  const unsealed = await buildNative(spec, { cacheDir });
  assert.equal(unsealed.compiled, true);
  assert.ok(unsealed.damaged);
});
