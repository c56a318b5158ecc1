/**
 * Alerts as a receiver gets them: a local HTTP server on 127.0.0.1 records every POST of `gcp run --inputs
 * --alert-url` against the local Compute Engine server. A fleet with one failing input and one preemption sends
 * one alert for the failed input and one at its end, with the fields a receiver routes on, and nothing of the
 * fake service-account key or the token in the environment; a receiver that answers 500 or never answers
 * changes nothing about the fleet's outcome and holds its end a few seconds at most; a bad URL is a usage error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { fleetCliEnv, trueRecipe } from '../helpers/gcp.js';
import { argsTable, bootedArgs, fleetServerConsole } from '../helpers/gcp-fleet.js';
import { tempDir } from '../helpers/tmp.js';
import { needNanos, needOps } from '../helpers/tools.js';

const dir = await tempDir('uniprove-observe-alerts-');
const INPUTS = [
  ['prove', '0'],
  ['prove', '1'],
  ['prove', 'bad'],
];
const TABLE = argsTable([...INPUTS, ['prove', 'x'], ['prove', 'y']]);
const proofs = fleetServerConsole(TABLE);
/** `prove bad` reaches the proof's end marker with no proof before it: it fails by itself, not retried. */
const server = await GceServer.start({
  console: (name, body, s) =>
    bootedArgs(body, s, TABLE)?.[1] === 'bad'
      ? 'Nanos booting\nen1: assigned 10.0.0.2\nprover: no witness for this input\nUNIPROVE-PROOF-END\nexit status 1\n'
      : proofs(name, body, s),
});
after(() => server.close());

/** A fake service-account key, as `gcloud iam service-accounts keys create` writes one. */
const PRIVATE_KEY = `-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n-----END PRIVATE KEY-----\n`;
const KEY = {
  type: 'service_account',
  project_id: 'fleet-project',
  private_key_id: '8f3e2b1a9c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f',
  private_key: PRIVATE_KEY,
  client_email: 'prover@fleet-project.iam.gserviceaccount.com',
  client_id: '109876543210987654321',
};
const TOKEN = 'ya29.a0AfB_byC-fake-token-0123456789abcdefghij';
const API_TOKEN = 'sk-live-0123456789abcdef0123456789abcdef';
const keyFile = join(dir, 'key.json');
await writeFile(keyFile, JSON.stringify(KEY, null, 2));

/** The CLI's environment against the local server, with the cache of this file's folder. */
function env(cwd: string, extra: Record<string, string> = {}): Record<string, string> {
  return fleetCliEnv(server, cwd, join(dir, 'cache'), extra);
}

interface Received {
  at: number;
  body: string;
  headers: IncomingMessage['headers'];
}

