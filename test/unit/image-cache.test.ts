/**
 * The image cache: a key that moves with every input `ops build` reads and stays put otherwise,
 * images kept sparse, the least recently used dropped first.
 */
import assert from 'node:assert/strict';
import { mkdir, open, readFile, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageCache, type ImageKeyInput, imageCacheKey } from '../../src/core/image/cache.js';
import type { OpsConfig } from '../../src/core/manifest/schema.js';
import type { NanosRelease } from '../../src/core/ops/build.js';
import { tempDir } from '../helpers/tmp.js';

/** The key of cacheable inputs (a failure when they are not). */
async function keyOf(input: ImageKeyInput): Promise<string> {
  const keyed = await imageCacheKey(input);
  assert.ok('key' in keyed, JSON.stringify(keyed));
  return keyed.key;
}

async function fixture() {
  const dir = await tempDir();
  const pkg = join(dir, 'pkg');
  await mkdir(join(pkg, 'lib'), { recursive: true });
  await writeFile(join(pkg, 'prover'), 'ELF v1');
  await writeFile(join(pkg, 'lib', 'libfoo.so.1.2'), 'lib');
  await symlink('libfoo.so.1.2', join(pkg, 'lib', 'libfoo.so.1'));
  const rel = join(dir, 'ops', '0.1.55');
  await mkdir(join(rel, 'klibs'), { recursive: true });
  await writeFile(join(rel, 'kernel.img'), 'kernel');
  await writeFile(join(rel, 'boot.img'), 'boot');
  await writeFile(join(rel, 'klibs', 'strace'), 'klib');
  await writeFile(join(dir, 'ops-bin'), 'ops');
  const release: NanosRelease = {
    version: '0.1.55',
    dir: rel,
    kernel: join(rel, 'kernel.img'),
    boot: join(rel, 'boot.img'),
  };
  const config: OpsConfig = { Program: 'prover', Dirs: ['lib'], Args: ['1'] };
  const input = { opsPath: join(dir, 'ops-bin'), release, packageDir: pkg, config, volumes: [] };
  return { dir, pkg, release, config, input };
}

test('the key stays put when nothing changed, and moves with each input ops build reads', async () => {
  const f = await fixture();
  const key = await keyOf(f.input);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(await keyOf(f.input), key, 'same inputs, same key');

  const changed: [string, () => Promise<unknown>][] = [
    ['the prover rewritten', () => writeFile(join(f.pkg, 'prover'), 'ELF v2')],
    ['a library relinked', () => writeFile(join(f.pkg, 'lib', 'extra.so'), 'x')],
    ['the kernel replaced', () => utimes(f.release.kernel, new Date(1e12), new Date(1e12))],
    ['ops replaced', () => writeFile(f.input.opsPath, 'ops 2')],
  ];
  let last = key;
  for (const [what, change] of changed) {
    await change();
    const next = await keyOf(f.input);
    assert.notEqual(next, last, what);
    last = next;
  }
  const args = await keyOf({ ...f.input, config: { ...f.config, Args: ['2'] } });
  assert.notEqual(args, last, 'other arguments');
  const klib = await keyOf({ ...f.input, config: { ...f.config, Klibs: ['strace'] } });
  assert.notEqual(klib, last, 'a klib added');
  const vol = await keyOf({
    ...f.input,
    volumes: [{ label: 'params', path: '/root/.ops/volumes/params:1111.raw' }],
  });
  const vol2 = await keyOf({
    ...f.input,
    volumes: [{ label: 'params', path: '/root/.ops/volumes/params:2222.raw' }],
  });
  assert.notEqual(vol, vol2, 'a volume rebuilt under the same name has another UUID');
});

test('what the config reads outside the package is in the key (the console route maps a cache folder in)', async () => {
  const f = await fixture();
  const outside = join(f.dir, 'proof-out');
  await mkdir(outside);
  await writeFile(join(outside, 'lib.so'), 'v1');
  const config: OpsConfig = { ...f.config, MapDirs: { [`${outside}/*`]: '/.uniprove-proof-out' } };
  const input = { ...f.input, config };
  const keyed = await imageCacheKey(input);
  assert.ok('key' in keyed, `a small folder outside is keyed, not refused: ${JSON.stringify(keyed)}`);
  const key = keyed.key;
  assert.equal(await keyOf(input), key, 'same inputs, same key');
  await writeFile(join(outside, 'lib.so'), 'v2, rebuilt');
  assert.notEqual(await keyOf(input), key, 'a file in the mapped folder changed');
  const files = { ...f.input, config: { ...f.config, Files: ['../hosts'] } };
  await writeFile(join(f.dir, 'hosts'), '127.0.0.1 localhost\n');
  const withHosts = await keyOf(files);
  await writeFile(join(f.dir, 'hosts'), '127.0.0.1 localhost other\n');
  assert.notEqual(await keyOf(files), withHosts, 'a file outside the package (by "..") changed');
});

