/**
 * The observing parts without a run: what a scrape shows after a fleet's events (states, attempts, retries,
 * cost), the textfile written atomically, the alert message of a failed record with its finding, and the
 * scrubbing of credentials (a fake service-account key file, tokens in the environment) from it.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FleetEvent, FleetResult } from '../../src/core/gcp/fleet/scheduler.js';
import { createAlerter, parseAlertUrl, runAlert, scrub, secretsOf } from '../../src/core/observe/alerts.js';
import { startMetrics } from '../../src/core/observe/metrics.js';
import type { RunRecord } from '../../src/core/record/record.js';
import { tempDir } from '../helpers/tmp.js';

const ev = (index: number, attempt: number, state: string, zone = 'us-central1-a'): FleetEvent =>
  ({ kind: 'instance', index, input: `prove ${index}`, zone, attempt, state, elapsedMs: 1000 }) as FleetEvent;

/** The value of one series of a scrape's text (its labels as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('a fleet through its events: inputs by state, attempts by outcome, a preemption and its retry, the cost so far', async () => {
  let now = 1_000_000;
  const m = await startMetrics({ prover: 'demo', now: () => now });
  m.setWork({ inputs: 3, machine: { machineType: 'n2-standard-2', spot: true } });
  let text = await m.text();
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="queued"}'), 3);
  for (const s of ['starting', 'inserting', 'proving']) m.fleetEvent(ev(0, 1, s));
  m.fleetEvent(ev(1, 1, 'inserting'));
  text = await m.text();
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="running"}'), 2);
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="queued"}'), 1);
  now += 3600_000;
  m.fleetEvent(ev(0, 1, 'preempted'));
  m.fleetEvent(ev(1, 1, 'succeeded'));
  m.fleetEvent(ev(0, 2, 'starting'));
  m.fleetEvent(ev(0, 2, 'succeeded'));
  m.fleetEvent(ev(2, 1, 'capacity', 'us-central1-b'));
  text = await m.text();
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="succeeded"}'), 2);
  assert.equal(
    sample(text, 'uniprove_inputs{prover="demo",state="queued"}'),
    1,
    'a capacity refusal is queued again',
  );
  assert.equal(
    sample(text, 'uniprove_attempts_total{prover="demo",zone="us-central1-a",outcome="preempted"}'),
    1,
  );
  assert.equal(
    sample(text, 'uniprove_attempts_total{prover="demo",zone="us-central1-b",outcome="capacity"}'),
    1,
  );
  assert.equal(sample(text, 'uniprove_preemptions_total{prover="demo",zone="us-central1-a"}'), 1);
  assert.equal(sample(text, 'uniprove_retries_total{prover="demo",zone="us-central1-a"}'), 1);
  // Two instance-hours or so of a Spot n2-standard-2: cents, not zero, not dollars.
  const cost = sample(text, 'uniprove_cost_usd{prover="demo"}')!;
  assert.ok(cost > 0.01 && cost < 1, String(cost));
  m.fleetResult(
    {
      inputs: [
        { index: 0, outcome: 'succeeded' },
        { index: 1, outcome: 'succeeded' },
        { index: 2, outcome: 'error' },
      ],
    } as FleetResult,
    0.42,
  );
  text = await m.text();
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="error"}'), 1);
  assert.equal(sample(text, 'uniprove_inputs{prover="demo",state="queued"}'), 0);
  assert.equal(sample(text, 'uniprove_cost_usd{prover="demo"}'), 0.42, "the fleet record's cost at the end");
  assert.ok(!/r\d{8}t|prove \d/.test(text), 'no run id or argument in a label');
});

test('the textfile: written at the end by rename (no temp file left), without process metrics', async () => {
  const dir = await tempDir();
  const path = join(dir, 'uniprove.prom');
  await writeFile(path, 'old\n');
  const m = await startMetrics({ prover: 'demo', textfile: path, inputs: 1 });
  m.runStarted(0);
  m.runRecord(
    {
      outcome: 'succeeded',
      via: 'qemu',
      timings: { totalMs: 12_500 },
      proofs: [{ path: 'proofs/p', sha256: 'x', bytes: 1234, source: 'console' }],
    } as unknown as RunRecord,
    0,
  );
  assert.equal(await readFile(path, 'utf8'), 'old\n', 'nothing written before the end');
  assert.deepEqual(await m.finish(), { textfile: path });
  assert.deepEqual(await m.finish(), { textfile: path }, 'twice is once');
  const text = await readFile(path, 'utf8');
  assert.deepEqual(await readdir(dir), ['uniprove.prom']);
  assert.equal(sample(text, 'uniprove_proof_bytes_total{prover="demo"}'), 1234);
  assert.equal(
    sample(text, 'uniprove_proof_duration_seconds_bucket{le="15",prover="demo",outcome="succeeded"}'),
    1,
  );
  assert.equal(sample(text, 'uniprove_attempts_total{prover="demo",zone="local",outcome="succeeded"}'), 1);
  assert.ok((sample(text, 'uniprove_last_end_timestamp_seconds{prover="demo"}') ?? 0) > 1.7e9);
  assert.ok(!text.includes('process_cpu'), 'node_exporter has process_* of its own');
});

test('alert URLs: http and https only, the source named', () => {
  assert.equal(
    parseAlertUrl('https://hooks.slack.com/services/T/B/X', '--alert-url').host,
    'hooks.slack.com',
  );
  assert.throws(
    () => parseAlertUrl('file:///etc/passwd', '--alert-url'),
    /--alert-url must be an http or https URL/,
  );
  assert.throws(
    () => parseAlertUrl('hooks', 'UNIPROVE_ALERT_URL'),
    /UNIPROVE_ALERT_URL "hooks" is not a URL/,
  );
});

test("secrets of a key file and of the environment are scrubbed from a failed run's alert", async () => {
  const dir = await tempDir();
  const pem =
    '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n';
  const key = join(dir, 'key.json');
  await writeFile(
    key,
    JSON.stringify({ type: 'service_account', private_key_id: 'abcdef0123456789abcdef', private_key: pem }),
  );
  const secrets = await secretsOf({
    GOOGLE_APPLICATION_CREDENTIALS: key,
    GITHUB_TOKEN: 'ghp_0123456789abcdefghij0123456789ABCD',
    DB_PASSWORD: 'hunter2hunter2',
    HOME: '/home/prover',
  });
  assert.ok(!secrets.includes('/home/prover'), 'HOME is no secret');
  const record = {
    id: 'r20261207t010000000-abcdef',
    dir: '/runs/r20261207t010000000-abcdef',
    prover: 'demo',
    outcome: 'failed',
    exitCode: 1,
    exitReason: 'the prover exited 1',
    error: {
      code: 'E_RUN_FAILED',
      message: `upload refused: Authorization: Bearer ya29.c.b0AXv0zTOK3n; key ${pem.split('\n')[1]}; password hunter2hunter2; token ghp_0123456789abcdefghij0123456789ABCD; https://user:pa55w0rd@example.com/x?token=abc`,
    },
    findings: [
      {
        kind: 'missing-library',
        message: 'libssl.so.3 is missing',
        fix: 'add /usr/lib/x86_64-linux-gnu/libssl.so.3 to the recipe files',
      },
    ],
  } as unknown as RunRecord;
  const message = runAlert(record, { kind: 'run-failed' });
  assert.deepEqual(message.findings, [
    {
      code: 'missing-library',
      message: 'libssl.so.3 is missing',
      fix: 'add /usr/lib/x86_64-linux-gnu/libssl.so.3 to the recipe files',
    },
  ]);
  assert.match(message.text, /fix: add \/usr\/lib/);
  const text = scrub(JSON.stringify(message), secrets);
  for (const s of [
    'ya29.c.b0AXv0zTOK3n',
    'MIIEvQIBADAN',
    'hunter2hunter2',
    'ghp_0123456789',
    'pa55w0rd',
    'token=abc',
  ])
    assert.ok(!text.includes(s), `${s} is still in ${text}`);
  assert.ok(text.includes('r20261207t010000000-abcdef'), 'the run id stays');
  // The posted body is scrubbed as well: a receiver on 127.0.0.1 records it.
  const { createServer } = await import('node:http');
  const got: string[] = [];
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => {
      b += c.toString();
    });
    req.on('end', () => {
      got.push(b);
      res.end('ok');
    });
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const alerter = createAlerter({
    url: new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/`),
    secrets,
  });
  alerter.send(message);
  assert.deepEqual(await alerter.close(), { sent: 1, failed: [] });
  server.close();
  assert.equal(got.length, 1);
  for (const s of ['ya29.c.b0AXv0zTOK3n', 'MIIEvQIBADAN', 'hunter2hunter2', 'ghp_0123456789', 'pa55w0rd'])
    assert.ok(!got[0]!.includes(s), s);
  assert.equal(JSON.parse(got[0]!).runId, record.id);
});
