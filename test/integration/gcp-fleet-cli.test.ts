/**
 * `uniprove gcp run <recipe> --inputs FILE --parallel N` as a user types it, against the local Compute Engine
 * server: the dry run's calls and cost (nothing needed, nothing made), --max-cost refusing before anything is
 * made, a 20-input fleet through 3 preemptions and an exhausted zone, and Ctrl-C (a real SIGINT to the CLI) at
 * several moments: exit 130, nothing left.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { execa } from 'execa';
import { CLI, parseJson, uniprove } from '../helpers/cli.js';
import { GceServer } from '../helpers/gce-server.js';
import { fleetCliEnv, trueRecipe } from '../helpers/gcp.js';
import { argsTable, bootedArgs, fleetServerConsole } from '../helpers/gcp-fleet.js';
import { assertRunRecord } from '../helpers/record.js';
import { tempDir } from '../helpers/tmp.js';
import { needNanos, needOps } from '../helpers/tools.js';

const dir = await tempDir('uniprove-gcp-fleet-cli-');
/** The inputs' arguments by digest: the server's instances prove the arguments of the image they boot. */
const TABLE = argsTable([...Array.from({ length: 20 }, (_, i) => ['prove', String(i)]), ['prove', 'same']]);
const server = await GceServer.start({ console: fleetServerConsole(TABLE) });
after(() => server.close());
const ZONES = 'us-central1-a,us-central1-b,us-central1-c';

/** A recipe whose binary is a copy of /bin/true, with a console proof and the given parameter sets. */
const recipe = (name: string, sets: string[] = []) => trueRecipe(dir, name, sets, { memory: '2G', cpus: 2 });

async function inputsFile(n: number, same = false): Promise<string> {
  const path = join(dir, `inputs-${n}${same ? '-same' : ''}.txt`);
  const lines = Array.from({ length: n }, (_, i) =>
    same ? (i % 2 ? '["prove", "same"]' : 'prove same') : i % 2 ? `["prove", "${i}"]` : `prove ${i}`,
  );
  await writeFile(path, `# one proof a line\n${lines.join('\n')}\n`);
  return path;
}

/** The CLI's environment against the local server, with the cache of this file's folder. */
function env(cwd: string): Record<string, string> {
  return fleetCliEnv(server, cwd, join(dir, 'cache'));
}

type Call = { method: string; params: Record<string, string>; body?: Record<string, unknown> };

