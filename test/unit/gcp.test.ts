import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGcloudProperties, resolveGcpTarget } from '../../src/core/cloud/config.js';
import { LABEL, resourceName, uniproveLabels } from '../../src/core/cloud/names.js';
import { machineTypeFor, planRun } from '../../src/core/cloud/plan.js';
import { SerialConsoleReader } from '../../src/core/cloud/serial.js';
import { TARGET } from '../helpers/gcp.js';

test('project and zone: flags, then environment, then gcloud, each with its source', () => {
  const gcloud = {
    configuration: 'work',
    ...parseGcloudProperties(
      '[core]\nproject = from-gcloud\naccount = a@b.c\n\n[compute]\nzone = europe-west4-b\n',
    ),
  };
  assert.deepEqual(resolveGcpTarget({ flags: {}, env: {}, gcloud }).sources, {
    project: 'gcloud:work',
    zone: 'gcloud:work',
  });
  const env = { CLOUDSDK_CORE_PROJECT: 'from-env-1', CLOUDSDK_COMPUTE_ZONE: 'us-east1-c' };
  const t = resolveGcpTarget({ flags: {}, env, gcloud });
  assert.equal(t.project, 'from-env-1');
  assert.equal(t.region, 'us-east1');
  assert.equal(
    resolveGcpTarget({ flags: { project: 'from-flag', zone: 'us-west1-a' }, env, gcloud }).project,
    'from-flag',
  );
  assert.throws(() => resolveGcpTarget({ flags: {}, env: {} }), { code: 'E_GCP_AUTH' });
  assert.throws(() => resolveGcpTarget({ flags: { project: 'Bad_Project', zone: 'us-west1-a' }, env: {} }), {
    code: 'E_USAGE',
  });
  assert.throws(() => resolveGcpTarget({ flags: { project: 'good-one', zone: 'us-west1' }, env: {} }), {
    code: 'E_USAGE',
  });
});

test('serial console: no line lost or repeated across reads, partial lines held, dropped bytes counted', () => {
  const text = 'alpha\nbravo charlie\r\ndelta\necho';
  const r = new SerialConsoleReader();
  const lines: string[] = [];
  for (let at = 0; at < text.length; at += 4) {
    const chunk = text.slice(at, at + 4);
    // Ask with r.next; the API answers from there.
    assert.equal(r.next, at);
    lines.push(...r.accept({ contents: chunk, start: at, next: at + chunk.length }).lines);
  }
  lines.push(...r.flush());
  assert.deepEqual(lines, ['alpha', 'bravo charlie', 'delta', 'echo']);
  // The buffer dropped bytes: the answer starts later than asked.
  const g = new SerialConsoleReader();
  g.accept({ contents: 'one\ntw', start: 0, next: 6 });
  const after = g.accept({ contents: 'four\n', start: 20, next: 25 });
  assert.equal(after.lostBytes, 14);
  assert.deepEqual(after.lines, ['four']);
  // A repeated answer (start before ours) is not repeated in the output.
  const d = new SerialConsoleReader();
  d.accept({ contents: 'abc\n', start: 0, next: 4 });
  assert.deepEqual(d.accept({ contents: 'abc\ndef\n', start: 0, next: 8 }).lines, ['def']);
});

test('names and labels fit Compute Engine rules', () => {
  const name = resourceName('img', 'A Very Long Prover Name That Goes On And On And On', 'ab'.repeat(32));
  assert.ok(name.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name), name);
  const labels = uniproveLabels({ digest: 'ab'.repeat(32), runId: 'r1' });
  assert.equal(labels[LABEL.digest]!.length, 40);
  assert.equal(labels.uniprove, '1');
});

test('machine types: predefined, custom, and a clear error without either', () => {
  assert.equal(
    machineTypeFor(TARGET, { machineType: 'c3-standard-22', spot: false }),
    'zones/us-central1-a/machineTypes/c3-standard-22',
  );
  assert.equal(
    machineTypeFor(TARGET, { cpus: 4, memoryGb: 16, spot: false, family: 'n1' }),
    'zones/us-central1-a/machineTypes/custom-4-16384',
  );
  assert.throws(() => machineTypeFor(TARGET, { spot: false }), { code: 'E_USAGE' });
  assert.throws(() => machineTypeFor(TARGET, { cpus: 4, memoryGb: 3.1, spot: false }), { code: 'E_USAGE' });
});

test('a run plan from an existing image: no upload, instance, watch, then cleanup', () => {
  const plan = planRun({
    target: TARGET,
    runId: 'r1',
    bucket: 'b-uniprove',
    image: { existing: 'uniprove-img-x' },
    machine: { machineType: 'n2-standard-4', spot: true },
    bootDisk: { type: 'pd-balanced' },
    network: 'default',
    labels: {},
    maxRunSeconds: 3600,
    keep: false,
  });
  assert.deepEqual(
    plan.calls.map((c) => `${c.phase}:${c.method}`),
    [
      'main:images.get',
      'main:instances.insert',
      'main:zoneOperations.get',
      'watch:instances.getSerialPortOutput',
      'watch:instances.get',
      'cleanup:instances.delete',
      'cleanup:zoneOperations.get',
    ],
  );
});
