/**
 * Ctrl-C during the image upload: the CLI ends promptly with exit 130 (no socket of the destroyed upload
 * keeps it alive), and leaves no object behind. A real child process of the CLI, a real SIGINT, the local
 * Compute Engine and Cloud Storage server holding the upload unanswered as a slow link does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isUniproveError } from '../../src/core/errors.js';
import { gcpImage } from '../../src/core/image/gce.js';
import { CLI } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { against, sparseDisk } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';

test('Ctrl-C while the upload is stalled: exit 130 within seconds, the upload cleaned up', async () => {
  const dir = await tempDir('uniprove-gcp-upload-int-');
  const raw = await sparseDisk(dir, 'benchy.raw', 64 << 20, 5);
  const server = await GceServer.start({ stallUploads: true });
  after(() => server.close());
  const child = spawn(process.execPath, [CLI, 'gcp', 'image', '--image-file', raw, '--name', 'benchy'], {
    env: {
      HOME: dir,
      CLOUDSDK_CONFIG: join(dir, 'gcloud'),
      PATH: process.env.PATH ?? '',
      UNIPROVE_CACHE: join(dir, 'cache'),
      UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
      UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
      CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
      CLOUDSDK_CORE_PROJECT: 'int-project',
      CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
      UNIPROVE_GCP_POLL_MS: '5',
      CI: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout.resume();
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const t0 = Date.now();
    while (server.stalledUploads === 0) {
      assert.ok(Date.now() - t0 < 60_000, `the upload never started:\n${stderr}`);
      assert.equal(child.exitCode, null, `the CLI ended before the upload:\n${stderr}`);
      await sleep(20);
    }
    await sleep(200);
    child.kill('SIGINT');
    const t1 = Date.now();
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = await exited;
    clearTimeout(timer);
    assert.equal(signal, null, `still running 15 s after Ctrl-C (killed):\n${stderr}`);
    assert.equal(code, 130, stderr);
    assert.ok(Date.now() - t1 < 10_000, `took ${Date.now() - t1} ms to end`);
    assert.match(stderr, /E_INTERRUPTED/);
    assert.deepEqual(
      server.leftovers().filter((r) => r.startsWith('object')),
      [],
      'no staging object left',
    );
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('an upload aborted in the library closes its connection (no socket outlives it)', async () => {
  const dir = await tempDir('uniprove-gcp-upload-abort-');
  const raw = await sparseDisk(dir, 'benchy.raw', 16 << 20, 6);
  const server = await GceServer.start({ stallUploads: true });
  after(() => server.close());
  const controller = new AbortController();
  const done = gcpImage({
    ...against(server),
    signal: controller.signal,
    disk: { rawPath: raw, name: 'benchy' },
  }).catch((e: unknown) => e);
  while (server.stalledUploads === 0) await sleep(10);
  controller.abort();
  const error = await done;
  assert.ok(isUniproveError(error) && error.code === 'E_INTERRUPTED', String(error));
  for (let i = 0; i < 50 && server.openStalledUploads > 0; i++) await sleep(20);
  assert.equal(server.openStalledUploads, 0, 'the upload request is still connected');
  assert.deepEqual(
    server.leftovers().filter((r) => r.startsWith('object')),
    [],
  );
});
