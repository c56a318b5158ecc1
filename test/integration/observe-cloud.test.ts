/**
 * `gcp run --cloud-logging --cloud-metrics`: the image is built (real ops build, a Nanos release's gcp and tls
 * klibs) with the gcp klib's tuple in its manifest, and the instance runs as the service account with the
 * logging.write / monitoring.write scopes, as the local Compute Engine server checks them; the dry run shows
 * both; the flags that make no sense alone are usage errors before anything is made.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseJson, uniprove } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { fleetCliEnv, trueRecipe } from '../helpers/gcp.js';
import { argsTable, fleetServerConsole } from '../helpers/gcp-fleet.js';
import { tempDir } from '../helpers/tmp.js';
import { needNanos, needOps } from '../helpers/tools.js';

const dir = await tempDir('uniprove-observe-cloud-');
const TABLE = argsTable([['prove', '0'], ['prove', '1'], []]);
const server = await GceServer.start({ console: fleetServerConsole(TABLE) });
after(() => server.close());
const ACCOUNT = 'prover@fleet-project.iam.gserviceaccount.com';
const SCOPES = [
  'https://www.googleapis.com/auth/logging.write',
  'https://www.googleapis.com/auth/monitoring.write',
];

/** The CLI's environment against the local server, with the cache of this file's folder. */
function env(cwd: string): Record<string, string> {
  return fleetCliEnv(server, cwd, join(dir, 'cache'));
}

const offSpec = () => server.violations.filter((v) => !v.includes('(injected)'));

test('--cloud-logging --cloud-metrics --dry-run: the klibs, the manifest tuple, the account, its scopes and roles', async () => {
  const recipe = await trueRecipe(dir, 'clouddry', [], { memory: '2G', cpus: 2 });
  const where = ['--project', 'my-proj', '--zone', 'us-central1-a'];
  const r = await uniprove(
    ['gcp', 'run', recipe, '--cloud-logging', '--cloud-metrics', '--dry-run', '--json', ...where],
    { env: { HOME: join(dir, 'h'), PATH: process.env.PATH ?? '' }, cwd: dir },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const out = parseJson<{
    calls: { method: string; body?: Record<string, unknown> }[];
    cloudOps: { klibs: string[]; manifestPassthrough: unknown; roles: string[] };
  }>(r);
  assert.deepEqual(out.cloudOps.klibs, ['gcp', 'tls']);
  assert.deepEqual(out.cloudOps.manifestPassthrough, { gcp: { logging: {}, metrics: { interval: '60' } } });
  assert.deepEqual(out.cloudOps.roles, ['roles/logging.logWriter', 'roles/monitoring.metricWriter']);
  const insert = out.calls.find((c) => c.method === 'instances.insert')!;
  assert.deepEqual(insert.body!.serviceAccounts, [{ email: 'default', scopes: SCOPES }]);
  // Words for people, without --json.
  const text = await uniprove(['gcp', 'run', recipe, '--cloud-logging', '--dry-run', ...where], {
    env: { HOME: join(dir, 'h'), PATH: process.env.PATH ?? '' },
    cwd: dir,
  });
  assert.equal(text.exitCode, 0, text.stderr);
  assert.match(
    text.stdout,
    /Cloud-side logging: the image gets Klibs gcp, tls and ManifestPassthrough \{"gcp":\{"logging":\{\}\}\}/,
  );
  assert.match(text.stdout, /roles\/logging\.logWriter/);
  // A fleet's dry run says it too.
  const inputs = join(dir, 'dry-inputs.txt');
  await writeFile(inputs, 'prove 0\nprove 1\n');
  const fleet = await uniprove(
    ['gcp', 'run', recipe, '--inputs', inputs, '--cloud-metrics', '--dry-run', '--json', ...where],
    { env: { HOME: join(dir, 'h'), PATH: process.env.PATH ?? '' }, cwd: dir },
  );
  assert.equal(fleet.exitCode, 0, fleet.stderr);
  const f = parseJson<{ calls: { method: string; body?: Record<string, unknown> }[]; cloudOps: unknown }>(
    fleet,
  );
  assert.deepEqual((f.cloudOps as { manifestPassthrough: unknown }).manifestPassthrough, {
    gcp: { metrics: { interval: '60' } },
  });
  for (const c of f.calls.filter((x) => x.method === 'instances.insert'))
    assert.deepEqual(c.body!.serviceAccounts, [{ email: 'default', scopes: [SCOPES[1]] }]);
});

test('--service-account alone, a bad account, --cloud-logging with --image: usage errors, nothing made', async () => {
  const recipe = await trueRecipe(dir, 'cloudbad', [], { memory: '2G', cpus: 2 });
  const before = server.requests.length;
  const alone = await uniprove(['gcp', 'run', recipe, '--service-account', ACCOUNT], {
    env: env(dir),
    cwd: dir,
  });
  assert.equal(alone.exitCode, 2);
  assert.match(alone.stderr, /--service-account goes with --cloud-logging or --cloud-metrics/);
  const bad = await uniprove(['gcp', 'run', recipe, '--cloud-logging', '--service-account', 'nobody'], {
    env: env(dir),
    cwd: dir,
  });
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /--service-account nobody is not a service account email/);
  const image = await uniprove(['gcp', 'run', '--image', 'x', '--cloud-logging'], {
    env: env(dir),
    cwd: dir,
  });
  assert.equal(image.exitCode, 2);
  assert.match(image.stderr, /--cloud-logging goes with a recipe/);
  assert.equal(server.requests.length, before);
});