test('a huge host folder outside the package is not cached (stamping it would cost more than a build)', async () => {
  const f = await fixture();
  const big = join(f.dir, 'big');
  await mkdir(big);
  await Promise.all(Array.from({ length: 10_001 }, (_, i) => writeFile(join(big, `f${i}`), '')));
  const keyed = await imageCacheKey({ ...f.input, config: { ...f.config, Dirs: [big] } });
  assert.match(
    'uncacheable' in keyed ? keyed.uncacheable : '',
    /reads .*big, outside the package, and it is over 10000 entries/,
  );
});

test('a cached image comes back byte for byte, still sparse; the least recently used go first', async () => {
  const dir = await tempDir();
  const built = join(dir, 'built.img');
  // 64 MiB with a few bytes at each end, as an Ops image is mostly holes.
  const fh = await open(built, 'w');
  await fh.write('BOOT', 0);
  await fh.write('TAIL', 64 * 2 ** 20 - 4);
  await fh.close();
  const cache = new ImageCache(join(dir, 'cache'));
  const keys = ['a', 'b', 'c', 'd', 'e'].map((c) => c.repeat(64));
  assert.equal(await cache.get(keys[0] as string), undefined, 'a miss before anything is stored');
  await cache.put(keys[0] as string, { image: built, manifest: '(manifest)' });
  const hit = await cache.get(keys[0] as string);
  assert.ok(hit && !('damaged' in hit));
  assert.equal(hit.manifest, '(manifest)');
  assert.deepEqual(await readFile(hit.image), await readFile(built));
  const s = await stat(hit.image);
  assert.equal(s.size, 64 * 2 ** 20);
  assert.ok(s.blocks * 512 < 4 * 2 ** 20, `the copy keeps the holes (${s.blocks * 512} bytes allocated)`);

  for (const [i, key] of keys.slice(1).entries()) {
    // mtimes a second apart, so "least recently used" does not depend on the clock's resolution.
    await cache.put(key, { image: built, manifest: '' });
    await utimes(join(dir, 'cache', `${key}.json`), new Date(2e12 + i * 1000), new Date(2e12 + i * 1000));
  }
  assert.equal(await cache.get(keys[0] as string), undefined, 'the oldest of 5 is gone');
  for (const key of keys.slice(1)) assert.ok(await cache.get(key), 'the 4 newest stay');

  // A disk budget smaller than two images: only the most recently used one stays.
  const allocated = s.blocks * 512;
  await utimes(join(dir, 'cache', `${keys[2]}.json`), new Date(3e12), new Date(3e12));
  await cache.prune(4, allocated * 1.5);
  const left = [];
  for (const key of keys) if (await cache.get(key)) left.push(key);
  assert.deepEqual(left, [keys[2]]);
});

test('a cached image truncated, rewritten or without its record is removed and reported, never served', async () => {
  const dir = await tempDir();
  const built = join(dir, 'built.img');
  await writeFile(built, Buffer.alloc(1 << 20, 7));
  const cache = new ImageCache(join(dir, 'cache'));
  const key = 'f'.repeat(64);
  const image = join(dir, 'cache', `${key}.img`);

  await cache.put(key, { image: built, manifest: '(m)' });
  await truncate(image, 4096);
  const truncated = await cache.get(key);
  assert.ok(truncated && 'damaged' in truncated, JSON.stringify(truncated));
  assert.match(truncated.damaged, /changed since it was stored \(1048576 bytes then, 4096 now\)/);
  assert.equal(await cache.get(key), undefined, 'the damaged entry is gone: the next run builds');

  // Written in place, same size: the mtime tells.
  await cache.put(key, { image: built, manifest: '(m)' });
  const fh = await open(image, 'r+');
  await fh.write('X', 100);
  await fh.close();
  await utimes(image, new Date(), new Date(Date.now() + 5000));
  const rewritten = await cache.get(key);
  assert.ok(rewritten && 'damaged' in rewritten);
  assert.match(rewritten.damaged, /rewritten/);

  // A record that is not JSON.
  await cache.put(key, { image: built, manifest: '(m)' });
  await writeFile(join(dir, 'cache', `${key}.json`), '{not json');
  const garbled = await cache.get(key);
  assert.ok(garbled && 'damaged' in garbled);
  assert.match(garbled.damaged, /not readable JSON/);

  // Whole again after a fresh put.
  await cache.put(key, { image: built, manifest: '(m)' });
  const whole = await cache.get(key);
  assert.ok(whole && !('damaged' in whole));
  assert.deepEqual(await readFile(whole.image), await readFile(built));
});
