/**
 * What a uniprove killed hard leaves besides its records: processes that outlived it and its temporary folders.
 * Real processes, real signals and a real strace; the next uniprove ends and removes what is left, and says so.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sweepLeftovers } from '../../src/core/leftovers.js';
import { OWNER_ENV, ownerToken } from '../../src/core/owner.js';
import { sweepAbandonedRuns } from '../../src/core/run/sweep.js';
import { CLI, uniprove } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { needTool } from '../helpers/tools.js';

const needStrace = needTool('strace', 'apt-get install strace');

/** Whether `pid` runs (a zombie waiting to be reaped counts as gone). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
}

async function gone(pid: number, ms = 5_000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (!(await running(pid))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** `sleep 600` marked as started by the uniprove `owner`. */
function markedSleep(owner: string): ChildProcess {
  const child = spawn('sleep', ['600'], { env: { ...process.env, [OWNER_ENV]: owner }, stdio: 'ignore' });
  child.unref();
  return child;
}

test('the sweep ends processes and removes temporary folders of a uniprove that is gone, and nothing of a live one', async () => {
  // A uniprove that is gone: a process that ran and was reaped (its pid now free).
  const ended = spawn('true');
  await once(ended, 'exit');
  const dead = `${ended.pid}.123456`;
  // The kernel gave a dead uniprove's pid to another process: same pid, another start time.
  const reused = `${process.pid}.1`;
  const live = ownerToken();
  const children = [markedSleep(dead), markedSleep(reused), markedSleep(live)];
  await Promise.all(children.map((c) => once(c, 'spawn')));
  const root = await tempDir();
  const folder = (owner: string) => join(root, `uniprove-probe-${owner}-AbC123`);
  for (const f of [folder(dead), folder(reused), folder(live), join(root, 'uniprove-test-XyZ789')]) {
    await mkdir(f);
  }
  try {
    const swept = await sweepLeftovers({ tmpDir: root });
    const pids = children.map((c) => c.pid as number);
    assert.deepEqual(
      swept.processes.map((p) => p.pid).sort(),
      [pids[0], pids[1]].sort(),
      'the two whose owner is gone, not the live one',
    );
    assert.ok(swept.processes.every((p) => p.command === 'sleep 600'));
    assert.ok(await gone(pids[0] as number), 'the dead owner’s process is ended');
    assert.ok(await gone(pids[1] as number), 'the reused pid’s process is ended');
    assert.equal(await running(pids[2] as number), true, 'the live owner’s process runs on');
    assert.deepEqual(swept.folders.sort(), [folder(dead), folder(reused)].sort());
    assert.deepEqual((await readdir(root)).sort(), [`uniprove-probe-${live}-AbC123`, 'uniprove-test-XyZ789']);
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
});

test('discover killed hard (SIGKILL) while it probes: strace dies, the program it traced runs on; the next discover ends it and removes the probe folder', {
  skip: needStrace,
  timeout: 120_000,
}, async () => {
  const dir = await tempDir();
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const env = { ...process.env, CI: '1', TMPDIR: tmp, UNIPROVE_CACHE: join(dir, 'cache') };
  const child = spawn(process.execPath, [CLI, 'discover', '/bin/sleep', '600', '--json'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  // The traced `sleep 600`: strace's child, marked with the uniprove that started strace.
  let traced: number | undefined;
  for (let waited = 0; traced === undefined && waited < 60_000; waited += 100) {
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
      if (cmd === '/bin/sleep\u0000600\u0000' && environ.includes(`${OWNER_ENV}=${child.pid}.`))
        traced = Number(pid);
    }
    if (traced === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(traced, `the probe never started sleep\n${output}`);
  const [folder] = await readdir(tmp);
  assert.match(
    folder ?? '',
    new RegExp(`^uniprove-probe-${child.pid}\\.\\d+-`),
    'the probe folder is named for its uniprove',
  );
  child.kill('SIGKILL');
  await once(child, 'exit');
  try {
    await new Promise((r) => setTimeout(r, 300));
    // strace let its tracee go as it died: the prover would run on for hours.
    assert.equal(await running(traced), true, 'strace detached the program (else this test tests nothing)');
    const next = await uniprove(['discover', '/bin/true', '--json'], { cwd: dir, env });
    assert.equal(next.exitCode, 0, next.stderr);
    assert.match(
      next.stderr,
      new RegExp(
        `swept process ${traced} \\(/bin/sleep 600\\): the uniprove that started it is gone; killed`,
      ),
    );
    assert.match(next.stderr, new RegExp(`swept temporary folder ${join(tmp, folder as string)}: .*removed`));
    assert.ok(await gone(traced), 'the orphaned program is ended');
    await assert.rejects(stat(join(tmp, folder as string)), { code: 'ENOENT' });
    // Nothing else to sweep the next time, and nothing said.
    const quiet = await uniprove(['discover', '/bin/true', '--json'], { cwd: dir, env });
    assert.doesNotMatch(quiet.stderr, /swept/);
  } finally {
    if (await running(traced)) process.kill(traced, 'SIGKILL');
  }
});

test('a Compute Engine record left running by a uniprove that is gone is closed abandoned and says which gc deletes its instance', async () => {
  const runs = await tempDir();
  const ended = spawn('true');
  await once(ended, 'exit');
  const owner = { pid: ended.pid as number, host: hostname() };
  const gce = { project: 'p', zone: 'us-central1-a', image: 'img', machineType: 'n1-standard-1' };
  const records = {
    r20261207t070000000_aaaaaa: { gce: { ...gce, instance: 'uniprove-one' } },
    r20261207t070000001_bbbbbb: {
      gce: { ...gce, instance: 'uniprove-f1-0-1' },
      fleet: { id: 'f20261207t0700-cafe', input: 0, attempt: 1 },
    },
  };
  for (const [name, extra] of Object.entries(records)) {
    const id = name.replace('_', '-');
    await mkdir(join(runs, id));
    await writeFile(
      join(runs, id, 'record.json'),
      JSON.stringify({
        id,
        outcome: 'running',
        via: 'gce',
        owner,
        warnings: [],
        startedAt: '2026-12-07T07:00:00Z',
        ...extra,
      }),
    );
  }
  const swept = await sweepAbandonedRuns({ runsDir: runs, opsHome: join(runs, 'no-ops') });
  assert.deepEqual(
    swept.map((s) => s.cloud),
    [
      'its instance uniprove-one (zone us-central1-a) may still be running: `uniprove gcp gc --run r20261207t070000000-aaaaaa` deletes what it left',
      'its instance uniprove-f1-0-1 (zone us-central1-a) may still be running: `uniprove gcp gc --fleet f20261207t0700-cafe` deletes what it left',
    ],
  );
  const record = JSON.parse(await readFile(join(runs, 'r20261207t070000001-bbbbbb', 'record.json'), 'utf8'));
  assert.equal(record.outcome, 'abandoned');
  assert.match(record.warnings[0].message, /gcp gc --fleet f20261207t0700-cafe/);
});