test('gcp run <recipe> --inputs --parallel --dry-run --json: one image import per distinct argument list, one volume image import, N Spot labelled inserts, the cost', async () => {
  const r0 = await recipe('fleetvol', ['filecoin-2KiB']);
  const inputs = await inputsFile(12);
  const home = join(dir, 'home-dry');
  await mkdir(home, { recursive: true });
  const before = server.requests.length;
  const r = await uniprove(
    [
      ...['gcp', 'run', r0, '--inputs', inputs, '--parallel', '4'],
      ...['--project', 'my-proj', '--zone', 'us-central1-a', '--dry-run', '--json'],
    ],
    { env: { HOME: home, CLOUDSDK_CONFIG: join(home, 'g'), PATH: process.env.PATH ?? '' }, cwd: dir },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const out = parseJson<{
    calls: Call[];
    fleet: { id: string; images: number; cost: { usd: number; instances: number } };
  }>(r);
  assert.equal(out.fleet.images, 12, 'the summary says one image per distinct argument list');
  const imports = out.calls.filter((c) => c.method === 'images.insert');
  assert.equal(imports.length, 13, 'one image import per distinct argument list and one volume image import');
  const boot = imports.filter((c) => !String(c.body!.name).startsWith('uniprove-vol-'));
  assert.equal(boot.length, 12);
  assert.deepEqual(
    boot.map((c) => TABLE.get((c.body!.labels as Record<string, string>)['uniprove-args']!)),
    Array.from({ length: 12 }, (_, i) => ['prove', String(i)]),
    'each image labelled with the digest of its arguments',
  );
  assert.equal(out.calls.filter((c) => c.method === 'storage.buckets.get').length, 1, 'the bucket once');
  const inserts = out.calls.filter((c) => c.method === 'instances.insert');
  assert.equal(inserts.length, 4, 'at most --parallel inserts shown');
  for (const c of inserts) {
    const body = c.body as { scheduling: Record<string, unknown>; labels: Record<string, string> };
    assert.equal(body.scheduling.provisioningModel, 'SPOT');
    assert.equal(body.labels['uniprove-fleet'], out.fleet.id);
    const disks = (c.body as { disks: { initializeParams: { labels: Record<string, string> } }[] }).disks;
    assert.equal(disks.length, 2, 'the boot disk and its own volume disk');
    for (const d of disks) assert.equal(d.initializeParams.labels['uniprove-fleet'], out.fleet.id);
  }
  assert.ok(out.fleet.cost.usd > 0 && out.fleet.cost.instances >= 12, JSON.stringify(out.fleet.cost));
  assert.equal(server.requests.length, before, 'a dry run made requests');
  // Inputs that all have the same arguments: one image import (and the volume's).
  const same = await uniprove(
    [
      ...['gcp', 'run', r0, '--inputs', await inputsFile(12, true), '--parallel', '4'],
      ...['--project', 'my-proj', '--zone', 'us-central1-a', '--dry-run', '--json'],
    ],
    { env: { HOME: home, CLOUDSDK_CONFIG: join(home, 'g'), PATH: process.env.PATH ?? '' }, cwd: dir },
  );
  assert.equal(same.exitCode, 0, same.stderr);
  const sameCalls = parseJson<{ calls: Call[] }>(same).calls;
  assert.equal(sameCalls.filter((c) => c.method === 'images.insert').length, 2);
  assert.equal(parseJson<{ fleet: { images: number } }>(same).fleet.images, 1);
  assert.deepEqual(
    parseJson<{ fleet: { cost: unknown } }>(same).fleet.cost,
    out.fleet.cost,
    'the cost estimate does not depend on the images',
  );
});

test('--max-cost below the estimate: E_GCP_MAX_COST before anything is made; --no-spot is on-demand', async () => {
  const r0 = await recipe('fleetcost');
  const inputs = await inputsFile(20);
  const before = server.requests.length;
  const where = ['--project', 'my-proj', '--zone', 'us-central1-a'];
  const r = await uniprove(
    ['gcp', 'run', r0, '--inputs', inputs, '--parallel', '5', '--max-cost', '0.01', ...where],
    {
      env: { ...env(dir), CLOUDSDK_CONFIG: join(dir, 'g') },
      cwd: dir,
    },
  );
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /E_GCP_MAX_COST/);
  assert.equal(server.requests.length, before, 'a refused fleet reached the cloud');
  const onDemand = await uniprove(
    ['gcp', 'run', r0, '--inputs', inputs, '--parallel', '5', '--no-spot', '--dry-run', '--json', ...where],
    { env: { ...env(dir), CLOUDSDK_CONFIG: join(dir, 'g') }, cwd: dir },
  );
  const calls = parseJson<{ calls: Call[] }>(onDemand).calls;
  const body = calls.find((c) => c.method === 'instances.insert')!.body as {
    scheduling: Record<string, unknown>;
  };
  assert.equal(body.scheduling.provisioningModel, 'STANDARD');
  const usage = await uniprove(['gcp', 'run', r0, '--parallel', '5', ...where], { env: env(dir), cwd: dir });
  assert.equal(usage.exitCode, 2);
  assert.match(usage.stderr, /--parallel goes with --inputs/);
});

const skipReal = needOps() ?? needNanos();

