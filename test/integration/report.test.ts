/**
 * `uniprove report` over real evidence in one runs folder: a demo proof under QEMU with verify's figures of its
 * package, a run that fails inside Nanos with a finding, and a fleet against the local Compute Engine server
 * through preemptions and an exhausted zone. The page is opened in a real headless chromium: no console error,
 * every chart an SVG with marks, the failure's finding and fix shown, links that reach the records, a screenshot.
 * Then --json, --format svg, the filters and the errors for bad input.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { launchChromium, needChromium } from '../helpers/browser.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildDemoProver, needCargo } from '../helpers/demo-prover.js';
import { demoRun, failedRun, fleetRun, type ReportEvidence } from '../helpers/report-evidence.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

// Asked first and always: under UNIPROVE_REQUIRE a missing chromium fails the file whatever else is there.
const noBrowser = needChromium();
const skip = needUnikernel() ?? needGcc() ?? needCargo();
const skipBrowser = skip ?? noBrowser;
if (skip) console.log(`# report tests skipped: ${skip}`);
if (noBrowser) console.log(`# report browser test skipped: ${noBrowser}`);

interface ReportJson {
  output: string | null;
  format: string;
  runsDir: string;
  filter: Record<string, string | null>;
  totals: { runs: number; succeeded: number; notSucceeded: number; fleets: number; proofs: number };
  runs: {
    id: string;
    prover: string;
    outcome: string;
    record: string;
    fleet: { id: string } | null;
    phasesMs: Record<string, number | null>;
    missingPhases: string[];
    cost: { estimatedUsd: number | null; spentUsd: number | null };
  }[];
  failures: { id: string; prover: string; record: string; findings: { kind: string; fix: string }[] }[];
  fleets: {
    id: string;
    inputs: number;
    succeeded: number;
    retried: number;
    setupMs: number;
    cost: { estimatedUsd: number; perProofUsd: number; preemptedUsd: number; spentUsd: null };
    lanes: {
      input: number;
      attempts: { kind: string; segments: { phase: string }[]; record: string | null }[];
    }[];
    events: { kind: string; input: number; detail: string }[];
  }[];
  verify: { provers: string[]; cpuSeconds: number; peakMemoryMiB: number }[];
  notes: string[];
}

const root = skip ? '' : await tempDir('uniprove-report-');
const runsDir = join(root, 'runs');
let evidence: ReportEvidence | undefined;

/** The runs folder with every kind of evidence, made once for the file. */
async function made(): Promise<ReportEvidence> {
  if (evidence) return evidence;
  const prover = await buildDemoProver();
  assert.ok(prover, 'cargo built no demo prover');
  const demo = await demoRun(root, runsDir, prover);
  const failed = await failedRun(root, runsDir);
  const fleet = await fleetRun(root, runsDir, 6, 2);
  evidence = { runsDir, demo, failed, fleet };
  return evidence;
}

test('report: the page opens in headless chromium with no console error, every chart drawn, the failure and its fix shown', {
  skip: skipBrowser,
  timeout: 20 * 60_000,
}, async () => {
  const ev = await made();
  const out = join(root, 'out', 'report.html');
  const r = await uniprove(['report', ev.runsDir, '-o', out], { cwd: root });
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /wrote .*report\.html .*: \d+ runs \(\d+ succeeded, \d+ did not\), 1 fleets/);
  const html = await readFile(out, 'utf8');
  // Self-contained: nothing fetched from anywhere, no script.
  assert.doesNotMatch(html, /<script|<link |src="http|@import/i);

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    const requests: string[] = [];
    page.on('request', (q) => requests.push(q.url()));
    await page.goto(pathToFileURL(out).href, { waitUntil: 'load' });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      requests.filter((u) => !u.startsWith('file:')),
      [],
      'the page fetched something',
    );
    // Every chart: an SVG in its section with marks in it.
    for (const [section, mark] of [
      ['#runs', '.mark-symbol path'],
      ['#fleet', '.mark-rect path'],
      ['#time', '.mark-rect path'],
      ['#cost', '.mark-rect path'],
    ] as const) {
      const svgs = await page.locator(`${section} .chart svg`).count();
      assert.ok(svgs >= 1, `${section} has no chart`);
      const marks = await page.locator(`${section} .chart svg ${mark}`).count();
      assert.ok(marks >= 1, `${section}'s chart has no marks (${mark})`);
    }
    // The fleet lanes: one per input.
    const lanes = await page.locator('#fleet .chart svg .mark-text.role-axis-label text').allTextContents();
    for (let i = 0; i < 6; i++)
      assert.ok(
        lanes.some((t) => t.startsWith(`#${i} prove ${i}`)),
        lanes.join('|'),
      );
    // The failure, its finding and its fix, and a link that reaches its record.
    const failure = page.locator('#runs tr', { hasText: ev.failed.id });
    assert.match(await failure.innerText(), /fork-exec-unsupported/);
    assert.match(await failure.innerText(), /fix: /);
    const href = await failure.locator('a').first().getAttribute('href');
    assert.ok(href, 'the failure has no link');
    assert.equal(resolve(dirname(out), href), join(ev.failed.dir, 'record.json'));
    await stat(resolve(dirname(out), href));
    // Links inside the charts reach records too.
    const chartLinks = await page
      .locator('#runs .chart svg a')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? a.getAttribute('xlink:href') ?? ''));
    assert.ok(chartLinks.length >= 3, `links in the runs chart: ${chartLinks.length}`);
    for (const link of chartLinks) await stat(resolve(dirname(out), link));

    const shot = join(root, 'out', 'report.png');
    // The page down to the end of the fleet timeline: the runs, the failure and its fix, the fleet's lanes.
    await page.setViewportSize({ width: 1100, height: 900 });
    const fleetBox = await page.locator('#fleet').boundingBox();
    assert.ok(fleetBox, 'the fleet section is not laid out');
    const height = Math.ceil(fleetBox.y + fleetBox.height + 8);
    await page.screenshot({ path: shot, fullPage: true, clip: { x: 0, y: 0, width: 1100, height } });
    assert.ok((await stat(shot)).size > 10_000, 'the screenshot is empty');
    // UNIPROVE_REPORT_SCREENSHOT=path keeps it (docs/report.png is made so).
    const keep = process.env.UNIPROVE_REPORT_SCREENSHOT;
    if (keep) await copyFile(shot, keep);
  } finally {
    await browser.close();
  }
});

