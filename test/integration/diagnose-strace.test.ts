/**
 * Logs no one tuned to: real programs built with gcc, run under the real
 * strace, then diagnosed. The program loads one plugin through a search that
 * succeeds after a failed probe, and forks a child that dlopens a plugin that
 * is not on any search path.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { diagnoseLogs, fixEntriesFromFindings } from '../../src/core/diagnose/index.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needTool } from '../helpers/tools.js';

const skip = needGcc() ?? needTool('strace', 'apt-get install strace');

const PROGRAM = `
#include <dlfcn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
  void *ok = dlopen("libokplug.so", RTLD_NOW);
  printf("ok plugin: %s\\n", ok ? "loaded" : dlerror());
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    void *h = dlopen("libzkplug.so", RTLD_NOW);
    if (!h) { fprintf(stderr, "child: dlopen failed: %s\\n", dlerror()); _exit(3); }
    int (*answer)(void) = (int (*)(void))dlsym(h, "zk_plugin_answer");
    printf("child: answer=%d\\n", answer());
    fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}
`;

async function build() {
  const dir = await tempDir('uniprove-diag-');
  const ok = join(dir, 'ok');
  const plugins = join(dir, 'plugins');
  await mkdir(ok);
  await mkdir(plugins);
  await compileC(ok, 'libokplug.so', 'int ok_plugin(void) { return 1; }', ['-shared', '-fPIC']);
  await compileC(plugins, 'libzkplug.so', 'int zk_plugin_answer(void) { return 42; }', ['-shared', '-fPIC']);
  const program = await compileC(dir, 'dltest', PROGRAM, ['-ldl']);
  // A missing folder first: every library is probed there and fails before it is found.
  const env = { LD_LIBRARY_PATH: `${join(dir, 'no-such-dir')}:${ok}` };
  return { dir, ok, plugins, program, env };
}

test('strace -f -o: the dlopen miss of a forked child is found, probes that later succeeded are not', {
  skip,
}, async () => {
  const { dir, plugins, program, env } = await build();
  const log = join(dir, 'trace.log');
  const run = await execa('strace', ['-f', '-o', log, program], { env, reject: false });
  assert.equal(run.exitCode, 3, run.stderr);
  const text = await readFile(log, 'utf8');
  assert.match(
    text,
    /^\d+ +openat\(AT_FDCWD, ".*no-such-dir\/libc\.so\.6".*ENOENT/m,
    'the trace holds a failed probe',
  );

  const result = await diagnoseLogs({ logs: [log], roots: [plugins], hostSearch: false });
  assert.equal(result.logs[0]!.format, 'strace');
  const errors = result.findings.filter((f) => f.severity === 'error' || f.kind === 'missing-library');
  assert.deepEqual(
    errors.map((f) => [f.kind, f.name, f.hostPath, f.guestPath]),
    [
      [
        'missing-library',
        'libzkplug.so',
        join(plugins, 'libzkplug.so'),
        '/lib/x86_64-linux-gnu/libzkplug.so',
      ],
    ],
  );
  const miss = errors[0]!;
  // The trace alone does not hear the program complain (its stderr is not in the -o log): a warning.
  assert.equal(miss.severity, 'warning');
  assert.ok(
    miss.evidence.some((e) => /trace\.log:\d+: \d+ +openat\(.*libzkplug\.so.*ENOENT/.test(e)),
    miss.evidence.join('\n'),
  );
  assert.ok(!result.findings.some((f) => f.name === 'libokplug.so' || f.name === 'libc.so.6'));
});

test('strace -f on stderr: [pid N] lines interleaved with the program output; fixing it makes the program succeed', {
  skip,
}, async () => {
  const { dir, plugins, program, env } = await build();
  const run = await execa('strace', ['-f', program], { env, reject: false });
  assert.equal(run.exitCode, 3);
  const log = join(dir, 'console.log');
  await writeFile(log, `${run.stdout}\n${run.stderr}\n`);
  assert.match(run.stderr, /^\[pid +\d+\] openat\(/m);

  const result = await diagnoseLogs({ logs: [log], roots: [plugins], hostSearch: false });
  const miss = result.findings.find((f) => f.kind === 'missing-library');
  assert.ok(miss, JSON.stringify(result.findings, null, 2));
  assert.equal(miss.severity, 'error', 'the program said so on stderr');
  assert.ok(
    miss.evidence.some((e) =>
      e.includes('child: dlopen failed: libzkplug.so: cannot open shared object file'),
    ),
  );
  assert.ok(miss.evidence.some((e) => /\[pid +\d+\] openat\(.*libzkplug\.so.*ENOENT/.test(e)));

  // Apply the fix to a staged tree standing in for the image, and point the loader at its library folder.
  const fixes = fixEntriesFromFindings(result.findings);
  assert.equal(fixes.length, 1);
  const image = join(dir, 'image');
  for (const entry of fixes) {
    const target = join(image, entry.guestPath);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(entry.hostPath, target);
    assert.match(entry.reason, /missing-library libzkplug\.so/);
  }
  const again = await execa(program, [], {
    env: { LD_LIBRARY_PATH: `${env.LD_LIBRARY_PATH}:${join(image, 'lib/x86_64-linux-gnu')}` },
    reject: false,
  });
  assert.equal(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /child: answer=42/);
});

test('uniprove debug on a real strace log: exit 1, JSON findings, --root names the host file', {
  skip,
}, async () => {
  const { dir, plugins, program, env } = await build();
  const run = await execa('strace', ['-f', program], { env, reject: false, all: true });
  const log = join(dir, 'run.log');
  await writeFile(log, run.all ?? '');
  const cli = await uniprove(['debug', log, '--json', '--root', plugins, '--no-host']);
  assert.equal(cli.exitCode, 1, cli.stderr);
  const out = parseJson<{
    findings: { kind: string; name: string; hostPath?: string; guestPath?: string }[];
  }>(cli);
  const miss = out.findings.find((f) => f.kind === 'missing-library');
  assert.equal(miss?.hostPath, join(plugins, 'libzkplug.so'));
  assert.equal(miss?.guestPath, '/lib/x86_64-linux-gnu/libzkplug.so');
});
