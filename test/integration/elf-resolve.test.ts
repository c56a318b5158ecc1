import assert from 'node:assert/strict';
import { copyFile, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { addToClosure, type ClosureResult, parseElf, resolveClosure } from '../../src/core/elf/index.js';
import { buildElf } from '../helpers/elf.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { findTool, needGcc, needTool } from '../helpers/tools.js';

const skip = needGcc() ?? needTool('ldd', 'apt-get install libc-bin');

/** The libraries ldd lists (realpath-normalised), plus the names it could not find. */
async function lddSet(path: string, env: Record<string, string> = {}) {
  const run = await execa('ldd', [path], { reject: false, env: { LD_LIBRARY_PATH: '', ...env } });
  if (run.exitCode !== 0 || /not a dynamic executable|statically linked/.test(run.stdout)) return undefined;
  const paths = new Set<string>();
  const missing = new Set<string>();
  for (const line of run.stdout.split('\n')) {
    const found = /^\s*(?:\S+ => )?(\/\S+) \(0x/.exec(line);
    const notFound = /^\s*(\S+) => not found/.exec(line);
    if (found?.[1]) paths.add(await realpath(found[1]));
    else if (notFound?.[1]) missing.add(notFound[1]);
  }
  return { paths, missing };
}

async function oursSet(result: ClosureResult) {
  const paths = new Set(result.files.filter((f) => !f.reasons.includes('explicit')).map((f) => f.realPath));
  const missing = new Set(
    result.warnings.filter((w) => w.code === 'unresolved-needed').map((w) => w.path ?? ''),
  );
  return { paths, missing };
}

const byName = (result: ClosureResult, name: string) => result.files.find((f) => f.needed === name);

test('gcc fixtures: RPATH, RUNPATH, $ORIGIN, SONAME chains, inherited RPATH, LD_LIBRARY_PATH, all as ldd sees them', {
  skip,
}, async () => {
  const dir = await realpath(await tempDir());
  const d = (...p: string[]) => join(dir, ...p);
  for (const sub of ['lib', 'libB', 'dep', 'mid', 'origin/sub', 'gone', 'wrong'])
    await mkdir(d(sub), { recursive: true });

  // libfoo with a versioned SONAME chain, in two builds (lib and libB) to tell them apart.
  for (const [sub, value] of [
    ['lib', 1],
    ['libB', 2],
  ] as const) {
    await compileC(d(sub), 'libfoo.so.1.2.3', `int foo(void){return ${value};}`, [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libfoo.so.1',
    ]);
    await symlink('libfoo.so.1.2.3', d(sub, 'libfoo.so.1'));
    await symlink('libfoo.so.1', d(sub, 'libfoo.so'));
  }
  // A 32-bit library of the same name, which glibc skips.
  await writeFile(
    d('wrong', 'libfoo.so.1'),
    buildElf({ class: 32, endianness: 'little', machine: 3, soname: 'libfoo.so.1' }),
  );
  await compileC(d('dep'), 'libdep.so', 'int dep(void){return 3;}', ['-shared', '-fPIC']);
  // libmid needs libdep but has no RUNPATH/RPATH: it can only find it through its loader's RPATH.
  await compileC(d('mid'), 'libmid.so', 'int dep(void); int mid(void){return dep();}', [
    '-shared',
    '-fPIC',
    `-L${d('dep')}`,
    '-ldep',
  ]);
  await compileC(d('origin/sub'), 'libsub.so', 'int sub(void){return 4;}', ['-shared', '-fPIC']);
  await compileC(d('origin'), 'libo.so', 'int sub(void); int o(void){return sub();}', [
    '-shared',
    '-fPIC',
    `-L${d('origin/sub')}`,
    '-lsub',
    '-Wl,--enable-new-dtags,-rpath,$ORIGIN/sub',
  ]);
  await compileC(d('gone'), 'libgone.so', 'int gone(void){return 5;}', ['-shared', '-fPIC']);

  const main =
    'int foo(void); int mid(void); int o(void); int gone(void); int main(void){return foo()+mid()+o()+gone();}';
  const link = [
    `-L${d('lib')}`,
    '-lfoo',
    `-L${d('mid')}`,
    '-lmid',
    `-L${d('origin')}`,
    '-lo',
    `-L${d('gone')}`,
    '-lgone',
  ];
  const rpathExe = await compileC(dir, 'app-rpath', main, [
    ...link,
    `-Wl,--disable-new-dtags,-rpath,${d('lib')}:${d('dep')}:${d('mid')}:${d('origin')}`,
  ]);
  const runpathExe = await compileC(dir, 'app-runpath', main, [
    ...link,
    `-Wl,--enable-new-dtags,-rpath,${d('lib')}:${d('dep')}:${d('mid')}:${d('origin')}`,
  ]);
  await rm(d('gone', 'libgone.so'));
  assert.deepEqual((await parseElf(rpathExe)).rpath.length, 4);
  assert.deepEqual((await parseElf(runpathExe)).runpath.length, 4);

  const check = async (exe: string, ldLibraryPath: string[]) => {
    const ours = await resolveClosure({ binaries: [exe], ldLibraryPath });
    const theirs = await lddSet(exe, { LD_LIBRARY_PATH: ldLibraryPath.join(':') });
    assert.ok(theirs, `ldd failed on ${exe}`);
    const mine = await oursSet(ours);
    assert.deepEqual(
      [...mine.paths].sort(),
      [...theirs.paths].sort(),
      `${exe} with LD_LIBRARY_PATH=${ldLibraryPath}`,
    );
    assert.deepEqual([...mine.missing].sort(), [...theirs.missing].sort());
    return ours;
  };

  // RPATH: libfoo from lib/ via the versioned chain; libdep through the executable's RPATH.
  const r1 = await check(rpathExe, []);
  const foo = byName(r1, 'libfoo.so.1');
  assert.equal(foo?.path, d('lib', 'libfoo.so.1'));
  assert.equal(foo?.realPath, d('lib', 'libfoo.so.1.2.3'));
  assert.deepEqual(foo?.symlinks, [d('lib', 'libfoo.so.1')]);
  assert.equal(foo?.soname, 'libfoo.so.1');
  assert.deepEqual(byName(r1, 'libdep.so')?.parents, [d('mid', 'libmid.so')]);
  assert.equal(byName(r1, 'libsub.so')?.path, d('origin', 'sub', 'libsub.so'));
  const dangling = r1.warnings.find((w) => w.code === 'unresolved-needed');
  assert.equal(dangling?.path, 'libgone.so');
  assert.equal(dangling?.parent, rpathExe);
  const interp = r1.files.find((f) => f.reasons.includes('interp'));
  assert.equal(interp?.path, '/lib64/ld-linux-x86-64.so.2');
  assert.deepEqual(interp?.parents[0], rpathExe);

  // RPATH beats LD_LIBRARY_PATH.
  const r2 = await check(rpathExe, [d('libB')]);
  assert.equal(byName(r2, 'libfoo.so.1')?.path, d('lib', 'libfoo.so.1'));

  // RUNPATH: LD_LIBRARY_PATH comes first; RUNPATH is not inherited, so libdep is missing.
  const r3 = await check(runpathExe, [d('wrong'), d('libB')]);
  assert.equal(byName(r3, 'libfoo.so.1')?.path, d('libB', 'libfoo.so.1'));
  assert.ok(r3.warnings.some((w) => w.code === 'wrong-class' && w.path === d('wrong', 'libfoo.so.1')));
  assert.ok(
    r3.warnings.some(
      (w) => w.code === 'unresolved-needed' && w.path === 'libdep.so' && w.parent === d('mid', 'libmid.so'),
    ),
  );
  const r4 = await check(runpathExe, []);
  assert.equal(byName(r4, 'libfoo.so.1')?.path, d('lib', 'libfoo.so.1'));

  // A plugin found at run time joins the closure: libfoo is already there, libextra is new.
  await mkdir(d('plug'));
  await compileC(d('plug'), 'libextra.so', 'int extra(void){return 6;}', ['-shared', '-fPIC']);
  await compileC(
    d('plug'),
    'libplug.so',
    'int foo(void); int extra(void); int plug(void){return foo()+extra();}',
    [
      '-shared',
      '-fPIC',
      '-Wl,--no-as-needed',
      `-L${d('lib')}`,
      '-lfoo',
      `-L${d('plug')}`,
      '-lextra',
      '-Wl,--enable-new-dtags,-rpath,$ORIGIN',
    ],
  );
  const grown = await addToClosure(r1, [
    { path: d('plug', 'libplug.so'), reason: 'dlopen', parent: rpathExe },
  ]);
  assert.deepEqual(grown.files.find((f) => f.path === d('plug', 'libplug.so'))?.reasons, ['dlopen']);
  assert.deepEqual(byName(grown, 'libextra.so')?.parents, [d('plug', 'libplug.so')]);
  assert.equal(grown.files.filter((f) => f.realPath === d('lib', 'libfoo.so.1.2.3')).length, 1);
  assert.ok(byName(grown, 'libfoo.so.1')?.parents.includes(d('plug', 'libplug.so')));

  // Two programs in one closure: files merge, parents accumulate.
  const both = await resolveClosure({ binaries: [rpathExe, runpathExe] });
  const libfoo = both.files.filter((f) => f.realPath === d('lib', 'libfoo.so.1.2.3'));
  assert.equal(libfoo.length, 1);
  assert.deepEqual(libfoo[0]?.parents.sort(), [rpathExe, runpathExe].sort());
});

test('agrees with ldd on 50+ programs and libraries of this host', { skip }, async () => {
  const { readdir } = await import('node:fs/promises');
  const pick = async (folder: string, filter: (n: string) => boolean, count: number) => {
    const names = (await readdir(folder)).filter(filter).sort();
    const out: string[] = [];
    for (const name of names) {
      if (out.length >= count) break;
      const path = join(folder, name);
      try {
        const info = await parseElf(path);
        if (info.dynamic && info.needed.length > 0) out.push(path);
      } catch {
        // Scripts and other files are not candidates.
      }
    }
    return out;
  };
  const candidates = [
    ...(await pick('/usr/bin', () => true, 45)),
    ...(await pick('/usr/lib/x86_64-linux-gnu', (n) => /\.so\.\d+$/.test(n), 30)),
  ];
  let compared = 0;
  const failures: string[] = [];
  const queue = [...candidates];
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      for (let path = queue.shift(); path; path = queue.shift()) {
        const theirs = await lddSet(path);
        if (!theirs) continue;
        const ours = await oursSet(await resolveClosure({ binaries: [path] }));
        const info = await parseElf(path);
        if (!info.interp) {
          // ld.so is always in ldd's list, loaded or not; only compare it when something needs it.
          for (const p of theirs.paths) if (/ld-linux/.test(p) && !ours.paths.has(p)) theirs.paths.delete(p);
        }
        compared++;
        const a = [...ours.paths].sort().join('\n');
        const b = [...theirs.paths].sort().join('\n');
        if (a !== b || [...ours.missing].sort().join() !== [...theirs.missing].sort().join()) {
          failures.push(`${path}\n ours: ${a.replaceAll('\n', ' ')}\n ldd:  ${b.replaceAll('\n', ' ')}`);
        }
      }
    }),
  );
  assert.deepEqual(failures, []);
  assert.ok(compared >= 50, `only ${compared} files could be compared with ldd`);
});

