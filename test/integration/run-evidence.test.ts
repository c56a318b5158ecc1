/**
 * Evidence is kept: an earlier run's folder is never overwritten by `run --out`, a report line is never glued
 * to a cut last line, and a line that cannot be written is a warning kept in the record. Real files, a real
 * read-only tmpfs (as root) and the real CLI.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { appendReport, finishRecord, type RunRecord } from '../../src/core/record/record.js';
import { uniprove } from '../helpers/cli.js';
import { assertRunRecord } from '../helpers/record.js';
import { tempDir } from '../helpers/tmp.js';

function recordIn(dir: string, id = 'r20260101t000000000-abcdef'): RunRecord {
  return {
    id,
    dir,
    prover: 'demo',
    args: ['--size', '2'],
    via: 'qemu',
    outcome: 'running',
    exitCode: 0,
    startedAt: new Date().toISOString(),
    timings: {},
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
  };
}

test('run --out at an earlier run folder is refused (E_USAGE naming its record.json); its record and console stay', async () => {
  const dir = await tempDir();
  const earlier = join(dir, 'earlier');
  await mkdir(earlier);
  await writeFile(join(earlier, 'record.json'), '{"id":"earlier"}\n');
  await writeFile(join(earlier, 'console.log'), 'the earlier console\n');
  const run = await uniprove(['run', 'demo', '--out', earlier, '--timeout', '5s'], { timeoutMs: 60_000 });
  assert.equal(run.exitCode, 2, run.stderr);
  assert.match(
    run.stderr,
    /error\[E_USAGE\]: --out .*earlier holds an earlier run's record \(.*earlier\/record\.json\)/,
  );
  assert.match(run.stderr, /Give --out a new folder/);
  assert.equal(await readFile(join(earlier, 'record.json'), 'utf8'), '{"id":"earlier"}\n');
  assert.equal(await readFile(join(earlier, 'console.log'), 'utf8'), 'the earlier console\n');
});

test('a proving_report.csv whose last line lacks its newline gets one before the next line', async () => {
  const runs = await tempDir();
  const first = recordIn(join(runs, 'a'), 'r20260101t000000000-aaaaaa');
  await appendReport(runs, first);
  const path = join(runs, 'proving_report.csv');
  // Cut off mid-line, as a full disk or an editor leaves it.
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.slice(0, -5));
  await appendReport(runs, recordIn(join(runs, 'b'), 'r20260101t000000000-bbbbbb'));
  const lines = (await readFile(path, 'utf8')).split('\n');
  assert.equal(lines.length, 4, lines.join('\n'));
  assert.match(lines[0]!, /^id,prover,/);
  assert.match(lines[1]!, /^r20260101t000000000-aaaaaa,/);
  assert.match(lines[2]!, /^r20260101t000000000-bbbbbb,demo,/);
  assert.equal(lines[3], '');
});

test('a report line that cannot be written is a report-not-written warning, and the record keeps the line', async () => {
  const dir = await tempDir();
  const recordDir = join(dir, 'run');
  await mkdir(recordDir);
  let runsDir = join(dir, 'runs');
  if (process.getuid?.() === 0) {
    // A real read-only file system (root: tmpfs); otherwise a folder where the CSV file should be.
    const base = await mkdtemp('/var/tmp/uniprove-ro-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', base]);
    after(async () => {
      execFileSync('umount', [base]);
      await rm(base, { recursive: true, force: true });
    });
    runsDir = base;
  } else await mkdir(join(runsDir, 'proving_report.csv'), { recursive: true });
  const record = recordIn(recordDir);
  await finishRecord(record, 'succeeded', { runsDir, startedAt: performance.now() });
  const kept = JSON.parse(await readFile(join(recordDir, 'record.json'), 'utf8')) as RunRecord;
  assertRunRecord(kept);
  assert.equal(kept.outcome, 'succeeded');
  const warning = kept.warnings.find((w) => w.code === 'report-not-written');
  assert.ok(warning, JSON.stringify(kept.warnings));
  assert.match(warning.message, /proving_report\.csv \((EROFS|EISDIR)\)/);
  assert.match(warning.message, /r20260101t000000000-abcdef,demo,--size 2,/);
});

test('the next run sweeps what a killed uniprove left: its running record marked abandoned, its image removed, and says so', async () => {
  const home = await tempDir();
  const runs = join(home, 'runs');
  // A real process that has ended: its pid is gone, as a SIGKILLed uniprove's is.
  const dead = spawn('true');
  await once(dead, 'exit');
  const deadPid = dead.pid as number;
  const left = recordIn(join(runs, 'r20260101t000000000-deadde'), 'r20260101t000000000-deadde');
  left.owner = { pid: deadPid, host: hostname() };
  const live = recordIn(join(runs, 'r20260101t000000001-a11ve0'), 'r20260101t000000001-a11ve0');
  live.owner = { pid: process.pid, host: hostname() };
  for (const r of [left, live]) {
    await mkdir(r.dir, { recursive: true });
    await writeFile(join(r.dir, 'record.json'), JSON.stringify(r));
  }
  const image = join(home, '.ops', 'images', `uniprove-${left.id}`);
  await mkdir(join(home, '.ops', 'images'), { recursive: true });
  await writeFile(image, 'an image');
  const run = await uniprove(['run', './no-such-recipe', '--runs-dir', runs], {
    cwd: home,
    env: { HOME: home },
    timeoutMs: 60_000,
  });
  assert.match(
    run.stderr,
    new RegExp(
      `swept run ${left.id}: its uniprove \\(pid ${deadPid}\\) is gone; marked abandoned .*, removed .*uniprove-${left.id}`,
    ),
  );
  assert.doesNotMatch(run.stderr, new RegExp(`swept run ${live.id}`));
  const swept = JSON.parse(await readFile(join(left.dir, 'record.json'), 'utf8')) as RunRecord;
  assertRunRecord(swept);
  assert.equal(swept.outcome, 'abandoned');
  assert.ok(swept.endedAt);
  assert.ok(swept.warnings.some((w) => w.code === 'abandoned'));
  await assert.rejects(readFile(image), { code: 'ENOENT' });
  const untouched = JSON.parse(await readFile(join(live.dir, 'record.json'), 'utf8')) as RunRecord;
  assert.equal(untouched.outcome, 'running', 'a run whose uniprove is alive is left alone');
});