test('report --json: the same figures as data, from the records', {
  skip,
  timeout: 20 * 60_000,
}, async () => {
  const ev = await made();
  const r = await uniprove(['report', ev.runsDir, '--json'], { cwd: root });
  assert.equal(r.exitCode, 0, r.stderr);
  const j = parseJson<ReportJson>(r);
  assert.deepEqual(Object.keys(j), [
    'output',
    'format',
    'runsDir',
    'filter',
    'totals',
    'runs',
    'failures',
    'fleets',
    'verify',
    'prices',
    'notes',
    'skipped',
  ]);
  assert.equal(j.output, null, '--json alone writes no page');
  assert.equal(j.totals.fleets, 1);
  const demo = j.runs.find((x) => x.id === ev.demo.id);
  assert.ok(demo);
  assert.equal(demo.outcome, 'succeeded');
  const record = JSON.parse(await readFile(join(ev.demo.dir, 'record.json'), 'utf8'));
  // The figures are the record's: prover and boot as recorded, package and proofs back derived from them.
  assert.equal(demo.phasesMs.prover, record.timings.proverMs);
  assert.equal(demo.phasesMs.boot, record.timings.bootMs);
  assert.equal(demo.phasesMs.image, record.timings.imageBuildMs);
  assert.equal(
    demo.phasesMs.package,
    record.timings.firstConsoleLineMs - record.timings.bootMs - record.timings.imageBuildMs,
  );
  assert.equal(
    demo.phasesMs.proofsBack,
    record.timings.totalMs - record.timings.firstConsoleLineMs - record.timings.proverMs,
  );
  assert.equal(demo.cost.estimatedUsd, null, 'a run on this host has no cloud cost');
  const failure = j.failures.find((f) => f.id === ev.failed.id);
  assert.ok(failure, JSON.stringify(j.failures.map((f) => f.id)));
  assert.ok(failure.findings.some((f) => f.kind === 'fork-exec-unsupported' && f.fix.length > 0));
  // The fleet: 6 lanes, 2 preemptions retried, the exhausted zone left; its cost per proof from the price table.
  const fleet = j.fleets[0];
  assert.ok(fleet);
  assert.equal(fleet.id, ev.fleet.id);
  const record2 = JSON.parse(await readFile(ev.fleet.record, 'utf8'));
  assert.equal(fleet.lanes.length, 6);
  assert.equal(fleet.retried, record2.retried);
  assert.equal(fleet.events.filter((e) => e.kind === 'preemption').length, 2);
  assert.equal(fleet.events.filter((e) => e.kind === 'retry').length, 2);
  assert.ok(
    fleet.events.some((e) => e.kind === 'zone-move' && /us-central1-a → us-central1-b/.test(e.detail)),
  );
  const proved = fleet.lanes.flatMap((l) => l.attempts).filter((a) => a.kind === 'succeeded');
  assert.equal(proved.length, 6);
  // A fleet's attempts are run by the one gce driver, which times the boot and the prover as a single run's.
  for (const a of proved)
    assert.deepEqual(
      a.segments.map((s) => s.phase),
      ['insert', 'boot', 'prove', 'delete'],
    );
  assert.ok(fleet.cost.estimatedUsd > 0 && fleet.cost.perProofUsd > 0);
  assert.ok(Math.abs(fleet.cost.perProofUsd * 6 - fleet.cost.estimatedUsd) < 1e-5);
  assert.ok(fleet.cost.preemptedUsd > 0);
  assert.equal(fleet.cost.spentUsd, null);
  assert.ok(fleet.setupMs > 0, 'the fleet spent no time before its first instance');
  // verify's figures of the demo package.
  const usage = j.verify.find((v) => v.provers.includes('demo'));
  assert.ok(usage, JSON.stringify(j.verify));
  assert.ok(usage.cpuSeconds > 0 && usage.peakMemoryMiB > 1);
  // Every record path is one of the folder's records.
  for (const run of j.runs) await stat(join(ev.runsDir, run.record));
});

