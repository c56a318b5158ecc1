/**
 * `uniprove discover` as a user runs it: on real programs of this machine and
 * on gcc-built fixtures, under the real strace, with the CLI's exit codes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliRun, parseJson, uniprove } from '../helpers/cli.js';
import { buildElf } from '../helpers/elf.js';
import { compileC } from '../helpers/gcc.js';
import { buildPluginFixture } from '../helpers/plugin-fixture.js';
import { tempDir, tempDirOutsideTmp } from '../helpers/tmp.js';
import { findTool, needGcc, needTool } from '../helpers/tools.js';

interface Discovered {
  binary: string;
  files: { path: string; reasons: string[]; parents: string[]; chain?: string[] }[];
  warnings: { code: string; message: string }[];
}

const needStrace = needTool('strace', 'apt-get install strace');

function discovered(run: CliRun): Discovered {
  assert.equal(run.exitCode, 0, run.stderr);
  return parseJson<Discovered>(run);
}

function entry(d: Discovered, match: (path: string) => boolean) {
  const found = d.files.find((f) => match(f.path));
  assert.ok(found, `not in the closure; have:\n${d.files.map((f) => f.path).join('\n')}`);
  return found;
}

function realPython(): string | undefined {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

const python = realPython();

test('python3 importing ssl, sqlite3 and ctypes: extension modules are dlopen finds with their own libraries', {
  skip: needStrace ?? (python ? undefined : needTool('python3', 'apt-get install python3')),
}, async () => {
  const d = discovered(
    await uniprove(['discover', python as string, '--json', '--', '-c', 'import ssl, sqlite3, ctypes']),
  );
  const ssl = entry(d, (p) => /\/_ssl\.cpython-[^/]*\.so$/.test(p));
  assert.deepEqual(ssl.reasons, ['dlopen']);
  const libssl = entry(d, (p) => /\/libssl\.so\.\d+$/.test(p));
  assert.ok(libssl.reasons.includes('elf-needed'));
  assert.ok(libssl.parents.includes(ssl.path), 'libssl is there because _ssl needs it');
  const sqlite = entry(d, (p) => /\/_sqlite3\.cpython-[^/]*\.so$/.test(p));
  assert.ok(entry(d, (p) => /\/libsqlite3\.so\.0$/.test(p)).parents.includes(sqlite.path));
  const ctypes = entry(d, (p) => /\/_ctypes\.cpython-[^/]*\.so$/.test(p));
  assert.ok(entry(d, (p) => /\/libffi\.so\.\d+$/.test(p)).parents.includes(ctypes.path));
  // ldd sees none of these.
  const ldd = execFileSync('ldd', [python as string], { encoding: 'utf8' });
  assert.doesNotMatch(ldd, /libssl|libsqlite3|libffi/);
});

test('a shell-script shim is refused with a hint to pass the real binary', {
  skip: needTool('python3', 'apt-get install python3'),
}, async () => {
  const shim = findTool('python3') as string;
  const head = await readFile(shim).then((b) => b.subarray(0, 2).toString());
  if (head !== '#!') return; // python3 on PATH is a real binary here: nothing to test
  const r = await uniprove(['discover', shim]);
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, /error\[E_NOT_ELF\]/);
  assert.match(r.stderr, /script/i);
  assert.match(r.stderr, /hint: /);
});

test('iconv to UTF-16 loads its gconv module at run time', {
  skip: needStrace ?? needTool('iconv', 'libc-bin'),
}, async () => {
  const dir = await tempDir();
  const input = join(dir, 'in.txt');
  await writeFile(input, 'zk proofs\n');
  const iconv = findTool('iconv') as string;
  const d = discovered(
    await uniprove(['discover', iconv, '--json', '--', '-f', 'UTF-8', '-t', 'UTF-16', input]),
  );
  const module = entry(d, (p) => p.endsWith('/gconv/UTF-16.so'));
  assert.ok(module.reasons.includes('dlopen'));
  // The family brings the configuration that names the modules.
  assert.ok(
    d.files.some((f) => f.path.endsWith('/gconv/gconv-modules') && f.reasons.includes('config-family')),
  );
  assert.ok(
    d.files.some((f) => f.path === input && f.reasons.includes('runtime-file')),
    'the input file was read',
  );
});

test('node -e \'require("zlib")\': its static closure agrees with ldd', { skip: needStrace }, async () => {
  const d = discovered(
    await uniprove(['discover', process.execPath, '--json', '--', '-e', 'require("zlib")']),
  );
  const ldd = execFileSync('ldd', [process.execPath], { encoding: 'utf8' });
  const fromLdd = [...ldd.matchAll(/=> (\/\S+)/g)].map((m) => m[1] as string);
  for (const lib of fromLdd) {
    assert.ok(
      d.files.some((f) => f.path === lib || f.chain?.includes(lib)),
      `${lib} (ldd) is missing from discover`,
    );
  }
});

test('a plugin that dlopens a second plugin through its RUNPATH $ORIGIN, and a program that chdirs', {
  skip: needStrace ?? needGcc(),
}, async () => {
  const dir = await tempDirOutsideTmp();
  const plugins = join(dir, 'bin', 'plugins');
  await mkdir(join(plugins, 'sub'), { recursive: true });
  await mkdir(join(dir, 'data'), { recursive: true });
  await writeFile(join(dir, 'data', 'settings.conf'), 'k=v\n');
  await compileC(join(plugins, 'sub'), 'libsecond.so', 'int second(void) { return 7; }\n', [
    '-shared',
    '-fPIC',
  ]);
  await compileC(
    plugins,
    'libfirst.so',
    `#include <dlfcn.h>
int first(void) { void *h = dlopen("libsecond.so", RTLD_NOW); if (!h) return -1;
  int (*f)(void) = (int (*)(void))dlsym(h, "second"); return f(); }
`,
    ['-shared', '-fPIC', '-ldl', '-Wl,-rpath,$ORIGIN/sub', '-Wl,--enable-new-dtags'],
  );
  const main = await compileC(
    join(dir, 'bin'),
    'main',
    `#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (chdir(argv[1]) != 0) return 2;
  FILE *f = fopen("settings.conf", "r"); if (!f) return 3; fclose(f);
  void *h = dlopen("libfirst.so", RTLD_NOW); if (!h) { fprintf(stderr, "%s\\n", dlerror()); return 4; }
  int (*first)(void) = (int (*)(void))dlsym(h, "first");
  return first() == 7 ? 0 : 5;
}
`,
    ['-ldl', '-Wl,-rpath,$ORIGIN/plugins', '-Wl,--enable-new-dtags'],
  );
  const d = discovered(await uniprove(['discover', main, '--json', '--', join(dir, 'data')]));
  assert.deepEqual(entry(d, (p) => p === join(plugins, 'libfirst.so')).reasons, ['dlopen']);
  assert.deepEqual(entry(d, (p) => p === join(plugins, 'sub', 'libsecond.so')).reasons, ['dlopen']);
  assert.deepEqual(entry(d, (p) => p === join(dir, 'data', 'settings.conf')).reasons, ['runtime-file']);
  assert.ok(entry(d, (p) => p.endsWith('/libc.so.6')).reasons.includes('elf-needed'));
  assert.ok(entry(d, (p) => p === '/lib64/ld-linux-x86-64.so.2').reasons.includes('interp'));

  const human = await uniprove(['discover', main, '--', join(dir, 'data')]);
  assert.match(
    human.stdout,
    /libraries loaded at run time \(dlopen; ldd cannot see these\):\n(.*\n)*.*libsecond\.so/,
  );
});

test('the versioned SONAME chain of the plugin fixture is kept', {
  skip: needStrace ?? needGcc(),
}, async () => {
  const fx = await buildPluginFixture(join(await tempDirOutsideTmp(), 'src'));
  const d = discovered(await uniprove(['discover', fx.main, '--json']));
  const dep = entry(d, (p) => p.endsWith('/libdep.so.1'));
  assert.deepEqual(
    dep.chain?.map((p) => p.split('/').pop()),
    ['libdep.so.1', 'libdep.so.1.0.0'],
  );
  assert.deepEqual(dep.parents, [fx.plugin]);
});

test('bad input: each gives a typed error with a hint and its own exit code, never a stack trace', {
  skip: needGcc(),
}, async () => {
  const dir = await tempDir();
  const ok = await compileC(dir, 'ok', 'int main(void) { return 0; }\n');
  const truncated = join(dir, 'truncated');
  await copyFile(ok, truncated);
  await truncate(truncated, 100);
  const text = join(dir, 'notes.txt');
  await writeFile(text, 'not a program\n');
  const elf32 = join(dir, 'prog32');
  await writeFile(
    elf32,
    buildElf({
      class: 32,
      endianness: 'little',
      machine: 3,
      type: 2,
      interp: '/lib/ld-linux.so.2',
      needed: ['libc.so.6'],
    }),
  );
  const aarch64 = join(dir, 'prog-arm');
  await writeFile(
    aarch64,
    buildElf({
      class: 64,
      endianness: 'little',
      machine: 183,
      type: 2,
      interp: '/lib/ld-linux-aarch64.so.1',
      needed: ['libc.so.6'],
    }),
  );
  const dangling = await compileC(dir, 'dangling', 'int lost(void); int main(void) { return lost(); }\n', [
    `-L${dir}`,
    '-llost',
  ]).catch(async () => {
    // gcc needs the library to link: build it, link, then remove it.
    await compileC(dir, 'liblost.so', 'int lost(void) { return 0; }\n', ['-shared', '-fPIC']);
    const p = await compileC(dir, 'dangling', 'int lost(void); int main(void) { return lost(); }\n', [
      `-L${dir}`,
      '-llost',
    ]);
    await import('node:fs/promises').then((fs) => fs.rm(join(dir, 'liblost.so')));
    return p;
  });
  const fails = await compileC(dir, 'fails', 'int main(void) { return 3; }\n');
  const hangs = await compileC(dir, 'hangs', '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n');
  // A PATH with node on it and no strace.
  const noStraceBin = join(dir, 'bin-without-strace');
  await mkdir(noStraceBin);
  await symlink(process.execPath, join(noStraceBin, 'node'));
  const garbled = join(dir, 'garbled.log');
  await writeFile(
    garbled,
    `123 openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3\n123 openat(AT_FDCWD, "/etc/pa\x00\x01garbage\n`,
  );

  const cases: {
    what: string;
    args: string[];
    env?: Record<string, string>;
    exit: number;
    error?: RegExp;
    warning?: RegExp;
  }[] = [
    { what: 'truncated ELF', args: [truncated], exit: 2, error: /E_ELF_TRUNCATED/ },
    { what: 'non-ELF file', args: [text], exit: 2, error: /E_NOT_ELF/ },
    { what: 'a directory', args: [dir], exit: 2, error: /E_IS_DIRECTORY/ },
    { what: 'missing file', args: [join(dir, 'nope')], exit: 2, error: /E_NOT_FOUND/ },
    { what: '32-bit binary', args: [elf32, '--json'], exit: 0, warning: /probe-skipped/ },
    { what: 'foreign architecture', args: [aarch64, '--json'], exit: 0, warning: /aarch64/ },
    {
      what: 'dangling DT_NEEDED',
      args: [dangling, '--no-probe', '--json'],
      exit: 0,
      warning: /unresolved-needed/,
    },
    { what: 'probe exits non-zero', args: [fails], exit: 1, error: /E_PROBE_FAILED/ },
    {
      what: 'probe failure allowed',
      args: [fails, '--allow-failure', '--json'],
      exit: 0,
      warning: /probe-failed/,
    },
    { what: 'probe never exits', args: [hangs, '--timeout', '1'], exit: 6, error: /E_PROBE_TIMEOUT/ },
    {
      what: 'strace not installed',
      args: [ok],
      env: { PATH: noStraceBin },
      exit: 3,
      error: /E_TOOL_MISSING[\s\S]*apt-get install strace/,
    },
    {
      what: 'garbled strace log',
      args: [ok, '--from-log', garbled, '--json'],
      exit: 0,
      warning: /trace-garbled-line|trace-cut-off/,
    },
    { what: 'not an strace log', args: [ok, '--from-log', text], exit: 2, error: /E_STRACE_LOG/ },
  ];
  for (const c of cases) {
    if (needStrace && !c.args.includes('--no-probe') && c.exit !== 2) continue;
    const r = await uniprove(['discover', ...c.args], c.env ? { env: c.env } : {});
    assert.equal(r.exitCode, c.exit, `${c.what}: exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /internal error| {4}at /, `${c.what}: no stack trace`);
    if (c.error) {
      assert.match(r.stderr, c.error, c.what);
      assert.match(r.stderr, /hint: /, `${c.what}: a hint`);
    }
    if (c.warning) assert.match(r.stdout, c.warning, c.what);
  }
});
