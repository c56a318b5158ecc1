/**
 * A damaged image cache entry is never booted: before, a cached image truncated on disk was a "hit" on every later
 * run, and every run failed (status 127) for ever. Now the entry is checked against the size, mtime and inode it
 * was stored with, removed with an `image-cache-damaged` warning, and the image built again.
 */
import assert from 'node:assert/strict';
import { readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();

test('a truncated cached image: the next run warns, builds again and succeeds; the one after is a hit', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const dir = await tempDir();
  await compileC(dir, 'hello', '#include <stdio.h>\nint main(void) { puts("HELLO-CACHE"); return 0; }\n');
  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({
      name: 'hello-cache',
      binary: './hello',
      probe: { skip: true },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const cache = join(dir, 'cache');
  const run = async () => {
    const r = await uniprove(
      [
        'run',
        dir,
        '--accel',
        'tcg',
        '--package-out',
        join(dir, 'pkg'),
        '--runs-dir',
        join(dir, 'runs'),
        '--json',
        '-q',
      ],
      { cwd: dir, env: { UNIPROVE_CACHE: cache }, timeoutMs: 180_000 },
    );
    return {
      exitCode: r.exitCode,
      run: parseJson<{ outcome: string; imageCache: string; warnings: { code: string; message: string }[] }>(
        r,
      ),
    };
  };
  const first = await run();
  assert.equal(first.run.outcome, 'succeeded');
  assert.equal(first.run.imageCache, 'stored');
  const images = (await readdir(join(cache, 'images'))).filter((n) => n.endsWith('.img'));
  assert.equal(images.length, 1);
  await truncate(join(cache, 'images', images[0] as string), 4096);

  const second = await run();
  assert.equal(second.exitCode, 0, JSON.stringify(second.run));
  assert.equal(second.run.outcome, 'succeeded');
  assert.equal(second.run.imageCache, 'stored', 'built again, not booted from the damaged copy');
  const warning = second.run.warnings.find((w) => w.code === 'image-cache-damaged');
  assert.ok(warning, JSON.stringify(second.run.warnings));
  assert.match(warning.message, /changed since it was stored \(\d+ bytes then, 4096 now\)/);

  const third = await run();
  assert.equal(third.run.imageCache, 'hit');
  assert.ok(!third.run.warnings.some((w) => w.code === 'image-cache-damaged'));
});
