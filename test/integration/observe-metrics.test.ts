/**
 * Prometheus metrics as a user gets them: a real Prometheus (Debian's binary, started here on 127.0.0.1 with a
 * 1 s scrape) scrapes `gcp run --inputs --metrics-port` while a fleet runs against the local Compute Engine
 * server through an injected preemption and an input that fails, and its HTTP API answers with the fleet's
 * series; a port in use is E_PORT_IN_USE naming the flag before anything is made; `run --parallel
 * --metrics-textfile` (a real ops build, Nanos and QEMU) writes node_exporter's textfile, parsed back here.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { execa } from 'execa';
import { CLI, parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { GceServer } from '../helpers/gce-server.js';
import { fleetCliEnv, trueRecipe } from '../helpers/gcp.js';
import { argsTable, bootedArgs, fleetServerConsole } from '../helpers/gcp-fleet.js';
import { freePort, needPrometheus, startPrometheus } from '../helpers/prometheus.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needNanos, needOps, needUnikernel } from '../helpers/tools.js';

const dir = await tempDir('uniprove-observe-metrics-');
const INPUTS = [
  ['prove', '0'],
  ['prove', '1'],
  ['prove', '2'],
  ['prove', 'bad'],
];
const TABLE = argsTable(INPUTS);
const proofs = fleetServerConsole(TABLE);
/**
 * Instances prove the arguments of the image they boot, except `prove bad`, whose kernel stops (an assertion, as
 * Nanos prints it): that input fails by itself, with a kernel-stop finding, and is not retried.
 */
export const KERNEL_ASSERT =
  'assertion vmap_lock held failed at /nanos/src/unix/mmap.c:412 (IP 0xffffffff8003f4b2) in vmap_remove()';
const server = await GceServer.start({
  console: (name, body, s) =>
    bootedArgs(body, s, TABLE)?.[1] === 'bad'
      ? `Nanos booting\nen1: assigned 10.0.0.2\nprover: no witness for this input\nUNIPROVE-PROOF-END\nexit status 1\n`
      : proofs(name, body, s),
});
after(() => server.close());

/** The CLI's environment against the local server, with the cache of this file's folder. */
function env(cwd: string): Record<string, string> {
  return fleetCliEnv(server, cwd, join(dir, 'cache'));
}

async function inputsFile(name: string, lines: string[][]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  return path;
}

const skipPrometheus = needPrometheus();
if (skipPrometheus) console.log(`# Prometheus tests skipped: ${skipPrometheus}`);
const skipFleet = needOps() ?? needNanos() ?? skipPrometheus;

test('a real Prometheus scrapes gcp run --inputs --metrics-port: inputs by state, attempts, a preemption and its retry, proof durations, cost', {
  skip: skipFleet,
  timeout: 300_000,
}, async () => {
  const recipe = await trueRecipe(dir, 'observed', [], { memory: '2G', cpus: 2 });
  const inputs = await inputsFile('inputs.txt', INPUTS);
  const port = await freePort();
  const prometheus = await startPrometheus(port);
  after(() => prometheus.close());
  server.preemptNext(1, { afterSerialReads: 2 });
  const r = await uniprove(
    [
      ...['gcp', 'run', recipe, '--inputs', inputs, '--parallel', '2', '--json'],
      ...['--metrics-port', String(port), '--metrics-linger', '20s'],
    ],
    { env: env(dir), cwd: dir, timeoutMs: 240_000 },
  );
  const context = `${r.stderr.slice(-3000)}\n--- prometheus:\n${prometheus.log().slice(-1500)}`;
  // One input fails by itself: the fleet's exit status says so (1); the rest proved.
  assert.equal(r.exitCode, 1, context);
  const out = parseJson<{ summary: { succeeded: number; failed: number; retried: number } }>(r);
  assert.equal(out.summary.succeeded, 3, context);
  assert.equal(out.summary.failed, 1, context);
  assert.equal(out.summary.retried, 1, context);
  assert.match(r.stderr, new RegExp(`metrics: http://127\\.0\\.0\\.1:${port}/metrics`));
  // The server is gone once the fleet ended: the port is free again.
  const probe = createServer().listen(port, '127.0.0.1');
  await once(probe, 'listening');
  probe.close();

  const targets = await prometheus.targets();
  assert.equal(targets.length, 1);
  // The last value of each series Prometheus kept (the target is down now, so plain instant queries are stale).
  const last = (expr: string) => prometheus.value(`sum(last_over_time(${expr}[10m]))`);
  assert.equal(await last('uniprove_inputs{prover="observed",state="succeeded"}'), 3, context);
  assert.equal(await last('uniprove_inputs{state="failed"}'), 1);
  assert.equal(await last('uniprove_inputs{state="queued"}'), 0);
  assert.equal(await last('uniprove_inputs{state="running"}'), 0);
  // Prometheus scraped while the work ran (the end time still 0) and once after it ended (--metrics-linger).
  // The fake instances prove in milliseconds, so whether a 1 s scrape catches one running is left to chance.
  const ends = await prometheus.query('uniprove_last_end_timestamp_seconds[10m]');
  const values = (ends[0] as unknown as { values: [number, string][] } | undefined)?.values ?? [];
  assert.ok(
    values.some(([, v]) => v === '0'),
    `no scrape while it ran: ${JSON.stringify(values)}`,
  );
  assert.ok(Number(values.at(-1)?.[1]) > 0, `no scrape after the end: ${JSON.stringify(values)}`);
  assert.equal(await last('uniprove_attempts_total'), 5, 'four inputs and one retry');
  assert.equal(await last('uniprove_attempts_total{outcome="preempted"}'), 1);
  assert.equal(await last('uniprove_attempts_total{outcome="failed"}'), 1);
  assert.equal(await last('uniprove_preemptions_total{zone="us-central1-a"}'), 1);
  assert.equal(await last('uniprove_retries_total'), 1);
  // Each attempt that ended with a record (3 proofs, 1 failure) is in the histogram; the preempted one is not.
  assert.equal(await last('uniprove_proof_duration_seconds_count'), 4);
  assert.equal(await last('uniprove_proof_duration_seconds_count{outcome="succeeded"}'), 3);
  assert.ok(((await last('uniprove_proof_duration_seconds_bucket{le="+Inf"}')) ?? 0) === 4);
  assert.ok(((await last('uniprove_proof_bytes_total')) ?? 0) > 0, 'no proof bytes counted');
  assert.ok(((await last('uniprove_cost_usd')) ?? 0) > 0, 'no cost');
  assert.ok(((await last('process_cpu_seconds_total')) ?? 0) > 0, "prom-client's process metrics");
  // Labels stay low-cardinality: no run ids, fleet ids or arguments in any series.
  const all = await prometheus.query('last_over_time({__name__=~"uniprove_.*"}[10m])');
  assert.ok(all.length > 0, 'no uniprove series');
  for (const s of all) {
    for (const [k, v] of Object.entries(s.metric)) {
      assert.ok(['__name__', 'job', 'instance', 'prover', 'state', 'zone', 'outcome', 'le'].includes(k), k);
      assert.ok(!/^[rf]\d{8}t/.test(v) && !v.includes('prove '), `${k}=${v}`);
    }
  }
  assert.ok(!r.stderr.includes(server.token) && !r.stdout.includes(server.token));
});

