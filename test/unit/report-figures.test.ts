/**
 * The report's figures from records written by the project's own writers (writeRecord, buildFleetRecord and
 * writeFleetRecord) into a temp runs folder: each phase from the timings a driver records, a fleet's lanes,
 * events and cost from its fleet.json and its attempts' records, the filters, what is skipped, and each chart
 * rendered by Vega to an SVG with marks.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { hourlyPrice, machineShape } from '../../src/core/cloud/prices.js';
import { buildFleetRecord, writeFleetRecord } from '../../src/core/gcp/fleet/record.js';
import type { AttemptRecord, FleetResult } from '../../src/core/gcp/fleet/scheduler.js';
import { newRunId, type RunRecord, writeRecord } from '../../src/core/record/record.js';
import { CHARTS, chartSpec, renderSvg } from '../../src/core/report/charts.js';
import { readEvidence } from '../../src/core/report/evidence.js';
import { computeFigures, type ReportFigures } from '../../src/core/report/figures.js';
import { tempDir } from '../helpers/tmp.js';

const T = Date.parse('2026-12-01T10:00:00.000Z');
const FLEET = 'f20261201t095955000-abcdef';

function record(runsDir: string, at: number, extra: Partial<RunRecord>): RunRecord {
  const id = newRunId(new Date(at), () =>
    Math.floor(at % 0xffffff)
      .toString(16)
      .padStart(6, '0'),
  );
  return {
    id,
    dir: join(runsDir, id),
    prover: 'demo',
    args: [],
    via: 'qemu',
    outcome: 'succeeded',
    exitCode: 0,
    startedAt: new Date(at).toISOString(),
    timings: {},
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
    ...extra,
  };
}

/** A fleet attempt's record as the fleet driver writes it: totalMs and gce.durationMs, no boot time. */
function attemptRecord(
  runsDir: string,
  start: number,
  input: number,
  attempt: number,
  d?: number[],
): RunRecord {
  const [setup = 0, run = 0, cleanup = 0] = d ?? [];
  const total = setup + run + cleanup + 20;
  return record(runsDir, start, {
    prover: 'fleetprover',
    args: ['prove', String(input)],
    via: 'gce',
    outcome: d ? 'succeeded' : 'error',
    exitCode: d ? 0 : null,
    endedAt: new Date(start + total).toISOString(),
    timings: { totalMs: total },
    fleet: { id: FLEET, input, attempt },
    ...(d
      ? {
          gce: {
            project: 'p',
            zone: 'us-central1-b',
            instance: `i-${input}-${attempt}`,
            image: 'img',
            machineType: 'n2-standard-2',
            durationMs: { setup, run, cleanup },
          },
        }
      : { error: { code: 'E_GCP_PREEMPTED', message: 'instance preempted' } }),
  });
}

/** A runs folder: a demo run, a failed run with a finding, a fleet of 2 inputs (a zone refused, a preemption). */
async function runsFolder(): Promise<{ runsDir: string; demo: RunRecord; failed: RunRecord; ids: string[] }> {
  const runsDir = await tempDir('uniprove-report-unit-');
  const demo = record(runsDir, T, {
    endedAt: new Date(T + 23_000).toISOString(),
    timings: { imageBuildMs: 1200, bootMs: 800, proverMs: 20_000, firstConsoleLineMs: 2500, totalMs: 23_000 },
    proofs: [{ path: 'proofs/proof.bin', sha256: 'a'.repeat(64), bytes: 128, source: '/tmp/proof' }],
  });
  const failed = record(runsDir, T + 60_000, {
    prover: 'fork-child',
    outcome: 'failed',
    exitCode: 1,
    timings: { imageBuildMs: 100, bootMs: 300, proverMs: 200, firstConsoleLineMs: 450, totalMs: 800 },
    error: { code: 'E_RUN_FAILED', message: 'the prover exited with 1' },
    findings: [
      {
        kind: 'fork-exec-unsupported',
        severity: 'error',
        name: '/bin/true',
        message: 'fork failed with ENOSYS',
        fix: 'Do the work in the prover’s own process',
        evidence: [],
      },
    ],
  });
  // The fleet's scheduler starts at T + 120 s; its attempts' records open as they start.
  const s = T + 120_000;
  const ok0 = attemptRecord(runsDir, s + 300, 0, 1, [100, 500, 80]);
  const pre1 = attemptRecord(runsDir, s + 310, 1, 1);
  const ok1 = attemptRecord(runsDir, s + 700, 1, 2, [90, 600, 70]);
  for (const r of [demo, failed, ok0, pre1, ok1]) await writeRecord(r);
  const attempt = (
    a: Partial<AttemptRecord> & Pick<AttemptRecord, 'index' | 'attempt' | 'kind'>,
  ): AttemptRecord => ({
    zone: 'us-central1-b',
    startedMs: 0,
    endedMs: 0,
    instanceSeconds: 0,
    ...a,
  });
  const attempts: AttemptRecord[] = [
    attempt({
      index: 0,
      attempt: 1,
      kind: 'capacity',
      zone: 'us-central1-a',
      startedMs: 5,
      endedMs: 290,
      error: { code: 'E_GCP', message: 'instances.insert failed: ZONE_RESOURCE_POOL_EXHAUSTED: no room' },
    }),
    attempt({
      index: 0,
      attempt: 1,
      kind: 'succeeded',
      startedMs: 300,
      endedMs: 1010,
      instanceSeconds: 0.7,
      runId: ok0.id,
      dir: ok0.dir,
    }),
    attempt({
      index: 1,
      attempt: 1,
      kind: 'preempted',
      startedMs: 310,
      endedMs: 690,
      instanceSeconds: 0.38,
      runId: pre1.id,
      dir: pre1.dir,
    }),
    attempt({
      index: 1,
      attempt: 2,
      kind: 'succeeded',
      startedMs: 700,
      endedMs: 1470,
      instanceSeconds: 0.77,
      runId: ok1.id,
      dir: ok1.dir,
    }),
  ];
  const input = (index: number, runId: string) => ({
    index,
    args: ['prove', String(index)],
    outcome: 'succeeded' as const,
    attempts: index + 1,
    retries: index,
    zone: 'us-central1-b',
    runId,
    dir: join(runsDir, runId),
  });
  const result: FleetResult = {
    fleetId: FLEET,
    inputs: [input(0, ok0.id), input(1, ok1.id)],
    attempts,
    summary: {
      total: 2,
      succeeded: 2,
      failed: 0,
      preempted: 0,
      error: 0,
      interrupted: 0,
      notStarted: 0,
      retried: 1,
    },
    wallMs: 1470,
    instanceSeconds: 1.85,
    zones: { used: ['us-central1-a', 'us-central1-b'], left: ['us-central1-a'] },
    interrupted: false,
    cleanupErrors: [],
  } as FleetResult;
  const spec = {
    machineType: 'n2-standard-2',
    spot: true,
    parallel: 2,
    zones: ['us-central1-a', 'us-central1-b'],
    startedAt: new Date(s - 5000),
  };
  await writeFleetRecord(runsDir, buildFleetRecord(result, spec));
  return { runsDir, demo, failed, ids: [ok0.id, pre1.id, ok1.id] };
}

