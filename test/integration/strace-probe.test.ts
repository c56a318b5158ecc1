import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { UniproveError } from '../../src/core/errors.js';
import { failedSearches, parseStraceLog } from '../../src/core/strace/parse.js';
import { runProbe } from '../../src/core/strace/probe.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

const skip = needTool('strace', 'apt-get install strace') ?? needGcc();

const WALKER = `
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
  if (chdir(argv[1]) != 0) return 10;
  int f = open("rel/a.txt", O_RDONLY); if (f < 0) return 11;
  int d = open("rel", O_RDONLY | O_DIRECTORY); if (d < 0) return 12;
  int g = openat(d, "b.txt", O_RDONLY); if (g < 0) return 13;
  if (fchdir(d) != 0) return 14;
  int h = open("c.txt", O_RDONLY); if (h < 0) return 15;
  for (int i = 0; i < 3; i++) {
    pid_t p = fork();
    if (p == 0) { char n[32]; snprintf(n, sizeof n, "child%d.txt", i); int c = open(n, O_RDONLY); _exit(c < 0); }
  }
  while (wait(NULL) > 0) {}
  int w = open("out.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644); if (w < 0) return 16;
  write(w, "x", 1);
  return argc > 2 ? 3 : 0;
}`;

async function walkerFixture() {
  const dir = await tempDir();
  const work = join(dir, 'work');
  await mkdir(join(work, 'rel'), { recursive: true });
  for (const f of [
    'rel/a.txt',
    'rel/b.txt',
    'rel/c.txt',
    'rel/child0.txt',
    'rel/child1.txt',
    'rel/child2.txt',
  ])
    await writeFile(join(work, f), f);
  const bin = await compileC(dir, 'walker', WALKER);
  return { dir, work, bin };
}

test('probe a program that chdirs, uses dirfds and fchdir, forks children and writes', { skip }, async () => {
  const { dir, work, bin } = await walkerFixture();
  const probe = await runProbe({ argv: [bin, work], cwd: dir, logPath: join(dir, 'f.log') });
  assert.equal(probe.exitCode, 0);
  assert.match(probe.straceVersion, /^\d+\.\d+/);
  const result = await parseStraceLog(probe.logPath, { cwd: dir });
  const opened = new Set(result.opened.map((o) => o.path));
  for (const f of ['a.txt', 'b.txt', 'c.txt', 'child0.txt', 'child1.txt', 'child2.txt'])
    assert.ok(opened.has(join(work, 'rel', f)), `${f} in opened`);
  assert.ok(opened.has(bin), 'the program itself (execve)');
  assert.deepEqual(
    result.execs.map((e) => e.path),
    [bin],
  );
  assert.ok(result.written.includes(join(work, 'rel', 'out.bin')));
  assert.ok(!opened.has(join(work, 'rel', 'out.bin')), 'an output is not a dependency');
  assert.ok(result.stats.pids >= 4, 'parent and three children');
  const childPids = result.opened.find((o) => o.path.endsWith('child1.txt'))!.pids;
  assert.equal(childPids.length, 1);
  assert.ok(!result.opened.find((o) => o.path.endsWith('a.txt'))!.pids.includes(childPids[0]!));

  // The same run traced with -ff (one log per pid) gives the same opened set.
  const ff = await runProbe({ argv: [bin, work], cwd: dir, logPath: join(dir, 'ff'), separateLogs: true });
  assert.ok(ff.logFiles.length >= 4, `one log per process: ${ff.logFiles.join(', ')}`);
  const fromList = await parseStraceLog(ff.logFiles, { cwd: dir });
  const fromPrefix = await parseStraceLog(join(dir, 'ff'), { cwd: dir });
  assert.deepEqual(
    fromList.opened.map((o) => o.path),
    result.opened.map((o) => o.path),
  );
  assert.deepEqual(fromPrefix.opened, fromList.opened);
});

