/**
 * A package never writes through to the host's files: every file of a package is its own inode (a copy or a
 * reflink of its source, never a hard link), so writing into the package leaves the program, its libraries,
 * the recipe's files and the host's C library as they were.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildPluginFixture } from '../helpers/plugin-fixture.js';
import { tempDirOutsideTmp } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

const skip =
  needGcc() ??
  needTool('strace', 'apt-get install strace') ??
  needTool('bwrap', 'apt-get install bubblewrap');

interface LockEntry {
  path: string;
  type: string;
  sha256?: string;
  mode?: string;
  source?: string;
}

interface Packaged {
  changed: boolean;
  warnings: { code: string; message: string; path?: string }[];
}

/** A program whose libraries (a dlopened plugin and what it needs) and files are all in a temp folder. */
async function setup() {
  const dir = await tempDirOutsideTmp();
  const fx = await buildPluginFixture(join(dir, 'src'));
  const recipeDir = join(dir, 'recipe');
  await mkdir(join(recipeDir, 'data', 'sub'), { recursive: true });
  await writeFile(join(recipeDir, 'params.bin'), randomBytes(64 << 10), { mode: 0o640 });
  await writeFile(join(recipeDir, 'data', 'a.txt'), 'a\n', { mode: 0o600 });
  await writeFile(join(recipeDir, 'data', 'sub', 'b.bin'), randomBytes(4096), { mode: 0o755 });
  await writeFile(
    join(recipeDir, 'recipe.json'),
    JSON.stringify({
      name: 'nolink',
      binary: fx.main,
      files: [{ host: 'params.bin', guest: '/params.bin' }],
      dirs: [{ host: 'data', guest: '/data' }],
    }),
  );
  return { dir, fx, recipeDir, out: join(dir, 'pkg') };
}

async function packageJson(recipeDir: string, out: string): Promise<Packaged> {
  const r = await uniprove(['package', recipeDir, '--out', out, '--json']);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  return parseJson<Packaged>(r);
}

async function lockFiles(out: string): Promise<(LockEntry & { source: string })[]> {
  const lock = JSON.parse(await readFile(join(out, 'uniprove.lock.json'), 'utf8')) as { files: LockEntry[] };
  return lock.files.filter((f): f is LockEntry & { source: string } => f.type === 'file' && !!f.source);
}

/** Every staged file is its own inode: not its source's (st_dev and st_ino), and linked nowhere else. */
async function assertOwnInodes(out: string, files: (LockEntry & { source: string })[]): Promise<void> {
  for (const f of files) {
    const [copy, source] = await Promise.all([lstat(join(out, f.path)), stat(f.source)]);
    assert.ok(
      !(copy.dev === source.dev && copy.ino === source.ino),
      `${f.path} in the package is ${f.source} itself (dev ${copy.dev}, inode ${copy.ino})`,
    );
    assert.equal(copy.nlink, 1, `${f.path} in the package has ${copy.nlink} links`);
    assert.equal((copy.mode & 0o7777).toString(8).padStart(4, '0'), f.mode, `${f.path}: the source's mode`);
  }
}

/** Each package file holds the bytes and mode its lock entry records. */
async function assertAsLocked(out: string, files: LockEntry[]): Promise<void> {
  for (const f of files) {
    const bytes = await readFile(join(out, f.path));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), f.sha256, `${f.path}: the locked bytes`);
    const mode = ((await stat(join(out, f.path))).mode & 0o7777).toString(8).padStart(4, '0');
    assert.equal(mode, f.mode, `${f.path}: the locked mode`);
  }
}