test('report --format svg --chart: one chart alone, to a file or stdout; the filters narrow the figures', {
  skip,
  timeout: 20 * 60_000,
}, async () => {
  const ev = await made();
  for (const chart of ['runs', 'fleet', 'time', 'cost']) {
    const path = join(root, 'svg', `${chart}.svg`);
    const r = await uniprove(['report', ev.runsDir, '--format', 'svg', '--chart', chart, '-o', path], {
      cwd: root,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    const svg = await readFile(path, 'utf8');
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /class="mark-(rect|symbol)/);
  }
  const piped = await uniprove(['report', ev.runsDir, '--format', 'svg', '--chart', 'time', '-o', '-'], {
    cwd: root,
  });
  assert.equal(piped.exitCode, 0, piped.stderr);
  assert.match(piped.stdout, /^<svg/);

  const demoOnly = parseJson<ReportJson>(
    await uniprove(['report', ev.runsDir, '--prover', 'demo', '--json'], { cwd: root }),
  );
  assert.deepEqual([...new Set(demoOnly.runs.map((x) => x.prover))], ['demo']);
  assert.equal(demoOnly.fleets.length, 0);
  const fleetOnly = parseJson<ReportJson>(
    await uniprove(['report', ev.runsDir, '--fleet', ev.fleet.id, '--json'], { cwd: root }),
  );
  assert.ok(fleetOnly.runs.length >= 6 && fleetOnly.runs.every((x) => x.fleet?.id === ev.fleet.id));
  const noFleet = await uniprove(['report', ev.runsDir, '--fleet', 'f20000101t000000000-000000'], {
    cwd: root,
  });
  assert.equal(noFleet.exitCode, 2);
  assert.match(noFleet.stderr, new RegExp(`no such fleet .*Fleets there: ${ev.fleet.id}`, 's'));
  const future = await uniprove(['report', ev.runsDir, '--since', '2999-01-01', '--json'], { cwd: root });
  assert.equal(future.exitCode, 2, future.stdout);
  assert.equal(parseJson<{ error: { code: string } }>(future).error.code, 'E_NOT_FOUND');
  const recent = parseJson<ReportJson>(
    await uniprove(['report', ev.runsDir, '--since', '1d', '--json'], { cwd: root }),
  );
  assert.equal(
    recent.runs.length,
    parseJson<ReportJson>(await uniprove(['report', ev.runsDir, '--json'], { cwd: root })).runs.length,
  );
});

test('report of a folder that does not exist, holds no records, or with flags that do not go together: exit 2 naming the input and the fix', async () => {
  const dir = await tempDir('uniprove-report-bad-');
  const missing = await uniprove(['report', join(dir, 'nope')], { cwd: dir });
  assert.equal(missing.exitCode, 2, missing.stderr);
  assert.match(missing.stderr, /E_NOT_FOUND.*runs folder .*nope does not exist/);
  assert.match(missing.stderr, /--runs-dir/);
  const missingJson = parseJson<{ error: { code: string; message: string; hint: string } }>(
    await uniprove(['report', join(dir, 'nope'), '--json'], { cwd: dir }),
  );
  assert.equal(missingJson.error.code, 'E_NOT_FOUND');
  assert.ok(missingJson.error.hint);

  await mkdir(join(dir, 'empty', 'r20260101t000000000-abcdef'), { recursive: true });
  await writeFile(join(dir, 'empty', 'r20260101t000000000-abcdef', 'record.json'), '{"id": "half');
  const empty = await uniprove(['report', join(dir, 'empty')], { cwd: dir });
  assert.equal(empty.exitCode, 2, empty.stderr);
  assert.match(empty.stderr, /holds no run records .*1 unreadable: r20260101t000000000-abcdef\/record\.json/);
  assert.match(empty.stderr, /uniprove run demo/);

  await writeFile(join(dir, 'afile'), 'x');
  const file = await uniprove(['report', join(dir, 'afile')], { cwd: dir });
  assert.equal(file.exitCode, 2);
  assert.match(file.stderr, /is not a folder/);

  const chart = await uniprove(['report', join(dir, 'empty'), '--chart', 'fleet'], { cwd: dir });
  assert.equal(chart.exitCode, 2);
  assert.match(chart.stderr, /--chart fleet .*only --format svg/);
  const since = await uniprove(['report', join(dir, 'empty'), '--since', 'last tuesday'], { cwd: dir });
  assert.equal(since.exitCode, 2);
  assert.match(since.stderr, /--since must be a date, a time or an age, not "last tuesday"/);
  const format = await uniprove(['report', '--format', 'pdf'], { cwd: dir });
  assert.equal(format.exitCode, 2);

  const help = await uniprove(['report', '--help'], { cwd: dir });
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /Examples:\n\s+\$ uniprove report /);
  assert.match(help.stdout, /--format svg --chart fleet/);
});
