import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { packImageTarball } from '../../src/core/cloud/tarball.js';
import { sparseDisk } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';
import { needTool } from '../helpers/tools.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('GNU tar packs one disk.raw, read back equal and still sparse', {
  skip: needTool('tar', 'apt-get install tar'),
}, async () => {
  const dir = await tempDir();
  const raw = await sparseDisk(dir, 'image.raw', 256 << 20, 3);
  const out = join(dir, 'image.tar.gz');
  const r = await packImageTarball(raw, out);
  assert.equal(r.method, 'gnu-tar');
  assert.ok(r.bytes < 64 * 1024, `a sparse 256 MiB disk packs small (${r.bytes} bytes)`);
  const listing = execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(listing.length, 1);
  assert.match(listing[0]!, / 268435456 .* disk\.raw$/);
  const x = join(dir, 'x');
  await mkdir(x);
  execFileSync('tar', ['-xzf', out, '-C', x]);
  const back = join(x, 'disk.raw');
  assert.equal(statSync(back).size, 256 << 20);
  assert.equal(sha(back), sha(raw));
  // Holes kept: the extracted file occupies about the data written (3 blocks of 4 KiB), not 256 MiB.
  assert.ok(
    statSync(back).blocks * 512 < 1 << 20,
    `extracted disk uses ${statSync(back).blocks * 512} bytes`,
  );
});

test('without GNU tar the npm fallback still makes a tarball GNU tar reads back (dense)', async () => {
  const dir = await tempDir();
  const raw = await sparseDisk(dir, 'image.raw', 8 << 20, 4);
  const out = join(dir, 'image.tar.gz');
  const r = await packImageTarball(raw, out, { method: 'js' });
  assert.equal(r.method, 'js');
  const listing = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim();
  assert.equal(listing, 'disk.raw');
  const x = join(dir, 'x');
  await mkdir(x);
  execFileSync('tar', ['-xzf', out, '-C', x]);
  assert.equal(sha(join(x, 'disk.raw')), sha(raw));
});

test('a missing raw disk is E_NOT_FOUND and leaves no file', async () => {
  const dir = await tempDir();
  await assert.rejects(packImageTarball(join(dir, 'nope.raw'), join(dir, 'o.tar.gz')), {
    code: 'E_NOT_FOUND',
  });
  assert.deepEqual(execFileSync('ls', ['-A', dir], { encoding: 'utf8' }).trim(), '');
});
