/** `uniprove debug` as a user runs it: exit statuses, bad input, cut-off logs. */
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { diagnoseLogs, locateNothing, readLogLines } from '../../src/core/diagnose/index.js';
import { parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/nanos');

test('a diagnosed failure exits 1 and prints each finding with evidence and fix', async () => {
  const log = join(FIXTURES, 'dlopen-missing.ops-trace-equivalent.tcg/console.log');
  const run = await uniprove(['debug', log, '--no-host']);
  assert.equal(run.exitCode, 1, run.stderr);
  assert.match(run.stdout, /^error: missing-library libzkplug\.so$/m);
  assert.match(run.stdout, /console\.log:118: \[2\] openat\(-100, "\/usr\/lib\/libzkplug\.so"/);
  assert.match(run.stdout, /fix: .*\/lib\/x86_64-linux-gnu\/libzkplug\.so/);
});

test('a clean run exits 0; --json prints { findings, warnings, logs }', async () => {
  const run = await uniprove(['debug', join(FIXTURES, 'hello-static.tcg/console.log'), '--json']);
  assert.equal(run.exitCode, 0, run.stderr);
  const out = parseJson<{ findings: unknown[]; warnings: unknown[]; logs: { format: string }[] }>(run);
  assert.deepEqual(out.findings, []);
  assert.equal(out.logs[0]?.format, 'nanos');
});

test('--manifest tells debug what the image held', async () => {
  const dir = join(FIXTURES, 'dlopen-present-in-lib64-NOT-FOUND.tcg');
  const run = await uniprove([
    'debug',
    join(dir, 'console.log'),
    '--manifest',
    join(dir, 'image.manifest'),
    '--json',
    '--no-host',
  ]);
  assert.equal(run.exitCode, 1);
  const [f] = parseJson<{ findings: { presentAt?: string[]; guestPath?: string }[] }>(run).findings;
  assert.deepEqual(f?.presentAt, ['/lib64/libzkplug.so']);
  assert.equal(f?.guestPath, '/lib/x86_64-linux-gnu/libzkplug.so');
});

test('an empty log is bad input: exit 2, E_LOG_INPUT, "no evidence"', async () => {
  const dir = await tempDir();
  const log = join(dir, 'empty.log');
  await writeFile(log, '');
  const run = await uniprove(['debug', log]);
  assert.equal(run.exitCode, 2);
  assert.match(run.stderr, /error\[E_LOG_INPUT\]: no evidence: the log .*empty\.log is empty/);
  const blank = join(dir, 'blank.log');
  await writeFile(blank, '\n\n  \n');
  assert.equal((await uniprove(['debug', blank])).exitCode, 2);
});

test('a binary file is refused with E_LOG_INPUT; a missing file with E_NOT_FOUND', async () => {
  const dir = await tempDir();
  const bin = join(dir, 'disk.img');
  await copyFile(process.execPath, bin);
  const run = await uniprove(['debug', bin, '--json']);
  assert.equal(run.exitCode, 2);
  assert.equal(parseJson<{ error: { code: string } }>(run).error.code, 'E_LOG_INPUT');
  assert.match(run.stderr, /not a text log/);
  const missing = await uniprove(['debug', join(dir, 'nope.log')]);
  assert.equal(missing.exitCode, 2);
  assert.match(missing.stderr, /E_NOT_FOUND/);
});

test('a log cut off mid-line is read, with a warning', async () => {
  const dir = await tempDir();
  const full = await readFile(join(FIXTURES, 'dlopen-missing.debugsyscalls-only.tcg/console.log'), 'utf8');
  const at = full.indexOf('DLTEST FAIL') + 75; // inside "No such file or directory"
  const log = join(dir, 'cut.log');
  await writeFile(log, full.slice(0, at));
  const run = await uniprove(['debug', log, '--json', '--no-host']);
  const out = parseJson<{ findings: { kind: string; name: string }[]; warnings: { code: string }[] }>(run);
  assert.equal(run.exitCode, 1);
  assert.deepEqual(
    out.findings.map((f) => [f.kind, f.name]),
    [['missing-library', 'libzkplug.so']],
  );
  assert.deepEqual(
    out.warnings.map((w) => w.code),
    ['log-cut-off'],
  );
});

test('a line of megabytes is cut, not held: the findings around it still come out', async () => {
  const dir = await tempDir();
  const log = join(dir, 'long.log');
  const good = await readFile(join(FIXTURES, 'dlopen-missing.tcg/console.log'), 'utf8');
  await writeFile(log, `${'x'.repeat(5 * 1024 * 1024)}\n${good}`);
  const result = await diagnoseLogs({ logs: [log], locate: locateNothing });
  assert.deepEqual(
    result.warnings.map((w) => w.code),
    ['long-lines'],
  );
  assert.equal(result.findings[0]?.name, 'libzkplug.so');
  assert.match(result.findings[0]!.evidence[0]!, /^long\.log:4: DLTEST FAIL/);
});

test('a log that stops inside a line is flagged cut off whatever the length of that line', async () => {
  const dir = await tempDir();
  const good = await readFile(join(FIXTURES, 'dlopen-missing.tcg/console.log'), 'utf8');
  for (const [name, tail] of [
    ['short', 'abc'],
    ['long', 'y'.repeat(3 * 1024 * 1024)],
    ['chunk', 'z'.repeat(64 * 1024 + 1)],
  ] as const) {
    const log = join(dir, `${name}.log`);
    await writeFile(log, `${good}${tail}`);
    const status = await readLogLines(log, () => () => {}, { chunkBytes: 64 * 1024 });
    assert.equal(status.endsMidLine, true, name);
    const result = await diagnoseLogs({ logs: [log], locate: locateNothing });
    assert.ok(
      result.warnings.some((w) => w.code === 'log-cut-off'),
      `${name}: ${JSON.stringify(result.warnings)}`,
    );
  }
  // Ended by a newline, however long: not cut off.
  const whole = join(dir, 'whole.log');
  await writeFile(whole, `${good}${'y'.repeat(3 * 1024 * 1024)}\n`);
  assert.equal((await readLogLines(whole, () => () => {})).endsMidLine, false);
});

test('--help explains the exit statuses', async () => {
  const run = await uniprove(['debug', '--help']);
  assert.equal(run.exitCode, 0);
  assert.match(run.stdout, /Exit status: 0 no error found/);
  assert.match(run.stdout, /1 the logs show a failure/);
});

test("--manifest takes a run record's manifest.txt; a /proc/self/cgroup probe is harmless, not a file to add", async () => {
  const dir = join(FIXTURES, 'rust-cgroup-probe.trace.tcg');
  // image.manifest is the record's manifest.txt as `uniprove run` wrote it (Ops's dump of the manifest).
  const run = await uniprove(['debug', join(dir, 'console.log'), '--manifest', join(dir, 'image.manifest')]);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.match(run.stdout, /^info: optional-probe \/proc\/self\/cgroup$/m);
  assert.match(run.stdout, /Nanos has no cgroups/);
  assert.match(run.stdout, /fix: Nothing to do: do not add \/proc\/self\/cgroup to the image/);
  assert.doesNotMatch(run.stdout, /fix: Add /);
  // What the manifest says the image held is used: it sets debug_exit, so no exit-status-lost note.
  assert.doesNotMatch(run.stdout, /exit-status-lost/);
});

test("--manifest with a record's manifest.txt tells a library the image holds from one it lacks", async () => {
  const manifest = join(REPO_ROOT, 'test/fixtures/run-record/zkwasm-volume.manifest.txt');
  const dir = await tempDir();
  const log = join(dir, 'console.log');
  // The loader's words for a library the image holds where the loader looks, and for one it lacks.
  await writeFile(
    log,
    [
      'zkwasm-cli: error while loading shared libraries: libstdc++.so.6: cannot open shared object file: No such file or directory',
      'zkwasm-cli: error while loading shared libraries: libzkplug.so: cannot open shared object file: No such file or directory',
      '',
    ].join('\n'),
  );
  const run = await uniprove(['debug', log, '--manifest', manifest, '--json', '--no-host']);
  assert.equal(run.exitCode, 1, run.stderr);
  const { findings } = parseJson<{ findings: { name: string; presentAt?: string[]; message: string }[] }>(
    run,
  );
  const held = findings.find((f) => f.name === 'libstdc++.so.6');
  const lacked = findings.find((f) => f.name === 'libzkplug.so');
  assert.deepEqual(held?.presentAt, ['/lib/x86_64-linux-gnu/libstdc++.so.6']);
  assert.match(held?.message ?? '', /The image does hold it at \/lib\/x86_64-linux-gnu\/libstdc\+\+\.so\.6/);
  assert.equal(lacked?.presentAt, undefined);
});
