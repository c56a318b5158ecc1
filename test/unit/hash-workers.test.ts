/** The hashing threads behind package locks and parameter downloads, on real files. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HashWorkers } from '../../src/core/hash-workers.js';
import { tempDir } from '../helpers/tmp.js';

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex');

test('whole files: the same digests node:crypto gives, for many files at once, empty and larger than a read', async () => {
  const dir = await tempDir();
  const files: [string, Buffer][] = [];
  for (const size of [0, 1, 4096, (8 << 20) + 3, 65_537, 3 * (1 << 20)]) {
    const path = join(dir, `f${size}`);
    const data = randomBytes(size);
    await writeFile(path, data);
    files.push([path, data]);
  }
  const pool = new HashWorkers(2);
  try {
    const got = await Promise.all(files.map(([p]) => pool.hashFile(p)));
    assert.deepEqual(
      got,
      files.map(([, d]) => hex('sha256', d)),
    );
    assert.equal(await pool.hashFile(files[2]![0], 'blake2b512'), hex('blake2b512', files[2]![1]));
    await assert.rejects(pool.hashFile(join(dir, 'absent')), /hashing failed: .*ENOENT/);
  } finally {
    await pool.close();
  }
});

test('a file hashed as it is written covers exactly the ranges given; a range cut short is an error', async () => {
  const dir = await tempDir();
  const pool = new HashWorkers(2);
  try {
    const path = join(dir, 'download.partial');
    await writeFile(path, '');
    const h = pool.hashWritten(path, 'blake2b512');
    const parts = [randomBytes(1000), randomBytes(5 << 20), randomBytes(7)];
    let at = 0;
    for (const part of parts) {
      await appendFile(path, part);
      h.written(at, part.length);
      at += part.length;
    }
    assert.equal(await h.digest(), hex('blake2b512', Buffer.concat(parts)));

    // A range the file does not hold (truncated under it) fails the digest, never a wrong one.
    const cut = join(dir, 'cut.partial');
    await writeFile(cut, randomBytes(100));
    const c = pool.hashWritten(cut, 'sha256');
    await truncate(cut, 10);
    c.written(0, 100);
    await assert.rejects(c.digest(), /hashing failed: the file ended at byte 10/);

    // A discarded hash frees its thread: the pool still answers.
    const d = pool.hashWritten(path, 'sha256');
    d.written(0, 10);
    d.discard();
    assert.equal(await pool.hashFile(path), hex('sha256', Buffer.concat(parts)));
  } finally {
    await pool.close();
  }
});