test('a probe exiting 3 fails with E_PROBE_FAILED, and with allowFailure its log parses', {
  skip,
}, async () => {
  const { dir, work, bin } = await walkerFixture();
  await assert.rejects(runProbe({ argv: [bin, work, 'fail'], cwd: dir }), (error: UniproveError) => {
    assert.equal(error.code, 'E_PROBE_FAILED');
    assert.equal(error.exitCode, 1);
    assert.equal(error.details.exitCode, 3);
    return true;
  });
  const probe = await runProbe({ argv: [bin, work, 'fail'], cwd: dir, allowFailure: true });
  assert.equal(probe.exitCode, 3);
  const result = await parseStraceLog(probe.logPath, { cwd: dir });
  assert.ok(result.opened.some((o) => o.path === join(work, 'rel', 'c.txt')));
});

test('a dlopen by name shows the search path probes, then the hit', { skip }, async () => {
  const dir = await tempDir();
  const libDir = join(dir, 'libs');
  await mkdir(libDir);
  await compileC(libDir, 'libzkplug.so', 'int zk(void) { return 7; }', ['-shared', '-fPIC']);
  const src = `#include <dlfcn.h>
  #include <stdio.h>
  int main(void) {
    void *missing = dlopen("libnotthere.so", RTLD_NOW);
    void *h = dlopen("libzkplug.so", RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\\n", dlerror()); return 2; }
    return missing ? 5 : 0;
  }`;
  const bin = await compileC(dir, 'loader', src, ['-ldl']);
  const probe = await runProbe({ argv: [bin], env: { LD_LIBRARY_PATH: `${join(dir, 'nohere')}:${libDir}` } });
  const result = await parseStraceLog(probe.logPath);
  assert.ok(result.opened.some((o) => o.path === join(libDir, 'libzkplug.so')));
  assert.ok(
    result.missing.some((m) => m.path.startsWith(join(dir, 'nohere'))),
    'the search path was probed',
  );
  const failed = failedSearches(result);
  const notThere = failed.find((f) => f.basename === 'libnotthere.so');
  assert.ok(notThere && notThere.probed.length >= 2, JSON.stringify(failed));
  assert.ok(!failed.some((f) => f.basename === 'libzkplug.so'));
});

