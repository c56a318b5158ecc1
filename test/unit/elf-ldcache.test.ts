import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { execa } from 'execa';
import { lookupLdCache, parseLdSoCache, readLdSoCache } from '../../src/core/elf/index.js';
import { findTool } from '../helpers/tools.js';

const ldconfig = findTool('ldconfig') ?? '/usr/sbin/ldconfig';

test('the real /etc/ld.so.cache reads the same soname -> path pairs as `ldconfig -p`', async () => {
  const cache = await readLdSoCache('/etc/ld.so.cache');
  assert.deepEqual(cache.problems, []);
  const { stdout } = await execa(ldconfig, ['-p']);
  const expected = stdout
    .split('\n')
    .slice(1)
    .map((line) => /^\s+(\S+) \(.*\) => (.+)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => `${m[1]} ${m[2]}`);
  assert.ok(expected.length > 20, 'ldconfig -p listed too few entries to compare');
  assert.deepEqual(
    cache.entries.map((e) => `${e.key} ${e.value}`),
    expected,
  );
  const libc = lookupLdCache(cache, 'libc.so.6', [0x0303], ['x86-64-v4', 'x86-64-v3', 'x86-64-v2']);
  assert.match(libc ?? '', /\/libc\.so\.6$/);
  // Flags of another arch (i386 = 3) do not match the x86_64 entries.
  assert.equal(lookupLdCache(cache, 'libc.so.6', [0x0003], []), undefined);
});

test('the old ld.so-1.7.0 header wrapping the new format is accepted', async () => {
  const fresh = await readFile('/etc/ld.so.cache');
  const old = Buffer.alloc(16);
  old.write('ld.so-1.7.0', 0, 'latin1');
  old.writeUInt32LE(0, 12);
  const wrapped = parseLdSoCache(Buffer.concat([old, fresh]), 'wrapped');
  assert.equal(wrapped.format, 'old+new');
  assert.deepEqual(wrapped.problems, []);
  assert.deepEqual(wrapped.entries, parseLdSoCache(fresh).entries);
});

test('bad caches become problems, never exceptions', async () => {
  const fresh = await readFile('/etc/ld.so.cache');
  const cases: [string, Buffer][] = [
    ['garbage', Buffer.from('this is not a cache at all')],
    ['empty', Buffer.alloc(0)],
    ['header only', fresh.subarray(0, 30)],
    ['cut table', fresh.subarray(0, 200)],
    ['old magic only', Buffer.from('ld.so-1.7.0')],
  ];
  // Strings pointing past the end: keep the table, cut the string area.
  const tableEnd = 48 + fresh.readUInt32LE(20) * 24;
  cases.push(['cut strings', fresh.subarray(0, tableEnd + 10)]);
  for (const [name, buf] of cases) {
    const cache = parseLdSoCache(buf, name);
    assert.ok(cache.problems.length > 0, `${name}: expected a problem`);
    for (const e of cache.entries) assert.equal(typeof e.value, 'string');
  }
  const missing = await readLdSoCache('/nonexistent/ld.so.cache');
  assert.equal(missing.entries.length, 0);
  assert.match(missing.problems[0] ?? '', /ENOENT/);
});
