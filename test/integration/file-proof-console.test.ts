/**
 * File proofs through the console, with real parts: a dynamically linked C prover (gcc) writes a 1 MB proof
 * file inside Nanos (ops build, QEMU under TCG); the preloaded proof-out library prints it at exit and the host
 * gets it back byte for byte from a local run. The console that run printed is then served by the local
 * Compute Engine server (its 1 MB window and `next` offsets) to a `gcp run` of the same recipe through the
 * official client, and the proof comes back from there too. Limits are refused before anything is built.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { opsHomeDir } from '../../src/core/ops/build.js';
import { parseJson, uniprove } from '../helpers/cli.js';
import { compileC } from '../helpers/gcc.js';
import { GceServer } from '../helpers/gce-server.js';
import { against } from '../helpers/gcp.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc, needUnikernel } from '../helpers/tools.js';

const skip = needUnikernel() ?? needGcc();
if (skip) console.log(`# file-proof-console tests skipped: ${skip}`);

const PROOF_BYTES = 1 << 20;

/** Writes argv[2] pseudo-random bytes to argv[1] through stdio, as a prover writes its proof. */
const WRITER = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  size_t n = strtoul(argv[2], 0, 10);
  FILE *f = fopen(argv[1], "wb");
  if (!f) { perror(argv[1]); return 2; }
  unsigned x = 12345;
  for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; fputc((int)(x >> 16), f); }
  if (fclose(f) != 0) { perror("fclose"); return 3; }
  printf("wrote %zu bytes to %s\\n", n, argv[1]);
  return 0;
}`;

interface RunJson {
  dir: string;
  outcome: string;
  proofs: { path: string; sha256: string; source: string }[];
  warnings: { code: string; message: string }[];
}

/** A recipe folder for the writer (dynamically linked), its file proof at /proof.bin. */
async function writerRecipe(dir: string, maxBytes?: number): Promise<{ folder: string; expected: string }> {
  const folder = join(dir, 'writer');
  await mkdir(folder, { recursive: true });
  const binary = await compileC(folder, 'writer', WRITER);
  await writeFile(
    join(folder, 'recipe.json'),
    JSON.stringify({
      name: 'file-proof-writer',
      binary: './writer',
      args: ['/proof.bin', String(PROOF_BYTES)],
      probe: { skip: true },
      proof: { kind: 'file', path: '/proof.bin', ...(maxBytes ? { maxBytes } : {}) },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  // The same program on the host says what the proof must be.
  const native = join(dir, 'native-proof.bin');
  await execa(binary, [native, String(PROOF_BYTES)]);
  return {
    folder,
    expected: createHash('sha256')
      .update(await readFile(native))
      .digest('hex'),
  };
}

test('a 1 MB file proof comes back through the console from Nanos, then from the local Compute Engine server', {
  skip,
  timeout: 300_000,
}, async () => {
  const dir = await tempDir();
  const { folder, expected } = await writerRecipe(dir, 2 * PROOF_BYTES);
  const r = await uniprove(
    [
      'run',
      folder,
      '--proof-via',
      'console',
      '--accel',
      'tcg',
      '--timeout',
      '120',
      '--package-out',
      join(dir, 'pkg'),
      '--runs-dir',
      join(dir, 'runs'),
      '--json',
    ],
    { cwd: dir, timeoutMs: 180_000 },
  );
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  const run = parseJson<RunJson>(r);
  assert.equal(run.outcome, 'succeeded');
  assert.equal(run.proofs.length, 1, JSON.stringify(run.proofs));
  const proof = run.proofs[0]!;
  assert.equal(proof.source, '/proof.bin');
  assert.equal(proof.sha256, expected);
  const bytes = await readFile(proof.path);
  assert.equal(bytes.length, PROOF_BYTES);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), expected);
  const consoleText = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.match(consoleText, /UNIPROVE-FILE-PROOF-END bytes=1048576 sha256=[0-9a-f]{64}/);
  const opsConfig = JSON.parse(await readFile(join(run.dir, 'ops-config.json'), 'utf8'));
  assert.equal(opsConfig.Env.UNIPROVE_PROOF_FILE, '/proof.bin');
  assert.match(opsConfig.Env.LD_PRELOAD, /uniprove-proof-out\.so$/);

  // The same console, played back by the local Compute Engine server in 300 kB reads (more than its 1 MB
  // window in all): the proof comes back through getSerialPortOutput's start/next offsets.
  assert.ok(consoleText.length > 1 << 20, `${consoleText.length} console bytes`);
  const fake = await GceServer.start({
    serialChunk: 300_000,
    serialWindow: 1 << 20,
    console: () => consoleText,
  });
  try {
    const { gcpRunRecipe } = await import('../../src/core/gcp/run.js');
    const lines: string[] = [];
    const gce = await gcpRunRecipe({
      ...against(fake),
      recipe: folder,
      cwd: dir,
      packageOut: join(dir, 'pkg-gce'),
      runsDir: join(dir, 'gce-runs'),
      cacheDir: join(dir, 'cache'),
      opsHome: opsHomeDir({ HOME: homedir() }),
      machine: { spot: false },
      timeoutMs: 600_000,
      watch: { intervalMs: 1, statusEvery: 2 },
      onConsoleLine: (line) => lines.push(line),
    });
    assert.equal(gce.dryRun, false);
    if (gce.dryRun) return;
    assert.deepEqual(fake.violations, []);
    assert.equal(gce.outcome, 'succeeded', JSON.stringify(gce.record.warnings));
    assert.equal(gce.gcp.consoleLostBytes, 0);
    assert.equal(gce.record.proofs.length, 1);
    assert.equal(gce.record.proofs[0]!.sha256, expected);
    const back = await readFile(join(gce.dir, gce.record.proofs[0]!.path));
    assert.equal(createHash('sha256').update(back).digest('hex'), expected);
    // The image was built with the route; the live console never showed the base64.
    const built = JSON.parse(await readFile(join(gce.dir, 'gcloud-build.json'), 'utf8'));
    assert.match(built.Env.LD_PRELOAD, /uniprove-proof-out\.so$/);
    assert.ok(lines.some((l) => l.startsWith('UNIPROVE-FILE-PROOF-BEGIN')));
    assert.ok(!lines.some((l) => l.startsWith('UPF:')));
    const reads = fake.requests.filter((q) => q.api === 'instances.getSerialPortOutput');
    assert.ok(reads.length >= Math.ceil(consoleText.length / 300_000), `${reads.length} reads`);
    assert.ok(
      reads.some((q) => Number(q.query.start) > 1 << 20),
      'reads past the first MB, by offset',
    );
  } finally {
    await fake.close();
  }

  // A console that outruns the reader: each read finds 300 kB new but the buffer keeps 200 kB, so 100 kB
  // are gone every time (the begin marker, after 150 kB of boot noise, is kept). Typed error, no proof file.
  const noisy = `${'boot noise\n'.repeat(15_000)}${consoleText}`;
  const overrun = await GceServer.start({
    serialChunk: 300_000,
    serialWindow: 200_000,
    console: () => noisy,
  });
  try {
    const { gcpRunRecipe } = await import('../../src/core/gcp/run.js');
    const records = join(dir, 'gce-overrun');
    await assert.rejects(
      gcpRunRecipe({
        ...against(overrun),
        recipe: folder,
        cwd: dir,
        packageOut: join(dir, 'pkg-gce'),
        runsDir: records,
        cacheDir: join(dir, 'cache'),
        opsHome: opsHomeDir({ HOME: homedir() }),
        machine: { spot: false },
        timeoutMs: 600_000,
        watch: { intervalMs: 1, statusEvery: 2 },
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'E_PROOF_TRUNCATED', e.message);
        return true;
      },
    );
    const [runDir] = (await readdir(records)).filter((n) => n !== 'proving_report.csv');
    const record = JSON.parse(await readFile(join(records, runDir!, 'record.json'), 'utf8'));
    assert.equal(record.error.code, 'E_PROOF_TRUNCATED');
    assert.ok(record.gce.consoleLostBytes > 0, JSON.stringify(record.gce));
    assert.deepEqual(await readdir(join(records, runDir!, 'proofs')), []);
    assert.deepEqual(
      overrun.leftovers().filter((l) => !l.startsWith('image ')),
      [],
    );
  } finally {
    await overrun.close();
  }
});

/** Writes its proof file (closed, whole), then fails with status 3, as a prover that found its input bad would. */
const EXITS_3 = `#include <stdio.h>
int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "wb");
  if (!f) { perror(argv[1]); return 2; }
  fputs("not a proof", f);
  fclose(f);
  puts("bad input");
  return 3;
}`;

test('a prover that writes its proof file and exits 3 fails, with status 3 recorded, locally and on Compute Engine', {
  skip,
  timeout: 300_000,
}, async () => {
  const dir = await tempDir();
  const folder = join(dir, 'exits3');
  await mkdir(folder, { recursive: true });
  await compileC(folder, 'exits3', EXITS_3);
  await writeFile(
    join(folder, 'recipe.json'),
    JSON.stringify({
      name: 'file-proof-exits3',
      binary: './exits3',
      args: ['/proof.bin'],
      probe: { skip: true },
      proof: { kind: 'file', path: '/proof.bin' },
      resources: { memory: '256M', cpus: 1 },
    }),
  );
  const common = ['--timeout', '120', '--package-out', join(dir, 'pkg'), '--json'];
  const r = await uniprove(
    ['run', folder, '--proof-via', 'console', '--accel', 'tcg', '--runs-dir', join(dir, 'runs'), ...common],
    { cwd: dir, timeoutMs: 180_000 },
  );
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const run = parseJson<RunJson & { exitCode: number }>(r);
  assert.equal(run.outcome, 'failed');
  assert.equal(run.exitCode, 3);
  const consoleText = await readFile(join(run.dir, 'console.log'), 'utf8');
  assert.match(consoleText, /UNIPROVE-PROVER-EXIT status=3/);
  // The proof file is kept as evidence, with a warning that it proves nothing.
  assert.equal(run.proofs.length, 1, JSON.stringify(run));
  assert.equal(await readFile(run.proofs[0]!.path, 'utf8'), 'not a proof');
  assert.ok(
    run.warnings.some((w) => w.code === 'proof-of-failed-prover'),
    JSON.stringify(run.warnings),
  );
  // The route's library is mapped in from uniprove's cache, outside the package: the image is still kept,
  // and the same run again boots it from the image cache with the same result.
  const again = await uniprove(
    ['run', folder, '--proof-via', 'console', '--accel', 'tcg', '--runs-dir', join(dir, 'runs'), ...common],
    { cwd: dir, timeoutMs: 180_000 },
  );
  assert.equal(again.exitCode, 1, again.stdout + again.stderr);
  const rerun = parseJson<RunJson & { exitCode: number; imageCache: string | null }>(again);
  assert.equal(rerun.imageCache, 'hit', JSON.stringify(rerun.warnings));
  assert.equal(rerun.exitCode, 3);
  assert.equal(await readFile(rerun.proofs[0]!.path, 'utf8'), 'not a proof');

  // The console that run printed, as a Compute Engine instance of the same recipe prints it: `gcp run` (the CLI,
  // against the local server) knows the status only from the library's exit line.
  const fake = await GceServer.start({ console: () => consoleText });
  try {
    const env = {
      CLOUDSDK_CONFIG: join(dir, 'gcloud'),
      UNIPROVE_GCP_COMPUTE_ENDPOINT: fake.url,
      UNIPROVE_GCP_STORAGE_ENDPOINT: fake.url,
      UNIPROVE_GCP_POLL_MS: '2',
      CLOUDSDK_AUTH_ACCESS_TOKEN: fake.token,
      CLOUDSDK_CORE_PROJECT: 'exit-project',
      CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
      GCE_METADATA_HOST: '127.0.0.1:9',
      METADATA_SERVER_DETECTION: 'none',
    };
    const g = await uniprove(
      [
        'gcp',
        'run',
        folder,
        '--machine-type',
        'e2-standard-2',
        '--runs-dir',
        join(dir, 'gce-runs'),
        ...common,
      ],
      { cwd: dir, env, timeoutMs: 180_000 },
    );
    assert.equal(g.exitCode, 1, g.stdout + g.stderr);
    const gce = parseJson<{ dir: string; outcome: string; exitCode: number }>(g);
    assert.equal(gce.outcome, 'failed');
    assert.equal(gce.exitCode, 3);
    const record = JSON.parse(await readFile(join(gce.dir, 'record.json'), 'utf8'));
    assert.equal(record.via, 'gce');
    assert.equal(record.exitCode, 3);
    assert.match(record.exitReason, /exited with status 3/);
    assert.equal(record.proofs.length, 1);
    assert.equal(await readFile(join(gce.dir, record.proofs[0].path), 'utf8'), 'not a proof');
    assert.deepEqual(fake.violations, []);
  } finally {
    await fake.close();
  }
});

test('a proof the console cannot carry within the timeout is refused before anything is built', {
  skip: needGcc(),
}, async () => {
  const dir = await tempDir();
  const { folder } = await writerRecipe(dir, 64 * PROOF_BYTES);
  const local = await uniprove(
    ['run', folder, '--proof-via', 'console', '--timeout', '10', '--package-out', join(dir, 'pkg')],
    { cwd: dir, timeoutMs: 120_000 },
  );
  assert.equal(local.exitCode, 2, local.stderr);
  assert.match(local.stderr, /E_PROOF_TOO_LARGE|proof\.maxBytes/);
  const fake = await GceServer.start();
  try {
    const env = {
      HOME: join(dir, 'home'),
      PATH: process.env.PATH ?? '',
      UNIPROVE_GCP_COMPUTE_ENDPOINT: fake.url,
      UNIPROVE_GCP_STORAGE_ENDPOINT: fake.url,
      CLOUDSDK_AUTH_ACCESS_TOKEN: fake.token,
    };
    const where = ['--project', 'my-proj', '--zone', 'us-central1-a', '--timeout', '5m'];
    const gce = await uniprove(['gcp', 'run', folder, ...where, '--dry-run'], { cwd: dir, env });
    assert.equal(gce.exitCode, 2, gce.stderr);
    assert.match(gce.stderr, /proof\.maxBytes/);
    assert.equal(fake.requests.length, 0);
  } finally {
    await fake.close();
  }
});
