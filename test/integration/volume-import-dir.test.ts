import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

test('volume import of a folder (locally made parameters) gives a set that fetch verifies into the cache', async () => {
  const dir = await tempDir();
  const params = join(dir, 'params');
  await mkdir(join(params, 'keys'), { recursive: true });
  await writeFile(join(params, 'v28-local.params'), Buffer.alloc(3 << 20, 7));
  await writeFile(join(params, 'keys', 'v28-local.vk'), 'verifying key\n');
  // Two files with the same bytes (paramcache writes identical .meta files): one cache entry, no race.
  await writeFile(join(params, 'a.meta'), '{"sector_size":2048}');
  await writeFile(join(params, 'b.meta'), '{"sector_size":2048}');
  const setFile = join(dir, 'local.json');
  const imported = await uniprove([
    'volume',
    'import',
    params,
    '--name',
    'local-2KiB',
    '--mount-path',
    '/tmp',
    '-o',
    setFile,
  ]);
  assert.equal(imported.exitCode, 0, imported.stderr);
  const set = JSON.parse(await readFile(setFile, 'utf8'));
  assert.equal(set.name, 'local-2KiB');
  assert.equal(set.mountPath, '/tmp');
  assert.deepEqual(
    set.files.map((f: { name: string; path?: string; size: number }) => [f.name, f.path, f.size]),
    [
      ['a.meta', undefined, 20],
      ['b.meta', undefined, 20],
      ['v28-local.vk', 'keys/v28-local.vk', 14],
      ['v28-local.params', undefined, 3 << 20],
    ],
  );

  const cache = join(dir, 'cache');
  const fetched = await uniprove(['volume', 'fetch', setFile, '--json'], { env: { UNIPROVE_CACHE: cache } });
  assert.equal(fetched.exitCode, 0, fetched.stderr);
  const r = parseJson<{ files: { name: string; path: string; verified: boolean; guestPath: string }[] }>(
    fetched,
  );
  assert.equal(r.files.length, 4);
  assert.equal(
    r.files.find((f) => f.name === 'a.meta')?.path,
    r.files.find((f) => f.name === 'b.meta')?.path,
  );
  for (const f of r.files) {
    assert.equal(f.verified, true);
    assert.ok(f.path.startsWith(cache), f.path);
  }
  assert.ok(r.files.some((f) => f.guestPath === '/tmp/keys/v28-local.vk'));

  // A byte changed after the import is caught by the digest.
  await writeFile(join(params, 'v28-local.params'), Buffer.alloc(3 << 20, 8));
  const tampered = await uniprove(['volume', 'fetch', setFile, '--json'], {
    env: { UNIPROVE_CACHE: join(dir, 'cache2') },
  });
  assert.equal(tampered.exitCode, 4, tampered.stdout + tampered.stderr);
});
