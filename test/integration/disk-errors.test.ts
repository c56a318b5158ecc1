/**
 * A full or read-only disk is the host's state, not a bug: typed errors naming the path, the old output
 * untouched, nothing half-written left behind. Real tmpfs mounts, so these run as root only.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { gate, needGcc } from '../helpers/tools.js';

const skip =
  gate(
    'root',
    process.getuid?.() !== 0
      ? 'mounting small tmpfs file systems needs root (run the tests as root to cover full and read-only disks)'
      : undefined,
  ) ?? needGcc();

/** A folder for one test, outside /tmp (verify mounts its own /tmp); its mounts go before it is removed. */
async function testDir(): Promise<{ dir: string; mounts: string[] }> {
  await mkdir('/var/tmp', { recursive: true });
  const made = { dir: await mkdtemp('/var/tmp/uniprove-disk-'), mounts: [] as string[] };
  after(async () => {
    for (const m of made.mounts) execFileSync('umount', [m]);
    if (!process.env.UNIPROVE_KEEP_TMP) await rm(made.dir, { recursive: true, force: true });
  });
  return made;
}

/** A small tmpfs at a fresh folder (read-only with `ro`). */
async function smallDisk(t: { dir: string; mounts: string[] }, name: string, size: string, ro = false) {
  const dir = join(t.dir, name);
  await mkdir(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `${ro ? 'ro,' : ''}size=${size}`, 'tmpfs', dir]);
  t.mounts.push(dir);
  return dir;
}

async function recipeWith(dir: string, extraBytes: number): Promise<string> {
  const recipeDir = join(dir, `recipe-${extraBytes}`);
  await mkdir(recipeDir);
  await compileC(recipeDir, 'hello', '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n');
  await writeFile(join(recipeDir, 'data.bin'), Buffer.alloc(extraBytes, 7));
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({
      name: 'hello',
      binary: './hello',
      files: [{ host: 'data.bin', guest: '/data.bin' }],
      probe: { skip: true },
    }),
  );
  return recipeDir;
}

test('package onto a full disk: E_DISK_FULL with the bytes needed, the old package untouched, no staging left', {
  skip,
}, async () => {
  const t = await testDir();
  const { dir } = t;
  // The C library alone takes 2 MiB (tmpfs is another file system: files are copied, not linked).
  const disk = await smallDisk(t, 'full', '4m');
  const out = join(disk, 'pkg');
  const small = await uniprove(['package', await recipeWith(dir, 1000), '--out', out, '-q']);
  assert.equal(small.exitCode, 0, small.stderr);
  const lockBefore = await readFile(join(out, 'uniprove.lock.json'), 'utf8');

  const big = await uniprove(['package', await recipeWith(dir, 3_000_000), '--out', out, '--json']);
  assert.equal(big.exitCode, 3, big.stderr);
  const error = parseJson<{ error: { code: string; message: string; hint: string } }>(big).error;
  assert.equal(error.code, 'E_DISK_FULL');
  assert.match(
    error.message,
    new RegExp(`no space left on the disk holding ${out}; it needs [\\d.]+ MiB, .* free`),
  );
  assert.match(error.hint, /--out DIR/);
  assert.doesNotMatch(big.stderr, /internal error| {4}at /);
  assert.equal(
    await readFile(join(out, 'uniprove.lock.json'), 'utf8'),
    lockBefore,
    'the old package is as it was',
  );
  assert.deepEqual(await readdir(disk), ['pkg'], 'no staging folder is left behind');
});

test('package onto a read-only disk: E_READ_ONLY before any work, naming the folder', { skip }, async () => {
  const t = await testDir();
  const { dir } = t;
  const disk = await smallDisk(t, 'ro', '1m', true);
  const run = await uniprove(['package', await recipeWith(dir, 10), '--out', join(disk, 'pkg')]);
  assert.equal(run.exitCode, 3, run.stderr);
  assert.match(
    run.stderr,
    /error\[E_READ_ONLY\]: cannot write the package: .*\/ro\/pkg is on a read-only file system \(access .*\/ro\)/,
  );
  assert.doesNotMatch(run.stderr, /internal error| {4}at |discover/);
  assert.deepEqual(await readdir(disk), []);
});

test('volume import --out on a read-only disk: E_READ_ONLY naming the set file', { skip }, async () => {
  const t = await testDir();
  const { dir } = t;
  const disk = await smallDisk(t, 'ro', '1m', true);
  const params = join(dir, 'params');
  await mkdir(params);
  await writeFile(join(params, 'a.params'), 'x');
  const run = await uniprove(['volume', 'import', params, '--out', join(disk, 'set.json')]);
  assert.equal(run.exitCode, 3, run.stderr);
  assert.match(run.stderr, /error\[E_READ_ONLY\]: cannot write the set file/);
});

test('run --out on a read-only disk: E_READ_ONLY naming the run record, before anything is built', {
  skip,
}, async () => {
  const t = await testDir();
  const disk = await smallDisk(t, 'ro', '1m', true);
  const run = await uniprove(['run', 'demo', '--out', join(disk, 'runs', 'one')]);
  assert.equal(run.exitCode, 3, run.stderr);
  assert.match(
    run.stderr,
    /error\[E_READ_ONLY\]: cannot write the run record: .*\/ro\/runs\/one is on a read-only/,
  );
  assert.doesNotMatch(run.stderr, /internal error| {4}at /);
});

test('volume fetch into a full cache: E_DISK_FULL with the bytes the file needs, no partial file kept', {
  skip,
}, async () => {
  const t = await testDir();
  const params = join(t.dir, 'params');
  await mkdir(params);
  await writeFile(join(params, 'big.params'), Buffer.alloc(3_000_000, 1));
  const setFile = join(t.dir, 'set.json');
  const imported = await uniprove(['volume', 'import', params, '--out', setFile]);
  assert.equal(imported.exitCode, 0, imported.stderr);
  const cache = await smallDisk(t, 'cache', '1m');
  const run = await uniprove(['volume', 'fetch', setFile, '--json'], { env: { UNIPROVE_CACHE: cache } });
  assert.equal(run.exitCode, 3, run.stderr);
  const error = parseJson<{ error: { code: string; message: string } }>(run).error;
  assert.equal(error.code, 'E_DISK_FULL');
  assert.match(error.message, /no space left on the disk holding .*; it needs 2\.9 MiB/);
  const left = execFileSync('find', [cache, '-type', 'f'], { encoding: 'utf8' });
  assert.equal(left, '', 'no partial file is left in the cache');
});

test('an --out whose name is too long for the file system: E_NAME_TOO_LONG before any work', async () => {
  const dir = await mkdtemp('/tmp/uniprove-disk-');
  after(() => rm(dir, { recursive: true, force: true }));
  const run = await uniprove(['package', 'demo', '--out', join(dir, 'n'.repeat(300), 'pkg')]);
  assert.equal(run.exitCode, 2, run.stderr);
  assert.match(
    run.stderr,
    /error\[E_NAME_TOO_LONG\]: cannot write the package: the name n+… in .* has 300 bytes/,
  );
  assert.doesNotMatch(run.stderr, /build|discover/);
});
