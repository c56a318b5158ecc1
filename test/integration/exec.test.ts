/**
 * core/exec.ts against real programs: output, exit statuses, timeouts, Ctrl-C, missing tools,
 * and no child left behind when uniprove itself exits.
 */
import assert from 'node:assert/strict';
import { execFile, spawn as spawnChild } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { isUniproveError } from '../../src/core/errors.js';
import { run, spawn } from '../../src/core/exec.js';

const NODE = process.execPath;
const EXEC_TS = fileURLToPath(new URL('../../src/core/exec.ts', import.meta.url));

/** The UniproveError a promise rejects with. */
async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (error) {
    assert.ok(isUniproveError(error), String(error));
    return error;
  }
  assert.fail('expected an error');
}

/** True while a process exists and is not a zombie. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
}

test('output comes back whole: both streams, multi-byte characters split across writes, stdin', async () => {
  // "é" is two bytes, written one at a time with a pause between: a chunk ends inside the character.
  const r = await run([
    NODE,
    '-e',
    "process.stdout.write(Buffer.from([0xc3])); setTimeout(() => { process.stdout.write(Buffer.from([0xa9])); console.error('to stderr'); }, 50)",
  ]);
  assert.equal(r.stdout, 'é');
  assert.equal(r.stderr, 'to stderr\n');
  assert.equal(r.exitCode, 0);
  const cat = await run(['cat'], { input: 'fed on stdin\n' });
  assert.equal(cat.stdout, 'fed on stdin\n');
  const env = await run([NODE, '-e', 'console.log(process.env.UNIPROVE_X, Boolean(process.env.PATH))'], {
    env: { UNIPROVE_X: 'set' },
  });
  assert.equal(env.stdout, 'set true\n', 'extra variables go over the inherited environment');
  const whole = await run([NODE, '-e', "process.stdout.write('x'.repeat(1000))"], { maxBuffer: 1000 });
  assert.equal(whole.stdout, 'x'.repeat(1000));
  assert.deepEqual(whole.truncated, { stdout: false, stderr: false });
});

test('output over the limit keeps its start and its end, says where it was cut, and flags the stream', async () => {
  const script =
    "process.stdout.write('HEAD' + 'x'.repeat(300000) + 'THE END\\n'); process.stderr.write('fine\\n')";
  const capped = await run([NODE, '-e', script], { maxBuffer: 1000 });
  assert.deepEqual(capped.truncated, { stdout: true, stderr: false });
  assert.ok(capped.stdout.startsWith(`HEAD${'x'.repeat(996)}\n[uniprove: `), capped.stdout.slice(0, 1100));
  assert.match(capped.stdout, /\[uniprove: \d+ bytes of output cut here: more than the 1000 bytes kept\]\n/);
  assert.ok(capped.stdout.endsWith('xTHE END\n'));
  assert.ok(capped.stdout.length < 1000 + 64 * 1024 + 200);
  assert.equal(capped.stderr, 'fine\n');
  // A failure's tail is the program's real last words, not those at the cut.
  const error = await failure(
    run([NODE, '-e', "console.error('y'.repeat(200000)); console.error('the reason'); process.exit(3)"], {
      maxBuffer: 1000,
    }),
  );
  assert.match((error.details as { stderrTail: string }).stderrTail, /the reason$/);
});

test('a failing program is an error with its command, status and the tail of its stderr', async () => {
  const error = await failure(run([NODE, '-e', "console.error('the reason'); process.exit(3)"]));
  assert.equal(error.code, 'E_COMMAND_FAILED');
  assert.match(error.message, /exited with status 3/);
  assert.equal((error.details as { exitCode: number }).exitCode, 3);
  assert.match((error.details as { stderrTail: string }).stderrTail, /the reason/);
  const allowed = await run([NODE, '-e', 'process.exit(4)'], { allowFailure: true });
  assert.equal(allowed.exitCode, 4);
});

test('a program that is not installed says so, with the install hint', async () => {
  const error = await failure(
    run(['uniprove-no-such-tool', '--version'], { installHint: 'apt-get install it' }),
  );
  assert.equal(error.code, 'E_TOOL_MISSING');
  assert.match(error.message, /uniprove-no-such-tool is not installed/);
  assert.equal(error.hint, 'apt-get install it');
  const started = spawn(['uniprove-no-such-tool']);
  const end = await started.ended;
  assert.equal(end.spawnError?.code, 'ENOENT');
});

test('a timeout kills the program, SIGKILL when it ignores SIGTERM', async () => {
  const t0 = performance.now();
  const error = await failure(
    run(
      [NODE, '-e', "process.on('SIGTERM', () => {}); console.log(process.pid); setInterval(() => {}, 1000)"],
      { timeoutMs: 300 },
    ),
  );
  assert.equal(error.code, 'E_COMMAND_TIMEOUT', 'a program that is not a probe is not called one');
  assert.match(error.message, /did not finish within 0.3 s and was killed/);
  assert.match(error.hint ?? '', /by hand/);
  assert.doesNotMatch(error.hint ?? '', /proof/);
  const elapsed = performance.now() - t0;
  assert.ok(
    elapsed >= 2000 && elapsed < 10_000,
    `SIGTERM ignored, then SIGKILL after the grace: ${elapsed} ms`,
  );
});

test('the caller names what timed out: its code, its words and its hint', async () => {
  const error = await failure(
    run([NODE, '-e', 'setInterval(() => {}, 1000)'], {
      timeoutMs: 200,
      timeoutReport: { code: 'E_RUN_TIMEOUT', what: 'the packaged program', hint: 'raise --timeout' },
    }),
  );
  assert.equal(error.code, 'E_RUN_TIMEOUT');
  assert.equal(error.exitCode, 6);
  assert.match(error.message, /^the packaged program did not finish within/);
  assert.equal(error.hint, 'raise --timeout');
});

test('an abort (Ctrl-C) stops the program and is E_INTERRUPTED', async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 200);
  const t0 = performance.now();
  const error = await failure(run(['sleep', '30'], { signal: controller.signal }));
  assert.equal(error.code, 'E_INTERRUPTED');
  assert.ok(performance.now() - t0 < 5000);
  const already = new AbortController();
  already.abort();
  await assert.rejects(run(['sleep', '30'], { signal: already.signal }));
});

test('children still running when uniprove exits are killed with it', async () => {
  // A process that starts a long child through exec.ts, prints its pid, then exits as uniprove does on a
  // second Ctrl-C (process.exit) and on an uncaught error.
  for (const how of ['process.exit(130)', "throw new Error('boom')"]) {
    const script = `
      const { spawn } = await import(${JSON.stringify(EXEC_TS)});
      const { child } = spawn(['sleep', '300']);
      console.log(child.pid);
      setTimeout(() => { ${how} }, 100);`;
    const r = await promisify(execFile)(NODE, ['--import', 'tsx', '--input-type=module', '-e', script]).catch(
      (e: { stdout: string }) => e,
    );
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0, r.stdout);
    for (let i = 0; i < 50 && (await alive(pid)); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(await alive(pid), false, `sleep (pid ${pid}) outlived its parent after ${how}`);
  }
});

test('a child dies with uniprove: SIGKILL of the parent, where no exit hook runs, kills it too (setpriv --pdeathsig)', {
  skip:
    existsSync('/usr/bin/setpriv') || existsSync('/bin/setpriv')
      ? false
      : 'setpriv (util-linux) is not installed',
}, async () => {
  // A real parent: a node process that starts `sleep 600` through exec.ts and waits.
  const script = `
    const { spawn } = await import(${JSON.stringify(pathToFileURL(EXEC_TS).href)});
    const { child } = spawn(['sleep', '600']);
    child.once('spawn', () => process.stdout.write(String(child.pid) + '\\n'));
    setInterval(() => {}, 1000);
  `;
  const parent = spawnChild(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  assert.ok(pid > 0);
  // Until setpriv has exec'd, the child's command line is setpriv's; wait for sleep itself.
  for (
    let i = 0;
    i < 100 && !(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).startsWith('sleep');
    i++
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  parent.kill('SIGKILL');
  await once(parent, 'exit');
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    const state = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Gone, or a zombie waiting for init to reap it.
    gone = state === '' || / Z /.test(state);
    if (!gone) await new Promise((r) => setTimeout(r, 20));
  }
  if (!gone) process.kill(pid, 'SIGKILL');
  assert.ok(gone, `sleep (pid ${pid}) outlived its parent`);
});
