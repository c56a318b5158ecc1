/**
 * Transient Compute Engine errors (HTTP 5xx, 429 rateLimitExceeded, an insert whose answer was lost) are
 * retried with backoff: one does not end a run, and the result counts them; only a persistent one fails the
 * run, and then nothing is left behind. Against the local fake server with injected faults.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { runInstance } from '../../src/core/cloud/instance.js';
import { isUniproveError, type UniproveError } from '../../src/core/errors.js';
import { gceRecord } from '../../src/core/machine/drivers/gce.js';
import { GceServer } from '../helpers/gce-server.js';
import { against, sparseDisk } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';

const CONSOLE = ['Nanos booting', 'proof: 8f0a1c2d3e4f', 'exit status 0', ''].join('\n');
const dir = await tempDir('uniprove-gcp-retry-');
const raw = await sparseDisk(dir, 'benchy.raw', 16 << 20, 3);

async function fresh() {
  const server = await GceServer.start({ console: () => CONSOLE });
  after(() => server.close());
  return server;
}

const run = (server: GceServer) =>
  runInstance({
    ...against(server),
    image: { rawPath: raw, name: 'benchy' },
    machine: { machineType: 'n2-standard-2', spot: false },
    watch: { intervalMs: 1, statusEvery: 1 },
    isEnd: (l) => /^exit status (\d+)$/.exec(l)?.[1],
  });

describe('transient cloud errors', () => {
  test('one 500 on the console, the status, a poll; a 429 and a lost answer on insert: the run ends well, retries counted', async () => {
    const server = await fresh();
    server.fail({ method: 'instances.getSerialPortOutput', at: 'request', code: 'unknown', status: 500 });
    server.fail({ method: 'instances.get', at: 'request', code: 'unknown', status: 500 });
    server.fail({ method: 'zoneOperations.get', at: 'request', code: 'unknown', status: 502 });
    server.rateLimitNext(1, 429, ['instances.insert']);
    server.fail({ method: 'instances.insert', at: 'response', code: 'unknown', status: 500 });
    const result = await run(server);
    assert.equal(result.dryRun, false);
    if (result.dryRun) return;
    assert.equal(result.ended, 'marker');
    assert.equal(result.retries, 5);
    assert.equal(gceRecord(result, 'n2-standard-2').retries, 5, 'the run record keeps the count');
    const inserts = server.requests.filter((r) => r.api === 'instances.insert');
    assert.equal(inserts.length, 3, 'the 429, the lost answer, and its retry');
    const ids = new Set(inserts.map((r) => r.query.requestId));
    assert.equal(ids.size, 1, 'every try of the insert carries the same requestId');
    assert.match([...ids][0] ?? '', /^[0-9a-f-]{36}$/);
    const insertCalls = result.calls.filter((c) => c.method === 'instances.insert');
    assert.deepEqual(
      insertCalls.map((c) => c.retries),
      [2],
    );
    assert.deepEqual(server.leftovers(), [`image ${result.image}`], 'only the image, kept for reuse');
    assert.deepEqual(server.violations, []);
  });

  test('a persistent 500 on the console fails the run with E_GCP (HTTP 500) and deletes the instance', async () => {
    const server = await fresh();
    for (let i = 0; i < 4; i++) {
      server.fail({ method: 'instances.getSerialPortOutput', at: 'request', code: 'unknown', status: 500 });
    }
    const error = await run(server).catch((e: unknown) => e as UniproveError);
    assert.ok(isUniproveError(error), String(error));
    assert.equal(error.code, 'E_GCP');
    assert.match(error.message, /instances\.getSerialPortOutput .* \(HTTP 500\)/);
    const reads = server.requests.filter((r) => r.api === 'instances.getSerialPortOutput');
    assert.equal(reads.length, 4, 'tried as often as the retry settings allow, and no more');
    assert.deepEqual(server.leftovers(), []);
  });

  test('a refusal (403 forbidden, 400) is not retried', async () => {
    const server = await fresh();
    server.fail({ method: 'instances.insert', at: 'request', code: 'forbidden', status: 403 });
    const error = await run(server).catch((e: unknown) => e as UniproveError);
    assert.ok(isUniproveError(error), String(error));
    assert.equal(server.requests.filter((r) => r.api === 'instances.insert').length, 1);
    assert.deepEqual(server.leftovers(), []);
  });
});
