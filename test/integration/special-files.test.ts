/**
 * FIFOs, sockets and devices where a file is expected are refused at once; a log read from a pipe stops at
 * Ctrl-C, and a second Ctrl-C ends uniprove whatever it waits on. Real FIFOs (mkfifo) and the real CLI.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, parseJson, REPO_ROOT, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

async function fifo(name: string): Promise<string> {
  const path = join(await tempDir(), name);
  execFileSync('mkfifo', [path]);
  return path;
}

/** Resolves once process `pid` holds `path` open (or after 15 s, failing). */
async function waitUntilOpen(pid: number, path: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === path) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`process ${pid} never opened ${path}`);
}

/**
 * Resolves once uniprove's stop handlers are installed in process `pid` (SigCgt in /proc/PID/status). Node itself
 * catches SIGINT and SIGTERM from its first instruction (to restore the terminal before dying of them), so their
 * bits say nothing; uniprove installs its SIGHUP handler with its SIGINT one, and Node does not catch SIGHUP.
 */
async function waitUntilStopHandlers(pid: number): Promise<void> {
  const bit = 1n << BigInt(osConstants.signals.SIGHUP - 1);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    if (caught && (BigInt(`0x${caught}`) & bit) !== 0n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`process ${pid} never installed its stop handlers`);
}

/** `uniprove debug <path>` as a child process, its output collected. */
function debugChild(path: string): { child: ChildProcess; output: () => string } {
  return cliChild(['debug', path]);
}

/** `uniprove <args>` as a child process, its output collected. */
function cliChild(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  return { child, output: () => output };
}

/** How the child ended, within `ms` (or 'still running'). */
async function endOf(
  child: ChildProcess,
  ms: number,
): Promise<{ code: number | null; signal: string | null }> {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  if (signal === 'SIGKILL') assert.fail(`still running ${ms} ms after the signal`);
  return { code, signal };
}

test('a FIFO as the recipe binary or a files entry is refused at once with E_NOT_REGULAR_FILE', async () => {
  const pipe = await fifo('prover');
  const started = Date.now();
  const bare = await uniprove(['package', pipe, '--json'], { timeoutMs: 20_000 });
  assert.equal(bare.exitCode, 2, bare.stderr);
  assert.equal(parseJson<{ error: { code: string } }>(bare).error.code, 'E_NOT_REGULAR_FILE');
  assert.match(bare.stderr, /is a FIFO \(named pipe\), not a regular file/);

  const dir = await tempDir();
  await writeFile(join(dir, 'recipe.json'), JSON.stringify({ name: 'x', binary: pipe }));
  const recipe = await uniprove(['package', dir], { timeoutMs: 20_000 });
  assert.equal(recipe.exitCode, 2, recipe.stderr);
  assert.match(recipe.stderr, /error\[E_NOT_REGULAR_FILE\]: binary: .*prover is a FIFO \(named pipe\)/);

  await writeFile(
    join(dir, 'recipe.json'),
    JSON.stringify({ name: 'x', binary: process.execPath, files: [{ host: pipe, guest: '/in' }] }),
  );
  const file = await uniprove(['package', dir], { timeoutMs: 20_000 });
  assert.equal(file.exitCode, 2, file.stderr);
  assert.match(file.stderr, /error\[E_NOT_REGULAR_FILE\]: files\[0\]\.host: .*prover is a FIFO/);
  assert.ok(Date.now() - started < 15_000, 'nothing waited on the pipe');
});

test('discover and volume import refuse a FIFO; debug refuses a device', async () => {
  const pipe = await fifo('thing');
  const discover = await uniprove(['discover', pipe], { timeoutMs: 20_000 });
  assert.equal(discover.exitCode, 2, discover.stderr);
  assert.match(discover.stderr, /error\[E_NOT_REGULAR_FILE\]/);
  const imported = await uniprove(['volume', 'import', pipe], { timeoutMs: 20_000 });
  assert.equal(imported.exitCode, 2, imported.stderr);
  assert.match(imported.stderr, /error\[E_NOT_REGULAR_FILE\]: parameters file: .* is a FIFO/);
  const device = await uniprove(['debug', '/dev/zero'], { timeoutMs: 20_000 });
  assert.equal(device.exitCode, 2, device.stderr);
  assert.match(
    device.stderr,
    /error\[E_NOT_REGULAR_FILE\]: \/dev\/zero is a character device, not a log file/,
  );
});

test('discover --from-log refuses a device at once (it would read /dev/zero forever)', async () => {
  const r = await uniprove(['discover', '/bin/true', '--from-log', '/dev/zero'], { timeoutMs: 20_000 });
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /error\[E_NOT_REGULAR_FILE\]: strace log: \/dev\/zero is a character device/);
});

test('discover --from-log on a FIFO nobody writes: Ctrl-C ends it with 130, and Ctrl-C twice ends it at once', async () => {
  for (const second of [undefined, 'SIGINT'] as const) {
    const pipe = await fifo(`strace-${second ?? 'once'}`);
    const { child, output } = cliChild(['discover', '/bin/true', '--from-log', pipe]);
    await waitUntilStopHandlers(child.pid as number);
    // Give it time to reach the log (a blocking open would hold the main thread here, deaf to signals).
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    if (second) child.kill(second);
    const end = await endOf(child, 5_000);
    assert.ok(end.code === 130 || end.signal === second, `${JSON.stringify(end)}\n${output()}`);
    if (!second) assert.match(output(), /error\[E_INTERRUPTED\]/);
    assert.doesNotMatch(output(), /internal error/);
  }
});

