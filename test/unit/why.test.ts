import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain } from '../../src/core/discover/why.js';
import { addReasons, type FileReasons, type Reason } from '../../src/core/reasons.js';

const files: FileReasons[] = [
  { path: '/app', reasons: ['explicit'], parents: [] },
  { path: '/lib/libc.so.6', reasons: ['elf-needed'], parents: ['/app', '/lib/libplug.so'] },
  { path: '/lib/libplug.so', reasons: ['dlopen'], parents: ['/app'] },
  {
    path: '/lib/libdep.so.1',
    reasons: ['elf-needed'],
    parents: ['/lib/libplug.so'],
    chain: ['/lib/libdep.so.1', '/lib/libdep.so.1.2.3'],
  },
  { path: '/usr/lib/gconv/UTF-16.so', reasons: ['config-family'], parents: ['/usr/lib/gconv/gconv-modules'] },
];

test('why walks parents up to the program', () => {
  const r = explain(files, 'libdep.so.1');
  assert.equal(r.path, '/lib/libdep.so.1');
  assert.deepEqual(
    r.chains[0]?.map((s) => s.path),
    ['/app', '/lib/libplug.so', '/lib/libdep.so.1'],
  );
  assert.deepEqual(
    r.chains[0]?.map((s) => s.reasons[0]),
    ['explicit', 'dlopen', 'elf-needed'],
  );
});

test('why finds a file by a symlink name and lists every way it was pulled in', () => {
  assert.equal(explain(files, '/lib/libdep.so.1.2.3').path, '/lib/libdep.so.1');
  const libc = explain(files, 'libc.so.6');
  assert.equal(libc.chains.length, 2);
  assert.deepEqual(
    libc.chains[0]?.map((s) => s.path),
    ['/app', '/lib/libc.so.6'],
  );
});

test('a parent outside the closure (a family config) starts the chain', () => {
  const r = explain(files, 'UTF-16.so');
  assert.deepEqual(
    r.chains[0]?.map((s) => s.path),
    ['/usr/lib/gconv/gconv-modules', '/usr/lib/gconv/UTF-16.so'],
  );
});

test('a file not in the closure is a clear error', () => {
  assert.throws(() => explain(files, 'libnothere.so'), /not in this closure/);
});

test('a plan and its lock explain a file in the words discovery gave it', async () => {
  const { planPackage } = await import('../../src/core/package/plan.js');
  const { buildLock } = await import('../../src/core/package/stage.js');
  const discovered = files.map((f) => ({ ...f, chain: f.chain ?? [f.path], isElf: false }));
  const plan = await planPackage(discovered, '/');
  const stamps = Object.fromEntries(
    plan.entries.flatMap((e) =>
      e.type === 'file' ? [[e.source, { size: 1, mtimeMs: 0, ino: 0, sha256: '0'.repeat(64) }]] : [],
    ),
  );
  const lock = buildLock('t', '/app', { kind: 'none' }, plan, stamps, new Map());
  const fromLock = explain(lock.files, 'libdep.so.1');
  assert.deepEqual(fromLock, explain(files, 'libdep.so.1'));
  // The link's target is in the lock as the file a symlink leads to.
  assert.deepEqual(explain(lock.files, '/lib/libdep.so.1.2.3').chains[0]?.at(-1), {
    path: '/lib/libdep.so.1.2.3',
    reasons: ['symlink-target'],
  });
});

test('addReasons keeps each reason and parent once, in the order first seen', () => {
  const file = { reasons: ['dlopen'] as Reason[], parents: ['/app'] };
  addReasons(file, ['elf-needed', 'dlopen'], ['/lib/a.so', '/app']);
  assert.deepEqual(file, { reasons: ['dlopen', 'elf-needed'], parents: ['/app', '/lib/a.so'] });
});
