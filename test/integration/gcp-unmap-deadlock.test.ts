/**
 * `gcp run` on a kernel with the unmap deadlock (the toolchain's stock 0.1.55, in a test's own HOME): a guest on
 * Compute Engine gets every vCPU of its machine type, so a run of several vCPUs is refused before any cloud call
 * (an instance that deadlocks spins, billed, until its timeout), naming the fix; one vCPU, or
 * --allow-unmap-deadlock, goes on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { trueRecipe } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needStockNanos, needUnikernel, stockNanosHome } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc() ?? needStockNanos();
let server: GceServer;
let dir: string;
let home: string;

after(async () => {
  await server?.close();
});

function env(): Record<string, string> {
  return {
    HOME: home,
    PATH: process.env.PATH ?? '',
    CLOUDSDK_CONFIG: join(dir, 'gcloud'),
    UNIPROVE_CACHE: join(dir, 'cache'),
    UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
    CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
    CLOUDSDK_CORE_PROJECT: 'deadlock-project',
    CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
    UNIPROVE_GCP_POLL_MS: '2',
  };
}

test('gcp run of 4 vCPUs on an affected kernel: E_UNMAP_DEADLOCK, exit 3, the fix named, no request sent', {
  skip,
  timeout: 180_000,
}, async () => {
  server = await GceServer.start({ console: () => 'UNIPROVE-PROOF-BEGIN\nok\nUNIPROVE-PROOF-END\n' });
  dir = await tempDir();
  home = await stockNanosHome(await tempDir());
  const recipe = await trueRecipe(dir, 'four', [], { memory: '4G', cpus: 4 });
  const r = await uniprove(['gcp', 'run', recipe, '--json'], { env: env(), cwd: dir, timeoutMs: 150_000 });
  assert.equal(r.exitCode, 3, r.stdout + r.stderr);
  const error = parseJson<{ error: { code: string; message: string; hint: string } }>(r).error;
  assert.equal(error.code, 'E_UNMAP_DEADLOCK', error.message);
  assert.match(error.message, /Nanos 0\.1\.55 has the unmap deadlock .* n2-custom-4-4096 has 4/);
  assert.match(error.hint, /ops update/);
  assert.match(error.hint, /--machine-type n1-standard-1/);
  assert.match(error.hint, /--allow-unmap-deadlock/);
  assert.deepEqual(
    server.requests.map((q) => q.api),
    [],
    'nothing was asked of Compute Engine',
  );
  // The plan of the same run is still printed: a dry run boots nothing.
  const dry = await uniprove(['gcp', 'run', recipe, '--dry-run', '--json'], { env: env(), cwd: dir });
  assert.equal(dry.exitCode, 0, dry.stderr);
});