test('gcp run --cloud-logging --cloud-metrics --service-account: the built manifest has the gcp tuple and klibs, the instance the account', {
  skip: needOps() ?? needNanos(),
  timeout: 300_000,
}, async () => {
  const recipe = await trueRecipe(dir, 'cloudrun', [], { memory: '2G', cpus: 2 });
  const cwd = join(dir, 'cwd-run');
  await mkdir(cwd, { recursive: true });
  const mark = server.requests.length;
  const r = await uniprove(
    [
      ...['gcp', 'run', recipe, '--cloud-logging', '--cloud-metrics', '--service-account', ACCOUNT],
      ...['--runs-dir', join(cwd, 'runs'), '--json'],
    ],
    { env: env(cwd), cwd, timeoutMs: 240_000 },
  );
  assert.equal(r.exitCode, 0, r.stderr.slice(-3000));
  const run = parseJson<{ dir: string; outcome: string }>(r);
  assert.equal(run.outcome, 'succeeded');
  // The config ops built with, and the manifest Ops made of it (the klib reads the root tuple's gcp).
  const config = JSON.parse(await readFile(join(run.dir, 'gcloud-build.json'), 'utf8'));
  assert.ok(config.Klibs.includes('gcp') && config.Klibs.includes('tls'), JSON.stringify(config.Klibs));
  assert.deepEqual(config.ManifestPassthrough.gcp, { logging: {}, metrics: { interval: '60' } });
  const manifest = await readFile(join(run.dir, 'manifest.txt'), 'utf8');
  assert.match(manifest, /gcp:map\[logging:map\[\] metrics:map\[interval:60\]\]/);
  assert.match(manifest, /klib:map\[gcp:\S+\/klibs\/gcp tls:\S+\/klibs\/tls\]/);
  const inserts = server.requests.slice(mark).filter((q) => q.api === 'instances.insert');
  assert.equal(inserts.length, 1);
  assert.deepEqual((inserts[0]!.body as Record<string, unknown>).serviceAccounts, [
    { email: ACCOUNT, scopes: SCOPES },
  ]);
  assert.deepEqual(offSpec(), []);
  assert.ok((await readdir(run.dir)).includes('record.json'));
});