const folder = runsFolder();

async function figuresOf(filter = {}): Promise<ReportFigures> {
  return computeFigures(await readEvidence((await folder).runsDir), filter);
}

test('a local run: image, boot and prover as recorded; package and proofs back derived from them; no cloud cost', async () => {
  const { demo } = await folder;
  const f = await figuresOf();
  const run = f.runs.find((r) => r.id === demo.id);
  assert.ok(run);
  assert.deepEqual(run.phasesMs, {
    package: 2500 - 800 - 1200,
    image: 1200,
    insert: 0,
    boot: 800,
    prover: 20_000,
    bootProver: null,
    proofsBack: 23_000 - 2500 - 20_000,
  });
  assert.deepEqual(run.missingPhases, []);
  assert.equal(run.record, `${demo.id}/record.json`);
  assert.equal(run.proofs, 1);
  assert.equal(run.cost.estimatedUsd, null);
  assert.equal(f.totals.runs, 5);
  assert.equal(f.totals.succeeded, 3);
});

test('a failed run is listed with its error, its finding and the fix', async () => {
  const { failed } = await folder;
  const f = await figuresOf();
  const failure = f.failures.find((x) => x.id === failed.id);
  assert.ok(failure);
  assert.equal(failure.error?.code, 'E_RUN_FAILED');
  assert.deepEqual(
    failure.findings.map((x) => [x.kind, x.fix]),
    [['fork-exec-unsupported', 'Do the work in the prover’s own process']],
  );
  // The preempted attempt was retried to a proof: it is on the fleet's timeline, not among the failures.
  assert.ok(!f.failures.some((x) => x.error?.code === 'E_GCP_PREEMPTED'));
  assert.equal(f.totals.recovered, 1);
  assert.equal(f.failures.length, 1);
});

test("a fleet: one lane per input on the scheduler's clock, its preemption, retry and zone move, its phases summed", async () => {
  const { ids } = await folder;
  const f = await figuresOf();
  const fleet = f.fleets[0];
  assert.ok(fleet);
  assert.equal(fleet.record, `${FLEET}/fleet.json`);
  assert.equal(fleet.scheduledAt, new Date(T + 120_000).toISOString(), 'placed by its first record');
  assert.equal(fleet.setupMs, 5000);
  assert.deepEqual(
    fleet.lanes.map((l) => l.attempts.map((a) => `${a.kind}@${a.zone}`)),
    [
      ['capacity@us-central1-a', 'succeeded@us-central1-b'],
      ['preempted@us-central1-b', 'succeeded@us-central1-b'],
    ],
  );
  const ok0 = fleet.lanes[0]?.attempts[1];
  assert.ok(ok0);
  assert.equal(ok0.record, `${ids[0]}/record.json`);
  // Laid back from the record's end: insert, boot and prove, delete.
  assert.deepEqual(
    ok0.segments.map((s) => [s.phase, Date.parse(s.end) - Date.parse(s.start)]),
    [
      ['insert', 100],
      ['prove', 500],
      ['delete', 80],
    ],
  );
  assert.deepEqual(
    fleet.lanes[1]?.attempts[0]?.segments.map((s) => s.phase),
    ['attempt'],
  );
  assert.deepEqual(
    fleet.events.map((e) => [e.input, e.kind]),
    [
      [0, 'zone-move'],
      [1, 'preemption'],
      [1, 'retry'],
    ],
  );
  assert.match(
    fleet.events[0]?.detail ?? '',
    /us-central1-a → us-central1-b \(ZONE_RESOURCE_POOL_EXHAUSTED\)/,
  );
  // Summed over the attempts' records (the preempted one holds no durations).
  assert.equal(fleet.phasesMs.insert, 190);
  assert.equal(fleet.phasesMs.bootProver, 1100);
  assert.equal(fleet.phasesMs.proofsBack, 150);
  assert.equal(fleet.phasesMs.package, 40);
  assert.equal(fleet.phasesMs.boot, null, 'the fleet driver records no boot time');
});

