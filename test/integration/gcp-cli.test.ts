import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { sparseDisk } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';

const dir = await tempDir('uniprove-gcp-cli-');
const raw = await sparseDisk(dir, 'benchy.raw', 16 << 20);
// No credentials of any kind, and gcloud's configuration pointed at an empty folder.
const bare = { HOME: dir, CLOUDSDK_CONFIG: join(dir, 'gcloud'), PATH: process.env.PATH ?? '' };

test('gcp run --dry-run --json: every call with its body, no credentials needed', async () => {
  const r = await uniprove(
    [
      'gcp',
      'run',
      '--image-file',
      raw,
      '--volume-file',
      raw,
      '--project',
      'my-proj',
      '--zone',
      'us-central1-a',
      '--spot',
      '--gpu',
      'nvidia-l4:2',
      '--machine-type',
      'g2-standard-24',
      '--dry-run',
      '--json',
    ],
    { env: bare },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const { calls } = parseJson<{ calls: { method: string; body?: Record<string, unknown> }[] }>(r);
  const methods = calls.map((c) => c.method);
  for (const m of ['images.insert', 'disks.insert', 'instances.insert', 'instances.delete'])
    assert.ok(methods.includes(m), m);
  const insert = calls.find((c) => c.method === 'instances.insert')!.body!;
  assert.equal((insert.scheduling as Record<string, unknown>).provisioningModel, 'SPOT');
  assert.equal((insert.scheduling as Record<string, unknown>).onHostMaintenance, 'TERMINATE');
});

test('gcp image without credentials: E_GCP_AUTH with the gcloud command, exit 5', async () => {
  const r = await uniprove(
    ['gcp', 'image', '--image-file', raw, '--project', 'my-proj', '--zone', 'us-central1-a'],
    {
      env: { ...bare, GCE_METADATA_HOST: '127.0.0.1:9', METADATA_SERVER_DETECTION: 'none' },
    },
  );
  assert.equal(r.exitCode, 5, r.stderr);
  assert.match(r.stderr, /E_GCP_AUTH/);
  assert.match(r.stderr, /gcloud auth application-default login/);
});

test('no project anywhere: a clear error naming the fix', async () => {
  const r = await uniprove(['gcp', 'ls'], { env: bare });
  assert.notEqual(r.exitCode, 0);
  assert.match(r.stderr, /--project/);
});

test('gcp image, run, ls, gc through the CLI against the local server; the token is never printed', async () => {
  const server = await GceServer.start({ console: () => 'boot\nproof: 1234\nexit status 0\n' });
  after(() => server.close());
  const env = {
    ...bare,
    UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
    CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
    CLOUDSDK_CORE_PROJECT: 'cli-project',
    CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
  };
  const image = await uniprove(['gcp', 'image', '--image-file', raw, '--name', 'benchy', '--json'], { env });
  assert.equal(image.exitCode, 0, image.stderr);
  const { image: name } = parseJson<{ image: string }>(image);
  const run = await uniprove(
    [
      'gcp',
      'run',
      '--image',
      name,
      '--machine-type',
      'e2-standard-4',
      '--json',
      '--console-file',
      join(dir, 'c.log'),
    ],
    { env },
  );
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(parseJson<{ ended: string }>(run).ended, 'stopped');
  const ls = await uniprove(['gcp', 'ls', '--json'], { env });
  assert.deepEqual(
    parseJson<{ resources: { kind: string }[] }>(ls).resources.map((x) => x.kind),
    ['image'],
  );
  const gc = await uniprove(['gcp', 'gc'], { env });
  assert.equal(gc.exitCode, 0, gc.stderr);
  assert.match(gc.stdout, /deleted image/);
  assert.deepEqual(server.leftovers(), []);
  assert.deepEqual(server.violations, []);
  for (const r of [image, run, ls, gc]) {
    assert.ok(!r.stdout.includes(server.token) && !r.stderr.includes(server.token), 'token printed');
  }
});

test('gcp run --image goes through the run lifecycle: a run record, its console and a proving_report.csv line', async () => {
  const server = await GceServer.start({ console: () => 'boot\nproof: 1234\nexit status 0\n' });
  after(() => server.close());
  const cwd = await tempDir('uniprove-gcp-image-run-');
  const env = {
    ...bare,
    UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
    CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
    CLOUDSDK_CORE_PROJECT: 'cli-project',
    CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
  };
  const run = await uniprove(
    ['gcp', 'run', '--image-file', raw, '--machine-type', 'e2-standard-2', '--json', '--runs-dir', 'records'],
    { env, cwd },
  );
  assert.equal(run.exitCode, 0, run.stderr);
  const result = parseJson<{ runId: string; recordDir: string; outcome: string; ended: string }>(run);
  assert.equal(result.ended, 'stopped');
  assert.equal(result.recordDir, join(cwd, 'records', result.runId));
  // No recipe stands behind an image: no proof is known, so the outcome is an honest "unknown".
  assert.equal(result.outcome, 'unknown');
  const { readFile } = await import('node:fs/promises');
  const record = JSON.parse(await readFile(join(result.recordDir, 'record.json'), 'utf8'));
  assert.equal(record.via, 'gce');
  assert.equal(record.id, result.runId);
  assert.ok(record.endedAt);
  assert.equal(record.gce.instance.length > 0, true);
  assert.equal(record.gce.machineType, 'e2-standard-2');
  assert.match(await readFile(join(result.recordDir, 'console.log'), 'utf8'), /proof: 1234/);
  const report = (await readFile(join(cwd, 'records', 'proving_report.csv'), 'utf8')).trim().split('\n');
  assert.equal(report.length, 2, report.join('\n'));
  assert.ok(report[1]!.includes(result.runId) && report[1]!.includes('gce'), report[1]);
  // Everything the run made is gone but the imported image, which is kept to be reused by its digest.
  assert.deepEqual(
    server.leftovers().filter((r) => !r.startsWith('image ')),
    [],
  );
  assert.deepEqual(server.violations, []);
});