test('Ctrl-C while the fleet runs: exit 130, the metrics server closed, the textfile written with what was done', {
  skip: needOps() ?? needNanos(),
  timeout: 300_000,
}, async () => {
  const recipe = await trueRecipe(dir, 'interrupted', [], { memory: '2G', cpus: 2 });
  const inputs = await inputsFile('int.txt', INPUTS);
  const port = await freePort();
  const textfile = join(dir, 'int.prom');
  const child = execa(
    process.execPath,
    [
      ...[CLI, 'gcp', 'run', recipe, '--inputs', inputs, '--parallel', '2', '--json'],
      ...['--metrics-port', String(port), '--metrics-textfile', textfile],
    ],
    { cwd: dir, env: { ...env(dir), CI: '1' }, reject: false, timeout: 240_000 },
  );
  // Once /metrics shows an input running, Ctrl-C.
  for (;;) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    if (/uniprove_inputs\{prover="interrupted",state="running"\} [1-9]/.test(text)) break;
    if (child.exitCode !== null) assert.fail(`the fleet ended first: ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGINT');
  const r = await child;
  assert.equal(r.exitCode, 130, String(r.stderr).slice(-2000));
  const probe = createServer().listen(port, '127.0.0.1');
  await once(probe, 'listening');
  probe.close();
  const text = await readFile(textfile, 'utf8');
  assert.match(text, /uniprove_inputs\{prover="interrupted",state="running"\} 0/);
  assert.match(text, /uniprove_last_end_timestamp_seconds\{prover="interrupted"\} [1-9]/);
  assert.deepEqual(server.inventory(), []);
});

test('--metrics-port in use: E_PORT_IN_USE (exit 3) naming the flag and the fix, before anything is made', async () => {
  const recipe = await trueRecipe(dir, 'busy', [], { memory: '2G', cpus: 2 });
  const inputs = await inputsFile('busy.txt', [['prove', '0']]);
  const holder = createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  const port = (holder.address() as { port: number }).port;
  const before = server.requests.length;
  try {
    const r = await uniprove(
      ['gcp', 'run', recipe, '--inputs', inputs, '--metrics-port', String(port), '--json'],
      { env: env(dir), cwd: dir },
    );
    assert.equal(r.exitCode, 3, r.stderr);
    const error = parseJson<{ error: { code: string; message: string; hint: string } }>(r).error;
    assert.equal(error.code, 'E_PORT_IN_USE');
    assert.match(error.message, new RegExp(`--metrics-port ${port}`));
    assert.match(error.hint, /--metrics-port 0/);
    assert.equal(server.requests.length, before, 'a request was made');
  } finally {
    holder.close();
  }
  const bad = await uniprove(['gcp', 'run', recipe, '--inputs', inputs, '--metrics-port', 'http'], {
    env: env(dir),
    cwd: dir,
  });
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /--metrics-port http is not a TCP port/);
  const host = await uniprove(['run', recipe, '--metrics-host', '0.0.0.0'], { env: env(dir), cwd: dir });
  assert.equal(host.exitCode, 2);
  assert.match(host.stderr, /--metrics-host goes with --metrics-port/);
});

/** A static C prover: prints a console proof of its argument and exits with the status it is given second. */
const PROVER = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  printf("UNIPROVE-PROOF-BEGIN\\nproof of %s\\nUNIPROVE-PROOF-END\\n", argc > 1 ? argv[1] : "-");
  fflush(stdout);
  return argc > 2 ? atoi(argv[2]) : 0;
}`;

test('run --parallel --metrics-textfile --alert-url: node_exporter textfile written atomically at the end, parsed back; one alert for the failed run, one at the end', {
  skip: needUnikernel() ?? needGcc(),
  timeout: 600_000,
}, async () => {
  const folder = join(dir, 'tprover');
  await (await import('node:fs/promises')).mkdir(folder, { recursive: true });
  await compileC(folder, 'tprover', PROVER, ['-static']);
  await writeFile(
    join(folder, 'recipe.json'),
    JSON.stringify({
      name: 'tprover',
      binary: './tprover',
      probe: { skip: true },
      proof: { kind: 'console' },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const inputs = await inputsFile('local.txt', [
    ['a', '0'],
    ['b', '0'],
    ['c', '3'],
  ]);
  const textDir = join(dir, 'textfile');
  const textfile = join(textDir, 'uniprove.prom');
  const got: Record<string, unknown>[] = [];
  const hook = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      got.push(JSON.parse(body));
      res.end('ok');
    });
  }).listen(0, '127.0.0.1');
  await once(hook, 'listening');
  after(() => hook.close());
  const alertUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`;
  const r = await uniprove(
    [
      ...['run', folder, '--parallel', '2', '--inputs', inputs, '--timeout', '300'],
      ...['--package-out', join(dir, 'tpkg'), '--metrics-textfile', textfile, '--json'],
      ...['--alert-url', alertUrl],
    ],
    { cwd: dir, timeoutMs: 540_000 },
  );
  assert.equal(r.exitCode, 1, r.stderr.slice(-3000));
  assert.match(r.stderr, /metrics written to /);
  // Only the .prom file: no temp file left for node_exporter to trip on.
  assert.deepEqual(await readdir(textDir), ['uniprove.prom']);
  const samples = parseTextfile(await readFile(textfile, 'utf8'));
  const get = (name: string, labels: Record<string, string> = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  assert.equal(get('uniprove_inputs', { prover: 'tprover', state: 'succeeded' }), 2);
  assert.equal(get('uniprove_inputs', { state: 'failed' }), 1);
  assert.equal(get('uniprove_inputs', { state: 'queued' }), 0);
  assert.equal(get('uniprove_attempts_total', { zone: 'local', outcome: 'succeeded' }), 2);
  assert.equal(get('uniprove_attempts_total', { outcome: 'failed' }), 1);
  assert.equal(get('uniprove_proof_duration_seconds_count'), 3);
  assert.ok(get('uniprove_proof_bytes_total') > 0);
  assert.ok(get('uniprove_last_end_timestamp_seconds') > Date.now() / 1000 - 600);
  assert.equal(get('uniprove_cost_usd'), 0, 'a local batch has no cost series');
  // node_exporter exports process_* of its own: the textfile carries none (duplicates fail its scrape).
  assert.ok(!samples.some((s) => s.name.startsWith('process_') || s.name.startsWith('nodejs_')));
  // The alerts: the run of input 3 (exit 3) and the batch's end.
  assert.deepEqual(got.map((a) => a.kind).sort(), ['batch-ended', 'input-failed'], JSON.stringify(got));
  const failed = got.find((a) => a.kind === 'input-failed')!;
  assert.equal(failed.outcome, 'failed');
  assert.equal(failed.input, 2);
  assert.equal(failed.prover, 'tprover');
  assert.match(String(failed.text), /input 3 failed/);
  assert.match(String(failed.record), /record\.json$/);
  const end = got.find((a) => a.kind === 'batch-ended')!;
  assert.match(String(end.text), /2 of 3 runs succeeded, 1 failed/);
  assert.deepEqual(end.summary, {
    total: 3,
    succeeded: 2,
    failed: 1,
    timeout: 0,
    unknown: 0,
    error: 0,
    interrupted: 0,
  });
});

/** Prometheus text exposition, as node_exporter's textfile collector reads it: every sample with its labels. */
function parseTextfile(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.ok(!typed.has(type[1]!), `${type[1]} typed twice`);
      typed.add(type[1]!);
      continue;
    }
    if (line.startsWith('#')) {
      assert.match(line, /^# HELP \S+ .+/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line (or it has a timestamp, which the textfile collector refuses): ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}