test('writes into every file of a package leave the sources as they were, byte for byte and mode for mode', {
  skip,
}, async () => {
  const { fx, recipeDir, out } = await setup();
  await packageJson(recipeDir, out);
  const files = await lockFiles(out);
  const sources = new Set(files.map((f) => f.source));
  for (const host of [fx.main, fx.plugin, fx.dep, join(recipeDir, 'params.bin')]) {
    assert.ok(sources.has(host), `${host} is packaged: ${[...sources].join(' ')}`);
  }
  assert.ok(
    files.some((f) => /\/libc\.so\.6$/.test(f.path)),
    'the host C library is packaged too',
  );
  // Checked before anything is written: a write below goes into the package's own inode only.
  await assertOwnInodes(out, files);

  const before = new Map<string, { bytes: Buffer; mode: number }>();
  for (const s of sources) before.set(s, { bytes: await readFile(s), mode: (await stat(s)).mode });
  for (const f of files) {
    const path = join(out, f.path);
    const size = (await stat(path)).size;
    const handle = await open(path, 'r+');
    try {
      const at = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0xff;
      await handle.write(byte, 0, 1, at);
    } finally {
      await handle.close();
    }
    await chmod(path, ((await stat(path)).mode & 0o777) === 0o600 ? 0o644 : 0o600);
    await truncate(path, Math.floor(size / 3));
  }
  for (const [s, was] of before) {
    const now = { bytes: await readFile(s), mode: (await stat(s)).mode };
    assert.ok(now.bytes.equals(was.bytes), `${s} changed when the package's copy was written`);
    assert.equal(now.mode.toString(8), was.mode.toString(8), `${s}: its mode changed`);
  }

  // The next package sees every changed copy, copies it again and says so; the one after does nothing.
  const again = await packageJson(recipeDir, out);
  assert.equal(again.changed, true);
  const changed = again.warnings.find((w) => w.code === 'package-file-changed');
  assert.match(changed?.message ?? '', new RegExp(`^${files.length} files of the package changed`));
  await assertAsLocked(out, files);
  await assertOwnInodes(out, files);
  const third = await packageJson(recipeDir, out);
  assert.equal(third.changed, false);
  assert.deepEqual(
    third.warnings.filter((w) => w.code.startsWith('package-')),
    [],
  );
});

test('a package an older uniprove hard-linked gets copies the first time, and says so', {
  skip,
}, async () => {
  const { dir, recipeDir, out } = await setup();
  await packageJson(recipeDir, out);
  const files = await lockFiles(out);
  // What an older uniprove left: the temp folder's files hard-linked in, and a state without copy stamps.
  const linked = files.filter((f) => f.source.startsWith(`${dir}/`));
  assert.ok(linked.length >= 5, `the fixture's files: ${linked.map((f) => f.path).join(' ')}`);
  for (const f of linked) {
    await rm(join(out, f.path));
    await link(f.source, join(out, f.path));
  }
  const statePath = join(out, '.uniprove', 'state.json');
  const { tree: _, ...older } = JSON.parse(await readFile(statePath, 'utf8'));
  await writeFile(statePath, JSON.stringify(older));

  const human = await uniprove(['package', recipeDir, '--out', out]);
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(
    human.stderr,
    new RegExp(
      `warning: ${linked.length} files were hard links to the host's own .*replaced with copies \\[package-hardlinks-replaced\\]`,
    ),
  );
  assert.match(human.stdout, /^packaged: /m);
  await assertOwnInodes(out, files);
  await assertAsLocked(out, files);
  const next = await packageJson(recipeDir, out);
  assert.equal(next.changed, false);
  assert.deepEqual(
    next.warnings.filter((w) => w.code.startsWith('package-')),
    [],
  );
});

test('a rebuild copies only what changed: an unchanged copy keeps its inode, a no-op touches none', {
  skip,
}, async () => {
  const { recipeDir, out } = await setup();
  await packageJson(recipeDir, out);
  const files = await lockFiles(out);
  const inodes = async () =>
    new Map(
      await Promise.all(files.map(async (f) => [f.path, (await lstat(join(out, f.path))).ino] as const)),
    );
  const first = await inodes();
  assert.equal((await packageJson(recipeDir, out)).changed, false);
  assert.deepEqual(await inodes(), first, 'a no-op rebuild copies nothing');

  await writeFile(join(recipeDir, 'params.bin'), randomBytes(64 << 10));
  assert.equal((await packageJson(recipeDir, out)).changed, true);
  const second = await inodes();
  for (const f of files) {
    if (f.path === '/params.bin') assert.notEqual(second.get(f.path), first.get(f.path), f.path);
    else assert.equal(second.get(f.path), first.get(f.path), `${f.path} is placed again, not copied`);
  }
  await assertOwnInodes(out, await lockFiles(out));
  await assertAsLocked(out, await lockFiles(out));
});