test("a fleet's cost: the price table's rate for each billed attempt (a minute at least), per proof, and the preempted share", async () => {
  const f = await figuresOf();
  const fleet = f.fleets[0];
  assert.ok(fleet);
  const perMinute = (hourlyPrice(machineShape('n2-standard-2'), true) as number) / 60;
  assert.ok(Math.abs((fleet.cost.estimatedUsd as number) - 3 * perMinute) < 1e-6);
  assert.ok(Math.abs((fleet.cost.perProofUsd as number) - (3 * perMinute) / 2) < 1e-6);
  assert.ok(Math.abs((fleet.cost.preemptedUsd as number) - perMinute) < 1e-6);
  assert.equal(fleet.cost.spentUsd, null);
  assert.equal(fleet.cost.recordedUsd, 0.01, "fleet.json's own figure, rounded to cents");
  const attempt = f.runs.find((r) => r.fleet?.attempt === 2);
  assert.ok(attempt && Math.abs((attempt.cost.estimatedUsd as number) - perMinute) < 1e-6);
  assert.ok(f.notes.some((n) => /no record holds a billed amount/.test(n)));
});

test('--prover, --fleet and --since narrow the runs and fleets', async () => {
  const { demo } = await folder;
  const byProver = await figuresOf({ prover: 'demo' });
  assert.deepEqual(
    byProver.runs.map((r) => r.id),
    [demo.id],
  );
  assert.equal(byProver.fleets.length, 0);
  const byFleet = await figuresOf({ fleet: FLEET });
  assert.equal(byFleet.runs.length, 3);
  assert.equal(byFleet.fleets.length, 1);
  const since = await figuresOf({ since: new Date(T + 30_000) });
  assert.ok(!since.runs.some((r) => r.id === demo.id));
  assert.equal(since.runs.length, 4);
  assert.equal(since.filter.since, new Date(T + 30_000).toISOString());
});

test('records that are not JSON or not run records are skipped with the reason; a folder with none is E_NOT_FOUND', async () => {
  const { runsDir } = await folder;
  await mkdir(join(runsDir, 'r20261201t000000000-badbad'), { recursive: true });
  await writeFile(join(runsDir, 'r20261201t000000000-badbad', 'record.json'), '{"id": 3}');
  const evidence = await readEvidence(runsDir);
  assert.deepEqual(
    evidence.skipped.map((s) => s.path),
    ['r20261201t000000000-badbad/record.json'],
  );
  assert.match(evidence.skipped[0]?.reason ?? '', /not a run record \(id: /);
  const empty = await tempDir();
  await assert.rejects(readEvidence(empty), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_NOT_FOUND');
    assert.match(e.message, /holds no run records/);
    return true;
  });
  await assert.rejects(readEvidence(join(empty, 'none')), /does not exist/);
});

test('each chart is rendered by Vega to an SVG with marks, links to the records in it', async () => {
  const f = await figuresOf();
  for (const name of CHARTS) {
    const svg = await renderSvg(chartSpec(name, f, (p) => `../runs/${p}`));
    assert.match(svg, /<svg/, name);
    assert.match(svg, /class="mark-(symbol|rect) role-mark/, name);
    if (name === 'runs') assert.match(svg, /href="\.\.\/runs\/r\d{8}t\d{9}-[0-9a-f]{6}\/record\.json"/);
    if (name === 'fleet') assert.match(svg, />#1 prove 1</);
  }
});

test('vega is loaded only when a chart is drawn: no module imports it statically (other commands never pay for it)', async () => {
  const { readdir, readFile } = await import('node:fs/promises');
  const src = new URL('../../src/', import.meta.url);
  const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts'));
  const statics: string[] = [];
  for (const file of files) {
    const text = await readFile(new URL(file, src), 'utf8');
    for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'(vega(-lite)?)'/gms)) {
      if (!m[1]) statics.push(`${file}: ${m[2]}`);
    }
  }
  assert.deepEqual(statics, []);
  const charts = await readFile(new URL('core/report/charts.ts', src), 'utf8');
  assert.match(charts, /import\('vega'\)/);
});
