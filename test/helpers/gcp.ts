/** Shared set-up of the Google Cloud contract tests: a fake GCE, sparse raw disks, fast polling. */
import { copyFile, mkdir, open, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { GcpTarget } from '../../src/core/cloud/config.js';
import type { GcpCommonOptions } from '../../src/core/cloud/context.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import type { GceServer } from './gce-server.js';

export const TARGET: GcpTarget = {
  project: 'uniprove-test',
  zone: 'us-central1-a',
  region: 'us-central1',
  sources: { project: 'flag', zone: 'flag' },
};

/**
 * A recipe folder `dir/name` whose binary is a copy of /bin/true, with a console proof, the given parameter
 * sets as volumes, and `resources` (what a gcp run sizes its machine from).
 */
export async function trueRecipe(
  dir: string,
  name: string,
  sets: string[],
  resources: { memory: string; cpus: number },
): Promise<string> {
  const rdir = join(dir, name);
  await mkdir(rdir, { recursive: true });
  await copyFile('/bin/true', join(rdir, 'prover'));
  await writeFile(
    join(rdir, 'recipe.json'),
    JSON.stringify({
      name,
      binary: './prover',
      volumes: sets.map((set) => ({ set })),
      proof: { kind: 'console' },
      resources,
    }),
  );
  return rdir;
}

/** A sparse raw disk of `size` bytes with a few blocks of data (`seed` makes contents differ). */
export async function sparseDisk(dir: string, name: string, size: number, seed = 1): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  await fh.truncate(size);
  for (const at of [0, Math.floor(size / 2), size - 8192]) {
    await fh.write(Buffer.alloc(4096, seed + (at % 251)), 0, 4096, at);
  }
  await fh.close();
  return path;
}

/** Options pointing the clients at the fake, with fast polling and progress captured. */
export function against(server: GceServer, events: ProgressEvent[] = []): GcpCommonOptions {
  return {
    target: TARGET,
    endpoints: { compute: server.url, storage: server.url },
    accessToken: server.token,
    poll: { initialMs: 2, maxMs: 10, timeoutMs: 20_000, retry: { attempts: 4, initialMs: 2, maxMs: 10 } },
    onProgress: (e) => events.push(e),
  };
}

/**
 * The CLI's environment against the local Compute Engine server: this user's HOME (Ops and Nanos), gcloud's
 * configuration in `cwd`, the server's endpoints and token, project fleet-project, zone us-central1-a, fast polls;
 * `cacheDir` as UNIPROVE_CACHE when given.
 */
export function fleetCliEnv(
  server: GceServer,
  cwd: string,
  cacheDir?: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    HOME: homedir(),
    PATH: process.env.PATH ?? '',
    CLOUDSDK_CONFIG: join(cwd, 'gcloud'),
    ...(cacheDir ? { UNIPROVE_CACHE: cacheDir } : {}),
    UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
    CLOUDSDK_AUTH_ACCESS_TOKEN: server.token,
    CLOUDSDK_CORE_PROJECT: 'fleet-project',
    CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
    UNIPROVE_GCP_POLL_MS: '2',
    ...extra,
  };
}