test('resolving inside a root uses only the root: its ld.so.cache, re-rooted absolute links', {
  skip: skip ?? needTool('ldconfig', 'apt-get install libc-bin'),
}, async () => {
  const base = await realpath(await tempDir());
  const root = join(base, 'root');
  const r = (...p: string[]) => join(root, ...p);
  for (const sub of ['usr/bin', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'opt/foo', 'etc'])
    await mkdir(r(sub), { recursive: true });
  await symlink('usr/lib', r('lib'));
  await symlink('usr/lib64', r('lib64'));
  // An absolute link: must land inside the root, not on the host's loader.
  await symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', r('usr/lib64/ld-linux-x86-64.so.2'));
  await copyFile(
    '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    r('usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'),
  );
  await copyFile('/lib/x86_64-linux-gnu/libc.so.6', r('usr/lib/x86_64-linux-gnu/libc.so.6'));
  // libfoo only in /opt/foo, known to the root's ld.so.cache.
  await compileC(r('opt/foo'), 'libfoo.so.1', 'int foo(void){return 1;}', [
    '-shared',
    '-fPIC',
    '-Wl,-soname,libfoo.so.1',
  ]);
  await writeFile(r('etc/ld.so.conf'), '/opt/foo\n');
  const host = await tempDir();
  // libz is on the host but not in the root: it must stay unresolved.
  await compileC(host, 'app', 'int foo(void); int main(void){return foo();}', [
    '-Wl,--no-as-needed',
    `-L${r('opt/foo')}`,
    '-l:libfoo.so.1',
    '-lz',
  ]);
  await copyFile(join(host, 'app'), r('usr/bin/app'));
  await execa(findTool('ldconfig')!, ['-r', root]);

  const result = await resolveClosure({ root, binaries: ['/usr/bin/app'] });
  const paths = result.files.map((f) => [f.path, f.realPath]);
  assert.deepEqual(
    paths.sort(),
    [
      ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
      ['/lib64/ld-linux-x86-64.so.2', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'],
      ['/opt/foo/libfoo.so.1', '/opt/foo/libfoo.so.1'],
      ['/usr/bin/app', '/usr/bin/app'],
    ].sort(),
  );
  const interp = result.files.find((f) => f.reasons.includes('interp'));
  assert.deepEqual(interp?.symlinks, ['/lib64', '/usr/lib64/ld-linux-x86-64.so.2', '/lib']);
  assert.ok(result.warnings.some((w) => w.code === 'unresolved-needed' && w.path === 'libz.so.1'));

  // Without the cache, libfoo is not in a default dir and is not found.
  const noCache = await resolveClosure({ root, binaries: ['/usr/bin/app'], ldSoCache: false });
  assert.ok(noCache.warnings.some((w) => w.code === 'unresolved-needed' && w.path === 'libfoo.so.1'));

  // A link that climbs out of the root is reported and kept inside.
  await symlink('../../../../../../../../usr/bin/app', r('usr/bin/escape'));
  const escaped = await resolveClosure({ root, binaries: ['/usr/bin/escape'] });
  assert.equal(escaped.files[0]?.realPath, '/usr/bin/app');
  assert.ok(escaped.warnings.some((w) => w.code === 'symlink-escape' && w.path === '/usr/bin/escape'));
});

test('a foreign-architecture program gets typed warnings, not host libraries', async () => {
  const dir = await tempDir();
  const { readFile } = await import('node:fs/promises');
  const buf = await readFile('/bin/ls');
  buf.writeUInt16LE(183, 18);
  await writeFile(join(dir, 'ls-aarch64'), buf);
  const result = await resolveClosure({ binaries: [join(dir, 'ls-aarch64')] });
  assert.deepEqual(
    result.files.map((f) => f.path),
    [join(dir, 'ls-aarch64')],
  );
  assert.ok(result.warnings.some((w) => w.code === 'wrong-machine'));
  assert.ok(result.warnings.some((w) => w.code === 'unresolved-interp'));
  assert.ok(result.warnings.some((w) => w.code === 'unresolved-needed' && w.path === 'libc.so.6'));
});