/** A receiver on 127.0.0.1: `answer` decides each POST's fate (a status, or 'hang': never answer). */
async function receiver(answer: (n: number) => number | 'hang' = () => 200) {
  const got: Received[] = [];
  const hung: IncomingMessage[] = [];
  const http: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      got.push({ at: Date.now(), body, headers: req.headers });
      const a = answer(got.length);
      if (a === 'hang') hung.push(req);
      else res.writeHead(a, { 'content-type': 'text/plain' }).end(a === 200 ? 'ok' : 'no');
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/hooks/T000/B000`;
  after(async () => {
    http.closeAllConnections();
    http.close();
  });
  return { url, got, json: () => got.map((g) => JSON.parse(g.body) as Record<string, unknown>) };
}

async function inputsFile(name: string, lines: string[][]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  return path;
}

const skip = needOps() ?? needNanos();

test('a fleet with one failing input and one preemption: one alert for the failed input, one at the end; no secret in either', {
  skip,
  timeout: 300_000,
}, async () => {
  const recipe = await trueRecipe(dir, 'alerted', [], { memory: '2G', cpus: 2 });
  const inputs = await inputsFile('inputs.txt', INPUTS);
  const hook = await receiver();
  server.preemptNext(1, { afterSerialReads: 2 });
  const r = await uniprove(
    ['gcp', 'run', recipe, '--inputs', inputs, '--parallel', '2', '--alert-url', hook.url, '--json'],
    {
      env: env(dir, {
        GOOGLE_APPLICATION_CREDENTIALS: keyFile,
        CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
        PROVER_API_TOKEN: API_TOKEN,
        GCE_METADATA_TOKEN: TOKEN,
      }),
      cwd: dir,
      timeoutMs: 240_000,
    },
  );
  assert.equal(r.exitCode, 1, r.stderr.slice(-3000));
  const out = parseJson<{ fleetId: string; record: string; summary: { retried: number } }>(r);
  assert.equal(out.summary.retried, 1, 'the preemption was retried');
  const alerts = hook.json();
  assert.equal(alerts.length, 2, JSON.stringify(alerts, null, 2));
  for (const g of hook.got) assert.equal(g.headers['content-type'], 'application/json');
  const failed = alerts.find((a) => a.kind === 'input-failed')!;
  const end = alerts.find((a) => a.kind === 'fleet-ended')!;
  assert.ok(failed && end, JSON.stringify(alerts));
  // Slack's field, and the structured ones.
  assert.equal(typeof failed.text, 'string');
  assert.match(failed.text as string, /input 3 failed/);
  assert.equal(failed.prover, 'alerted');
  assert.equal(failed.outcome, 'failed');
  assert.equal(failed.input, 2);
  assert.equal(failed.fleetId, out.fleetId);
  assert.match(failed.runId as string, /^r\d{8}t/);
  assert.match(failed.record as string, new RegExp(`${failed.runId}/record\\.json$`));
  assert.match(
    end.text as string,
    new RegExp(`fleet ${out.fleetId} of alerted ended: 2 of 3 proofs, 1 failed`),
  );
  assert.equal(end.outcome, 'failed');
  assert.equal(end.record, out.record);
  assert.deepEqual(
    {
      total: (end.summary as { total: number }).total,
      retried: (end.summary as { retried: number }).retried,
    },
    { total: 3, retried: 1 },
  );
  assert.equal(typeof end.estimatedCostUsd, 'number');
  // Nothing credential-like reached the receiver.
  const all = hook.got.map((g) => g.body).join('\n');
  for (const secret of [
    KEY.private_key_id,
    KEY.client_id,
    TOKEN,
    API_TOKEN,
    server.token,
    'BEGIN PRIVATE KEY',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  ]) {
    assert.ok(!all.includes(secret), `the receiver got ${secret.slice(0, 12)}…`);
  }
});

test('a receiver that answers 500 or never answers: the fleet still succeeds, ends promptly, and says the alert was not delivered', {
  skip,
  timeout: 300_000,
}, async () => {
  const recipe = await trueRecipe(dir, 'quiet', [], { memory: '2G', cpus: 2 });
  const inputs = await inputsFile('ok.txt', [
    ['prove', 'x'],
    ['prove', 'y'],
  ]);
  for (const mode of ['500', 'hang'] as const) {
    const hook = await receiver(() => (mode === '500' ? 500 : 'hang'));
    const r = await uniprove(['gcp', 'run', recipe, '--inputs', inputs, '--alert-url', hook.url, '--json'], {
      env: env(dir),
      cwd: dir,
      timeoutMs: 240_000,
    });
    const exited = Date.now();
    assert.equal(r.exitCode, 0, `${mode}: ${r.stderr.slice(-2000)}`);
    assert.equal(parseJson<{ summary: { succeeded: number } }>(r).summary.succeeded, 2);
    assert.match(r.stderr, /an alert \(fleet-ended\) was not delivered: .*\[alert-failed\]/, mode);
    assert.ok(hook.got.length >= 1, `${mode}: the receiver got nothing`);
    if (mode === '500') assert.equal(hook.got.length, 4, 'the first post and three retries');
    // The end alert is the fleet's last act: from its first post to the exit, a few seconds at most.
    const held = exited - hook.got[0]!.at;
    assert.ok(held < 8000, `${mode}: the alert held the fleet's end ${held} ms`);
  }
});

test('--alert-url / UNIPROVE_ALERT_URL that is not http(s): a usage error naming where it came from', async () => {
  const recipe = await trueRecipe(dir, 'badurl', [], { memory: '2G', cpus: 2 });
  const flag = await uniprove(['run', recipe, '--alert-url', 'ftp://example.com/hook'], {
    env: env(dir),
    cwd: dir,
  });
  assert.equal(flag.exitCode, 2);
  assert.match(flag.stderr, /--alert-url must be an http or https URL, not ftp:/);
  const variable = await uniprove(['gcp', 'run', recipe, '--dry-run'], {
    env: env(dir, { UNIPROVE_ALERT_URL: 'not a url' }),
    cwd: dir,
  });
  assert.equal(variable.exitCode, 2);
  assert.match(variable.stderr, /UNIPROVE_ALERT_URL "not a url" is not a URL/);
});
