import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseElf, parseElfBuffer } from '../../src/core/elf/index.js';
import { isUniproveError } from '../../src/core/errors.js';
import { buildElf } from '../helpers/elf.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isUniproveError(error), `not a UniproveError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(`${error.message}\n${error.hint ?? ''}`, pattern);
    return true;
  });
}

test('reads class, machine, interpreter, DT_NEEDED, SONAME, RPATH and RUNPATH of gcc output', {
  skip: needGcc(),
}, async () => {
  const dir = await tempDir();
  const lib = await compileC(dir, 'libbar.so', 'int bar(void){return 1;}', [
    '-shared',
    '-fPIC',
    '-Wl,-soname,libbar.so.7',
    '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib:/opt/x',
  ]);
  const exe = await compileC(dir, 'app', 'int bar(void); int main(void){return bar();}', [
    '-Wl,--no-as-needed',
    `-L${dir}`,
    '-l:libbar.so',
    '-lm',
    '-Wl,--disable-new-dtags,-rpath,/first:/second',
  ]);
  const libInfo = await parseElf(lib);
  assert.equal(libInfo.soname, 'libbar.so.7');
  assert.deepEqual(libInfo.runpath, ['$ORIGIN/../lib', '/opt/x']);
  assert.deepEqual(libInfo.rpath, []);
  assert.equal(libInfo.type, 'dyn');
  assert.equal(libInfo.isPie, false);
  assert.equal(libInfo.interp, undefined);

  const info = await parseElf(exe);
  assert.equal(info.class, 64);
  assert.equal(info.endianness, 'little');
  assert.equal(info.machineName, 'x86_64');
  assert.equal(info.machine, 62);
  assert.equal(info.interp, '/lib64/ld-linux-x86-64.so.2');
  assert.deepEqual(info.needed, ['libbar.so.7', 'libm.so.6', 'libc.so.6']);
  assert.deepEqual(info.rpath, ['/first', '/second']);
  assert.deepEqual(info.runpath, []);
  assert.equal(info.isPie, true);
  // The buffer parser agrees with the positional-read parser.
  assert.deepEqual(parseElfBuffer(await readFile(exe), exe), info);

  const pde = await compileC(dir, 'static', 'int main(void){return 0;}', ['-static', '-no-pie']);
  const st = await parseElf(pde);
  assert.equal(st.type, 'exec');
  assert.equal(st.dynamic, false);
  assert.equal(st.interp, undefined);
  assert.deepEqual(st.needed, []);
});

test('hand-built ELF32 and big-endian ELF64 images parse, both byte orders', () => {
  for (const cls of [32, 64] as const) {
    for (const endianness of ['little', 'big'] as const) {
      const buf = buildElf({
        class: cls,
        endianness,
        machine: cls === 32 ? 3 : 22,
        interp: '/lib/ld.so.1',
        needed: ['liba.so.1', 'libb.so.2'],
        soname: 'libself.so.3',
        rpath: '/r1:/r2',
        runpath: '$ORIGIN',
      });
      const info = parseElfBuffer(buf, `x${cls}${endianness}`);
      assert.equal(info.class, cls);
      assert.equal(info.endianness, endianness);
      assert.equal(info.machineName, cls === 32 ? 'i386' : 's390');
      assert.equal(info.interp, '/lib/ld.so.1');
      assert.deepEqual(info.needed, ['liba.so.1', 'libb.so.2']);
      assert.equal(info.soname, 'libself.so.3');
      assert.deepEqual(info.rpath, ['/r1', '/r2']);
      assert.deepEqual(info.runpath, ['$ORIGIN']);
    }
  }
});

test('a real binary cut at many offsets gives E_ELF_TRUNCATED (or E_NOT_ELF when the magic is cut), never a crash', async () => {
  const whole = await readFile('/bin/ls');
  const info = parseElfBuffer(whole);
  const dir = await tempDir();
  const cuts = [0, 3, 10, 40, 63, 64, 100, 300, 700, 1000, 4096];
  for (const cut of cuts) {
    const path = join(dir, `cut-${cut}`);
    await writeFile(path, whole.subarray(0, cut));
    try {
      const got = await parseElf(path);
      // A cut past everything the reader needs is still readable.
      assert.deepEqual(got.needed, info.needed, `cut at ${cut}`);
    } catch (error) {
      assert.ok(isUniproveError(error), `cut at ${cut}: ${String(error)}`);
      assert.equal(error.code, cut < 4 ? 'E_NOT_ELF' : 'E_ELF_TRUNCATED', `cut at ${cut}: ${error.message}`);
      if (error.code === 'E_ELF_TRUNCATED') assert.match(error.message, /truncated/);
    }
  }
  // Cutting inside the program headers must fail: they are needed.
  await writeFile(join(dir, 'cut-ph'), whole.subarray(0, 200));
  await rejectsWith(parseElf(join(dir, 'cut-ph')), 'E_ELF_TRUNCATED', /program headers/);
});

test('not-ELF inputs get typed errors that say what to do', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'text'), 'hello, this is text\n');
  await rejectsWith(parseElf(join(dir, 'text')), 'E_NOT_ELF', /not an ELF file/);
  await writeFile(join(dir, 'python'), '#!/usr/bin/env bash\nexec pyenv exec python "$@"\n');
  await rejectsWith(
    parseElf(join(dir, 'python')),
    'E_NOT_ELF',
    /script \(#!\/usr\/bin\/env bash\)[\s\S]*real program/,
  );
  await rejectsWith(parseElf(dir), 'E_IS_DIRECTORY');
  await rejectsWith(parseElf(join(dir, 'missing')), 'E_NOT_FOUND');
  await writeFile(join(dir, 'empty'), '');
  await rejectsWith(parseElf(join(dir, 'empty')), 'E_NOT_ELF');
  const core = buildElf({ class: 64, endianness: 'little', machine: 62, type: 4 });
  await writeFile(join(dir, 'core'), core);
  await rejectsWith(parseElf(join(dir, 'core')), 'E_ELF_UNSUPPORTED', /core dump/);
});

test('a foreign-architecture copy reports its machine', async () => {
  const dir = await tempDir();
  const path = join(dir, 'ls-aarch64');
  await copyFile('/bin/ls', path);
  const buf = await readFile(path);
  buf.writeUInt16LE(183, 18);
  await writeFile(path, buf);
  const info = await parseElf(path);
  assert.equal(info.machineName, 'aarch64');
  assert.ok(info.needed.includes('libc.so.6'));
});