test('a 20-input fleet, --parallel 5, 3 preemptions, one zone exhausted: 20 proofs, 3 retries, nothing left', {
  skip: skipReal,
  timeout: 300_000,
}, async () => {
  const r0 = await recipe('fleet20');
  const inputs = await inputsFile(20);
  const cwd = join(dir, 'cwd-20');
  await mkdir(cwd, { recursive: true });
  server.exhaustedZones.add('us-central1-a');
  server.preemptNext(3, { afterSerialReads: 2 });
  try {
    const r = await uniprove(
      ['gcp', 'run', r0, '--inputs', inputs, '--parallel', '5', '--zones', ZONES, '--json'],
      {
        env: env(cwd),
        cwd,
        timeoutMs: 240_000,
      },
    );
    assert.equal(r.exitCode, 0, r.stderr);
    const out = parseJson<{
      fleetId: string;
      record: string;
      summary: { succeeded: number; retried: number };
      inputs: { input: string; outcome: string; zone: string; dir: string; attempts: number }[];
    }>(r);
    assert.equal(out.summary.succeeded, 20, r.stdout);
    assert.equal(out.summary.retried, 3);
    assert.deepEqual(server.inventory(), []);
    assert.deepEqual(
      server.violations.filter((v) => !v.includes('(injected)')),
      [],
    );
    const fleet = JSON.parse(await readFile(out.record, 'utf8'));
    assert.equal(fleet.succeeded, 20);
    assert.equal(fleet.retried, 3);
    assert.ok(fleet.zones.left.includes('us-central1-a'));
    for (const row of out.inputs) {
      const record = JSON.parse(await readFile(join(row.dir, 'record.json'), 'utf8'));
      assertRunRecord(record, `the record of input ${row.input}`);
      assert.equal(record.outcome, 'succeeded');
      assert.equal(row.zone, 'us-central1-b');
      // Each input's proof is of its own arguments (the server proves what the booted image holds).
      const proof = await readFile(join(row.dir, record.proofs[0].path), 'utf8');
      assert.equal(proof.trim(), `proof of ${JSON.stringify(row.input.split(' '))}`);
      assert.deepEqual(record.args, row.input.split(' '));
    }
    // NDJSON progress on stderr with --json.
    assert.ok(
      r.stderr.split('\n').some((l) => l.startsWith('{"type":"fleet.')),
      r.stderr.slice(0, 500),
    );
    // One image import per distinct argument list (20), kept and reused by digest; no metadata arguments.
    const imported = server.requests.filter((q) => q.api === 'images.insert');
    assert.equal(imported.length, 20);
    assert.equal(server.requests.filter((q) => q.api === 'storage.buckets.get').length, 1);
    for (const q of server.requests.filter((x) => x.api === 'instances.insert')) {
      const body = q.body as Record<string, unknown> & { metadata?: { items?: { key: string }[] } };
      assert.ok(bootedArgs(body, server, TABLE), 'an instance booted an image of no known arguments');
      assert.ok(!body.metadata?.items?.some((i) => i.key === 'uniprove-args'));
    }
    assert.deepEqual(
      server.leftovers().filter((l) => l.startsWith('object')),
      [],
    );
    const ls = await uniprove(['gcp', 'ls', '--json'], { env: env(cwd), cwd });
    assert.equal(ls.exitCode, 0, ls.stderr);
    assert.ok(!r.stdout.includes(server.token) && !r.stderr.includes(server.token), 'token printed');
  } finally {
    server.exhaustedZones.clear();
  }
});