/** Running (a zombie waiting for a reaper counts as dead: it runs nothing). */
function alive(pid: number): boolean {
  try {
    const stat = execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8', stdio: 'pipe' });
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

test('a probe that never ends is killed at its timeout with all its children', { skip }, async () => {
  const dir = await tempDir();
  const pidFile = join(dir, 'child.pid');
  const src = `#include <stdio.h>
  #include <signal.h>
  #include <unistd.h>
  int main(int argc, char **argv) {
    signal(SIGTERM, SIG_IGN);
    pid_t p = fork();
    if (p == 0) { setsid(); for (;;) pause(); }
    FILE *f = fopen(argv[1], "w"); fprintf(f, "%d", p); fclose(f);
    for (;;) pause();
  }`;
  const bin = await compileC(dir, 'hang', src);
  const started = Date.now();
  await assert.rejects(runProbe({ argv: [bin, pidFile], timeoutMs: 1500 }), (error: UniproveError) => {
    assert.equal(error.code, 'E_PROBE_TIMEOUT');
    assert.equal(error.exitCode, 6);
    return true;
  });
  assert.ok(Date.now() - started < 8000);
  const child = Number(await readFile(pidFile, 'utf8'));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(alive(child), false, `forked child ${child} survived`);
  const ps = execFileSync('ps', ['-eo', 'pid,stat,args'], { encoding: 'utf8' });
  const left = ps.split('\n').filter((l) => l.includes(bin) && !/^\s*\d+\s+Z/.test(l));
  assert.deepEqual(left, [], `no live process of ${bin} left:\n${ps}`);
});

test('strace missing from PATH gives E_TOOL_MISSING with the install hint', { skip }, async () => {
  await assert.rejects(
    runProbe({ argv: ['/bin/true'], env: { PATH: '/nonexistent' } }),
    (error: UniproveError) => {
      assert.equal(error.code, 'E_TOOL_MISSING');
      assert.match(error.hint ?? '', /apt-get install strace/);
      return true;
    },
  );
});

test('ptrace refused (strace already traced) gives E_PTRACE_DENIED with a hint', { skip }, async () => {
  const dir = await tempDir();
  const wrapper = join(dir, 'strace');
  // A real refusal: the inner strace cannot ptrace a child that the outer strace already traces.
  const real = execFileSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' }).trim();
  await writeFile(wrapper, `#!/bin/sh\nexec ${real} -f -o /dev/null ${real} "$@"\n`);
  await chmod(wrapper, 0o755);
  await assert.rejects(runProbe({ argv: ['/bin/true'], strace: wrapper }), (error: UniproveError) => {
    assert.equal(error.code, 'E_PTRACE_DENIED');
    assert.match(error.hint ?? '', /SYS_PTRACE/);
    return true;
  });
});

test('the default probe traces opens but not stats; syscalls: full adds files only checked for', {
  skip,
}, async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'read.txt'), 'r');
  await writeFile(join(dir, 'checked.txt'), 'c');
  const src = `#include <fcntl.h>
  #include <sys/stat.h>
  #include <unistd.h>
  int main(int argc, char **argv) {
    struct stat st;
    if (chdir(argv[1]) != 0) return 10;
    if (stat("checked.txt", &st) != 0 || access("checked.txt", R_OK) != 0) return 11;
    return open("read.txt", O_RDONLY) < 0 ? 12 : 0;
  }`;
  const bin = await compileC(dir, 'checker', src);
  const minimal = await runProbe({ argv: [bin, dir], logPath: join(dir, 'min.log') });
  assert.equal(minimal.syscalls, 'minimal');
  assert.ok(!minimal.command.some((a) => a.includes('%file')), minimal.command.join(' '));
  const full = await runProbe({ argv: [bin, dir], logPath: join(dir, 'full.log'), syscalls: 'full' });
  assert.equal(full.syscalls, 'full');
  const fromMinimal = new Set((await parseStraceLog(minimal.logPath)).opened.map((o) => o.path));
  const fromFull = new Set((await parseStraceLog(full.logPath)).opened.map((o) => o.path));
  for (const set of [fromMinimal, fromFull]) {
    assert.ok(set.has(join(dir, 'read.txt')), 'the opened file, after a chdir');
    assert.ok(set.has(bin), 'the program (execve)');
  }
  assert.ok(!fromMinimal.has(join(dir, 'checked.txt')), 'a file only stat-ed is not traced by default');
  assert.ok(fromFull.has(join(dir, 'checked.txt')), 'syscalls: full sees the stat');
  await assert.rejects(runProbe({ argv: [bin, dir], syscalls: 'most' as never }), { code: 'E_USAGE' });
});

test('--probe-cpu runs strace and the program (and its children) on that one CPU, and sees the same files', {
  skip: skip ?? needTool('taskset', 'apt-get install util-linux'),
}, async () => {
  const { dir, work, bin } = await walkerFixture();
  const free = await runProbe({ argv: [bin, work], cwd: dir, logPath: join(dir, 'free.log') });
  const pinned = await runProbe({ argv: [bin, work], cwd: dir, logPath: join(dir, 'pinned.log'), cpu: 0 });
  assert.equal(pinned.exitCode, 0);
  assert.equal(pinned.command[0]?.endsWith('taskset'), true, pinned.command.join(' '));
  const paths = async (log: string) =>
    (await parseStraceLog(log, { cwd: dir })).opened.map((o) => o.path).sort();
  assert.deepEqual(await paths(pinned.logPath), await paths(free.logPath));

  // What the program itself sees: one allowed CPU, in a child process too.
  const out = join(dir, 'affinity.txt');
  await runProbe({
    argv: ['sh', '-c', `grep Cpus_allowed_list /proc/self/status > ${out}`],
    cwd: dir,
    cpu: 0,
  });
  assert.match(await readFile(out, 'utf8'), /Cpus_allowed_list:\s*0\s*$/);

  // A CPU this process may not use is a usage error naming the CPUs it may, before anything runs.
  await assert.rejects(
    runProbe({ argv: [bin, work], cwd: dir, cpu: 4095 }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'E_USAGE');
      assert.match(error.message, /CPU 4095 is not one this process may run on \(allowed: /);
      return true;
    },
  );
});
