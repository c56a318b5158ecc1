import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain } from '../../src/core/discover/why.js';
import type { FileReasons } from '../../src/core/reasons.js';

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