test('a fleet whose inputs all have the same arguments imports one image; every input proves them', {
  skip: skipReal,
  timeout: 300_000,
}, async () => {
  const r0 = await recipe('fleetsame');
  const inputs = await inputsFile(4, true);
  const cwd = join(dir, 'cwd-same');
  await mkdir(cwd, { recursive: true });
  const mark = server.requests.length;
  const r = await uniprove(
    ['gcp', 'run', r0, '--inputs', inputs, '--parallel', '2', '--zones', ZONES, '--json'],
    { env: env(cwd), cwd, timeoutMs: 240_000 },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const out = parseJson<{ summary: { succeeded: number }; inputs: { dir: string }[] }>(r);
  assert.equal(out.summary.succeeded, 4, r.stdout);
  assert.equal(server.requests.slice(mark).filter((q) => q.api === 'images.insert').length, 1);
  for (const row of out.inputs) {
    const record = JSON.parse(await readFile(join(row.dir, 'record.json'), 'utf8'));
    const proof = await readFile(join(row.dir, record.proofs[0].path), 'utf8');
    assert.equal(proof.trim(), 'proof of ["prove","same"]');
  }
  assert.deepEqual(server.inventory(), []);
});

/** Start a fleet in a child process, send SIGINT when `when` holds (twice if asked), and return its end. */
async function interrupted(name: string, when: () => boolean, twice = false) {
  const r0 = await recipe(name);
  const inputs = await inputsFile(20);
  const cwd = join(dir, `cwd-${name}`);
  await mkdir(cwd, { recursive: true });
  const child = execa(
    process.execPath,
    [CLI, 'gcp', 'run', r0, '--inputs', inputs, '--parallel', '5', '--zones', ZONES, '--json'],
    { cwd, env: { ...env(cwd), CI: '1' }, reject: false, timeout: 240_000 },
  );
  const timer = setInterval(() => {
    if (!when()) return;
    clearInterval(timer);
    child.kill('SIGINT');
    if (twice) setTimeout(() => child.kill('SIGINT'), 30);
  }, 2);
  try {
    return await child;
  } finally {
    clearInterval(timer);
  }
}

type Requests = GceServer['requests'];
const instances = () => server.inventory().filter((r) => r.startsWith('instance')).length;

for (const [moment, when] of [
  ['while the image is uploaded', (q: Requests) => q.some((x) => x.api.startsWith('storage.objects.insert'))],
  ['with 5 instances running', () => instances() >= 5],
  ['after some proofs', (q: Requests) => q.filter((x) => x.api === 'instances.delete').length >= 7],
] as const) {
  test(`Ctrl-C ${moment}: exit 130, the inventory empty`, { skip: skipReal, timeout: 300_000 }, async () => {
    const mark = server.requests.length;
    const r = await interrupted(`fleetint${moment.length}`, () => when(server.requests.slice(mark)));
    assert.equal(r.exitCode, 130, `${r.stderr}`);
    assert.deepEqual(server.inventory(), []);
    // No staging object left either (an interrupted import deletes what it half made).
    assert.deepEqual(
      server.leftovers().filter((l) => l.startsWith('object')),
      [],
    );
  });
}

test('a second Ctrl-C deletes everything at once: exit 130, the inventory empty', {
  skip: skipReal,
  timeout: 300_000,
}, async () => {
  const r = await interrupted('fleettwice', () => instances() >= 3, true);
  assert.equal(r.exitCode, 130, r.stderr);
  assert.match(r.stderr, /deleting everything now/);
  // Requests the CLI sent before it died are handled by now: nothing came after the sweep.
  await new Promise((done) => setTimeout(done, 300));
  assert.deepEqual(server.inventory(), []);
});

test('a crashed fleet (SIGKILL): gcp ls groups what is left by fleet, gcp gc --fleet deletes it', {
  skip: skipReal,
  timeout: 300_000,
}, async () => {
  const r0 = await recipe('fleetcrash');
  const inputs = await inputsFile(20);
  const cwd = join(dir, 'cwd-crash');
  await mkdir(cwd, { recursive: true });
  const child = execa(
    process.execPath,
    [CLI, 'gcp', 'run', r0, '--inputs', inputs, '--parallel', '5', '--json'],
    { cwd, env: { ...env(cwd), CI: '1' }, reject: false, timeout: 240_000 },
  );
  const timer = setInterval(() => {
    if (instances() >= 3) child.kill('SIGKILL');
  }, 2);
  await child;
  clearInterval(timer);
  assert.ok(instances() > 0, 'nothing was left to find');
  const ls = await uniprove(['gcp', 'ls', '--json'], { env: env(cwd), cwd });
  assert.equal(ls.exitCode, 0, ls.stderr);
  const { fleets } = parseJson<{ fleets: { id: string; instances: number; disks: number }[] }>(ls);
  assert.equal(fleets.length, 1, ls.stdout);
  const human = await uniprove(['gcp', 'ls'], { env: env(cwd), cwd });
  assert.match(human.stdout, new RegExp(`^fleet ${fleets[0]!.id}: \\d+ instance`, 'm'));
  const gc = await uniprove(['gcp', 'gc', '--fleet', fleets[0]!.id], { env: env(cwd), cwd });
  assert.equal(gc.exitCode, 0, gc.stderr);
  assert.match(gc.stdout, /deleted instance uniprove-f/);
  assert.deepEqual(server.inventory(), []);
});