test('discover --from-log reads an strace log from a pipe, as --from-log <(strace ...) gives it', async () => {
  const pipe = await fifo('strace-log');
  const { child, output } = cliChild(['discover', '/bin/true', '--from-log', pipe, '--json']);
  await waitUntilOpen(child.pid as number, pipe);
  await writeFile(pipe, '123 openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3\n');
  const end = await endOf(child, 20_000);
  assert.equal(end.code, 0, output());
  assert.match(output(), /"\/etc\/hosts"/);
});

test('debug reads a console log from a pipe, as debug <(ops run ...) gives it', async () => {
  const pipe = await fifo('console');
  const log = await readFile(join(REPO_ROOT, 'test/fixtures/nanos/dlopen-missing.tcg/console.log'));
  const { child, output } = debugChild(pipe);
  await waitUntilOpen(child.pid as number, pipe);
  // The writer comes after the reader opened the pipe, as a slow `ops run` would.
  await writeFile(pipe, log);
  const end = await endOf(child, 20_000);
  assert.equal(end.code, 1, output());
  assert.match(output(), /missing-library libzkplug\.so/);
});

test('debug on a FIFO nobody writes: Ctrl-C ends it with 130', async () => {
  const pipe = await fifo('silent');
  const { child, output } = debugChild(pipe);
  await waitUntilOpen(child.pid as number, pipe);
  child.kill('SIGINT');
  const end = await endOf(child, 5_000);
  assert.equal(end.code, 130, output());
  assert.match(output(), /error\[E_INTERRUPTED\]/);
});

test('a closed terminal (SIGHUP) stops uniprove as Ctrl-C does: cleaned up, exit 130, not killed outright', async () => {
  const pipe = await fifo('hangup');
  const { child, output } = debugChild(pipe);
  await waitUntilOpen(child.pid as number, pipe);
  await waitUntilStopHandlers(child.pid as number);
  child.kill('SIGHUP');
  const end = await endOf(child, 5_000);
  assert.equal(end.code, 130, `${JSON.stringify(end)}\n${output()}`);
  assert.match(output(), /error\[E_INTERRUPTED\]/);
});

test('debug on a FIFO nobody writes: Ctrl-C twice, or Ctrl-C then SIGTERM, ends it at once', async () => {
  for (const second of ['SIGINT', 'SIGTERM'] as const) {
    const pipe = await fifo(`silent-${second}`);
    const { child, output } = debugChild(pipe);
    await waitUntilOpen(child.pid as number, pipe);
    child.kill('SIGINT');
    child.kill(second);
    const end = await endOf(child, 5_000);
    // Either the first Ctrl-C had already ended the read (exit 130), or the second signal ended the process
    // (a shell shows 128 + its number: 130 for Ctrl-C).
    assert.ok(end.code === 130 || end.signal === second, `${JSON.stringify(end)}\n${output()}`);
    assert.doesNotMatch(output(), /internal error/);
  }
});

test('a second Ctrl-C ends uniprove even while a thread is stuck in a system call (exit by SIGINT: 130 in a shell)', async () => {
  // One pool thread, held by an open() of a FIFO nobody writes: everything else uniprove would do waits behind
  // it, so the first Ctrl-C cannot finish, and process.exit() would wait for that thread forever.
  const stuck = await fifo('stuck');
  const script = `
    import { open } from 'node:fs/promises';
    const { main } = await import(${JSON.stringify(join(REPO_ROOT, 'dist/cli/main.js'))});
    open(process.argv[1]).catch(() => {});
    process.stdout.write('ready\\n');
    process.exitCode = await main(['debug', process.argv[2]]);
  `;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      script,
      stuck,
      join(REPO_ROOT, 'test/fixtures/nanos/dlopen-missing.tcg/console.log'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UV_THREADPOOL_SIZE: '1' } },
  );
  let output = '';
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const [ready] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  assert.equal(ready.toString(), 'ready\n');
  await waitUntilStopHandlers(child.pid as number);
  child.kill('SIGINT');
  // Wait for the first Ctrl-C to be taken (a loaded host may take more than a moment), then a little more.
  for (let waited = 0; !/interrupted: cleaning up/.test(output) && waited < 10_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    { code: child.exitCode, signal: child.signalCode },
    { code: null, signal: null },
    `the first Ctrl-C cannot end it here\n${output}`,
  );
  assert.match(output, /interrupted: cleaning up \(Ctrl-C again to quit at once\)/);
  child.kill('SIGINT');
  const end = await endOf(child, 3_000);
  assert.equal(end.signal, 'SIGINT', `${JSON.stringify(end)}\n${output}`);
});

test('a package whose lock is a FIFO, or whose config is not JSON: verify and why say so, never hang', async () => {
  const pkg = await tempDir();
  await writeFile(join(pkg, 'local.json'), '{"Program": "hello"}');
  execFileSync('mkfifo', [join(pkg, 'uniprove.lock.json')]);
  const why = await uniprove(['why', 'libc.so.6', '--from', pkg], { timeoutMs: 20_000 });
  assert.equal(why.exitCode, 2, why.stderr);
  assert.match(why.stderr, /error\[E_NOT_REGULAR_FILE\]: lock file: .*uniprove\.lock\.json is a FIFO/);
  // Without a regular lock file the folder is no package: verify says what it looked for.
  const verify = await uniprove(['verify', pkg], { timeoutMs: 20_000 });
  assert.equal(verify.exitCode, 2, verify.stderr);
  await rm(join(pkg, 'uniprove.lock.json'));
  await writeFile(join(pkg, 'uniprove.lock.json'), '{"files": []}');
  await writeFile(join(pkg, 'local.json'), '{"Program": ');
  const broken = await uniprove(['verify', pkg], { timeoutMs: 20_000 });
  assert.equal(broken.exitCode, 2, broken.stderr);
  assert.match(broken.stderr, /error\[E_CONFIG\]: .*local\.json is not valid JSON/);
});
