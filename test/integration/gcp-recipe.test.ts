/**
 * `gcp run <recipe>` and `gcp image <recipe>` against the local fake GCE and
 * Storage server: a dry run that needs nothing and makes nothing, bad input
 * that leaves nothing, and a real run of the demo prover (ops build, upload,
 * instance, console, proof in the run record) when ops and a Nanos kernel are here.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { execa } from 'execa';
import { parseJson, uniprove } from '../helpers/cli.js';
import { buildDemoProver, needCargo } from '../helpers/demo-prover.js';
import { GceServer } from '../helpers/gce-server.js';
import { trueRecipe } from '../helpers/gcp.js';
import { assertRunRecord } from '../helpers/record.js';
import { tempDir } from '../helpers/tmp.js';
import { needNanos, needOps } from '../helpers/tools.js';

const dir = await tempDir('uniprove-gcp-recipe-');
const server = await GceServer.start({ serialChunk: 1 << 20 });
after(() => server.close());

/** No credentials, gcloud's configuration empty, a private HOME (so ~/.ops and the cache are fresh). */
function bareEnv(home: string): Record<string, string> {
  return {
    HOME: home,
    CLOUDSDK_CONFIG: join(home, 'gcloud'),
    PATH: process.env.PATH ?? '',
    // Even if a client were made, it would talk to the fake: the test counts its requests.
    UNIPROVE_GCP_COMPUTE_ENDPOINT: server.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: server.url,
  };
}

async function listAll(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      out.push(`${rel}${e.name}`);
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
    }
  };
  await walk(root, '');
  return out.sort();
}

/** A recipe in a temp folder whose binary is a copy of /bin/true, with the given volumes. */
const volumeRecipe = (name: string, sets: string[]) => trueRecipe(dir, name, sets, { memory: '6G', cpus: 3 });

type Call = { method: string; params: Record<string, string>; body?: Record<string, unknown> };

/** The images gcp run leaves in ~/.ops/images (other test files build images of their own there at the same time). */
async function gcpImages(): Promise<string[]> {
  return (await readdir(join(homedir(), '.ops', 'images')).catch(() => [] as string[])).filter((n) =>
    n.startsWith('uniprove-gcp-'),
  );
}

test('gcp run demo --dry-run --json: the calls in order, a placeholder digest, no credentials, no requests, nothing written', async () => {
  const home = join(dir, 'home-dry');
  const cwd = join(dir, 'cwd-dry');
  await mkdir(home, { recursive: true });
  await mkdir(cwd, { recursive: true });
  const before = server.requests.length;
  const r = await uniprove(
    ['gcp', 'run', 'demo', '--project', 'my-proj', '--zone', 'us-central1-a', '--dry-run', '--json'],
    { env: bareEnv(home), cwd },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const { calls } = parseJson<{ calls: Call[] }>(r);
  const methods = calls.map((c) => c.method);
  const at = (m: string) => methods.indexOf(m);
  assert.ok(at('images.get') >= 0 && at('images.get') < at('images.insert'), methods.join(' '));
  assert.ok(at('images.insert') < at('instances.insert'), methods.join(' '));
  assert.ok(at('instances.insert') < at('instances.getSerialPortOutput'), methods.join(' '));
  assert.ok(at('instances.getSerialPortOutput') < at('instances.delete'), methods.join(' '));
  assert.ok(!methods.includes('disks.insert'), 'the demo has no volume');
  const imageInsert = calls.find((c) => c.method === 'images.insert')!;
  assert.equal(
    (imageInsert.body!.labels as Record<string, string>)['uniprove-digest'],
    '<sha256 of the image built from recipe demo>',
  );
  const insert = calls.find((c) => c.method === 'instances.insert')!.body!;
  // The demo asks for 1 CPU and 1G; an n2 custom type needs an even number of vCPUs.
  assert.equal(insert.machineType, 'zones/us-central1-a/machineTypes/n2-custom-2-1024');
  assert.equal(server.requests.length, before, 'a dry run made requests');
  assert.deepEqual(await listAll(cwd), [], 'a dry run wrote into the working folder');
  assert.deepEqual(await listAll(home), [], 'a dry run wrote into HOME (ops images, cache, gcloud)');
});

test('gcp run <recipe with a volume> --dry-run: images, then the volume disk, then the instance with it attached', async () => {
  const recipe = await volumeRecipe('withvol', ['filecoin-2KiB']);
  const home = join(dir, 'home-vol');
  await mkdir(home, { recursive: true });
  const r = await uniprove(
    ['gcp', 'run', recipe, '--project', 'my-proj', '--zone', 'us-central1-a', '--dry-run', '--json'],
    { env: bareEnv(home), cwd: dir },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const { calls } = parseJson<{ calls: Call[] }>(r);
  const methods = calls.map((c) => c.method);
  const imageInserts = methods.flatMap((m, i) => (m === 'images.insert' ? [i] : []));
  assert.equal(imageInserts.length, 2, 'one image for the boot disk, one for the volume');
  assert.ok(imageInserts[1]! < methods.indexOf('disks.insert'));
  assert.ok(methods.indexOf('disks.insert') < methods.indexOf('instances.insert'));
  const volImage = calls.filter((c) => c.method === 'images.insert')[1]!;
  assert.match(
    String((volImage.body!.labels as Record<string, string>)['uniprove-digest']),
    /^<sha256 of volume filecoin-2KiB-[0-9a-f]{8} built from set filecoin-2KiB>$/,
  );
  const insert = calls.find((c) => c.method === 'instances.insert')!.body!;
  assert.equal((insert.disks as unknown[]).length, 2);
  assert.equal(insert.machineType, 'zones/us-central1-a/machineTypes/n2-custom-4-6144');
  assert.deepEqual(await listAll(home), []);
});

test('bad input leaves nothing: two volumes, a bad --gpu, recipe flags with --image', async () => {
  const home = join(dir, 'home-bad');
  const cwd = join(dir, 'cwd-bad');
  await mkdir(home, { recursive: true });
  await mkdir(cwd, { recursive: true });
  const two = await volumeRecipe('twovol', ['filecoin-2KiB', 'filecoin-srs']);
  const env = { ...bareEnv(home), CLOUDSDK_AUTH_ACCESS_TOKEN: server.token };
  const where = ['--project', 'my-proj', '--zone', 'us-central1-a'];
  const before = server.requests.length;
  const r1 = await uniprove(['gcp', 'run', two, ...where], { env, cwd });
  assert.equal(r1.exitCode, 2, r1.stderr);
  assert.match(r1.stderr, /mounts 2 volumes .*one disk/);
  const r2 = await uniprove(['gcp', 'run', 'demo', '--gpu', 'l4 x2', ...where], { env, cwd });
  assert.equal(r2.exitCode, 2, r2.stderr);
  assert.match(r2.stderr, /--gpu/);
  const r3 = await uniprove(['gcp', 'run', '--image', 'x', '--binary', '/bin/true', ...where], { env, cwd });
  assert.equal(r3.exitCode, 2, r3.stderr);
  assert.match(r3.stderr, /--binary changes a recipe/);
  assert.equal(server.requests.length, before, 'bad input reached the cloud');
  assert.deepEqual(await listAll(cwd), [], 'bad input left a package or a run folder');
});

const skipReal = needOps() ?? needNanos() ?? needCargo();

test('gcp run demo --binary X against the fake: image built and uploaded, console streamed, proof in the record, nothing left', {
  skip: skipReal,
  timeout: 600_000,
}, async () => {
  const binary = await buildDemoProver();
  assert.ok(binary);
  // What the prover prints, from the same binary run here: the fake instance plays it back on its serial port.
  const native = await execa(binary, ['prove', '--out', join(dir, 'native-proof'), '--proof-seed', '7'], {
    all: true,
  });
  const printed = String(native.all);
  const m = /\nUNIPROVE-PROOF-BEGIN\n([\s\S]*?)\nUNIPROVE-PROOF-END\n/.exec(printed);
  assert.ok(m, printed);
  const expected = `${m[1]}\n`;
  const expectedSha = createHash('sha256').update(expected).digest('hex');
  const consoleText = `en1: assigned 10.128.0.7\n${printed.replace(/\r?\n?$/, '\n')}exit status 0\n`;
  const fake = await GceServer.start({ serialChunk: 1 << 20, console: () => consoleText });
  try {
    const cwd = join(dir, 'cwd-real');
    const cache = join(dir, 'cache-real');
    await mkdir(cwd, { recursive: true });
    const env = {
      HOME: homedir(),
      PATH: process.env.PATH ?? '',
      CLOUDSDK_CONFIG: join(dir, 'gcloud-real'),
      UNIPROVE_CACHE: cache,
      UNIPROVE_GCP_COMPUTE_ENDPOINT: fake.url,
      UNIPROVE_GCP_STORAGE_ENDPOINT: fake.url,
      CLOUDSDK_AUTH_ACCESS_TOKEN: fake.token,
      CLOUDSDK_CORE_PROJECT: 'recipe-project',
      CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
    };
    const imagesBefore = await gcpImages();
    const run = await uniprove(['gcp', 'run', 'demo', '--binary', binary, '--json', '--timeout', '10m'], {
      env,
      cwd,
      timeoutMs: 480_000,
    });
    assert.equal(run.exitCode, 0, run.stderr);
    const out = parseJson<{
      id: string;
      dir: string;
      outcome: string;
      accel: string;
      proofs: { path: string; sha256: string; source: string }[];
      gce: { instance: string; image: string; machineType: string; ended: string };
    }>(run);
    assert.equal(out.outcome, 'succeeded');
    assert.equal(out.accel, 'gce');
    assert.equal(out.gce.ended, 'marker');
    assert.equal(out.proofs.length, 1);
    assert.equal(out.proofs[0]!.sha256, expectedSha);
    assert.equal(await readFile(out.proofs[0]!.path, 'utf8'), expected);

    // The record and the report, as a local run keeps them.
    const record = JSON.parse(await readFile(join(out.dir, 'record.json'), 'utf8'));
    // One schema for every driver: the same one the local run's record passes (run-local.test.ts).
    assertRunRecord(record, 'the gce run record');
    assert.equal(record.via, 'gce');
    assert.equal(record.outcome, 'succeeded');
    assert.equal(record.proofs[0].sha256, expectedSha);
    assert.ok(record.timings.imageBuildMs > 0);
    assert.ok(record.timings.totalMs >= record.timings.imageBuildMs);
    assert.equal(record.files.console, 'console.log');
    assert.equal(await readFile(join(out.dir, 'console.log'), 'utf8'), consoleText);
    assert.ok(existsSync(join(cwd, 'build', 'demo', 'gcloud.json')), 'the recipe was packaged');
    const csv = (await readFile(join(cwd, 'runs', 'proving_report.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv.length, 2);
    assert.ok(csv[1]!.startsWith(`${out.id},demo,`), csv[1]);
    assert.match(csv[1]!, new RegExp(`,succeeded,gce,proofs/console-proof.txt=sha256:${expectedSha},`));

    // The fake saw a real image: a tarball holding disk.raw (it checks), then an instance of the custom type.
    assert.deepEqual(fake.violations, []);
    assert.equal(fake.uploads.size, 1);
    const methods = fake.calls();
    for (const mth of ['storage.objects.insert', 'images.insert', 'instances.insert', 'instances.delete'])
      assert.ok(methods.includes(mth), mth);
    const insert = fake.requests.find((q) => q.api === 'instances.insert')!.body as Record<string, unknown>;
    assert.match(String(insert.machineType), /machineTypes\/n2-custom-2-1024$/);
    // Only the image is left (kept for reuse), and ops's local image is gone.
    assert.deepEqual(fake.leftovers(), [`image ${out.gce.image}`]);
    assert.deepEqual((await gcpImages()).sort(), [...imagesBefore].sort());

    // Same inputs: the second run reuses the image (no upload), by its build key. --out names its record
    // folder, and only that: the package stays in build/demo.
    const record2 = join(cwd, 'second-record');
    const again = await uniprove(['gcp', 'run', 'demo', '--binary', binary, '--json', '--out', record2], {
      env,
      cwd,
      timeoutMs: 480_000,
    });
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(parseJson<{ gce: { image: string } }>(again).gce.image, out.gce.image);
    assert.equal(parseJson<{ dir: string }>(again).dir, record2);
    assert.equal(fake.uploads.size, 1, 'the image was uploaded again');
    const inRecord = await readdir(record2);
    assert.ok(inRecord.includes('record.json') && inRecord.includes('console.log'), inRecord.join(' '));
    for (const name of ['uniprove.lock.json', 'local.json', 'gcloud.json']) {
      assert.ok(!inRecord.includes(name), `${name} is not in the record folder: ${inRecord.join(' ')}`);
    }

    const gc = await uniprove(['gcp', 'gc'], { env, cwd });
    assert.equal(gc.exitCode, 0, gc.stderr);
    assert.deepEqual(fake.leftovers(), []);

    // The token is nowhere: not printed, not in the record folder or the report.
    for (const r of [run, again, gc]) {
      assert.ok(!r.stdout.includes(fake.token) && !r.stderr.includes(fake.token), 'token printed');
    }
    for (const f of await listAll(join(cwd, 'runs'))) {
      const text = await readFile(join(cwd, 'runs', f), 'utf8').catch(() => '');
      assert.ok(!text.includes(fake.token), `token in runs/${f}`);
    }
  } finally {
    await fake.close();
  }
});

test('gcp image demo --binary X on its own: packaged, built, uploaded once, reused by its build key, gone after gc', {
  skip: skipReal,
  timeout: 600_000,
}, async () => {
  const binary = await buildDemoProver();
  assert.ok(binary);
  const fake = await GceServer.start({ serialChunk: 1 << 20 });
  try {
    await imageOnItsOwn(binary, fake);
  } finally {
    await fake.close();
  }
});

async function imageOnItsOwn(binary: string, fake: GceServer): Promise<void> {
  const cwd = join(dir, 'cwd-image');
  await mkdir(cwd, { recursive: true });
  const env = {
    HOME: homedir(),
    PATH: process.env.PATH ?? '',
    CLOUDSDK_CONFIG: join(dir, 'gcloud-image'),
    UNIPROVE_CACHE: join(dir, 'cache-image'),
    UNIPROVE_GCP_COMPUTE_ENDPOINT: fake.url,
    UNIPROVE_GCP_STORAGE_ENDPOINT: fake.url,
    CLOUDSDK_AUTH_ACCESS_TOKEN: fake.token,
    CLOUDSDK_CORE_PROJECT: 'image-project',
    CLOUDSDK_COMPUTE_ZONE: 'us-central1-a',
  };
  const imagesBefore = await gcpImages();
  const first = await uniprove(['gcp', 'image', 'demo', '--binary', binary, '--json'], {
    env,
    cwd,
    timeoutMs: 480_000,
  });
  assert.equal(first.exitCode, 0, first.stderr);
  const img = parseJson<{ image: string; project: string; reused: boolean }>(first);
  assert.equal(img.project, 'image-project');
  assert.equal(img.reused, false);
  assert.ok(existsSync(join(cwd, 'build', 'demo', 'gcloud.json')), 'the recipe was packaged');
  assert.deepEqual(fake.violations, []);
  assert.equal(fake.uploads.size, 1);
  assert.ok(fake.calls().includes('images.insert'));
  assert.deepEqual(
    fake.leftovers(),
    [`image ${img.image}`],
    'an image and nothing else: no instance, no disk',
  );
  assert.deepEqual((await gcpImages()).sort(), [...imagesBefore].sort());

  // The same inputs: the image is found by its build key, nothing is uploaded again.
  const again = await uniprove(['gcp', 'image', 'demo', '--binary', binary, '--json'], {
    env,
    cwd,
    timeoutMs: 480_000,
  });
  assert.equal(again.exitCode, 0, again.stderr);
  const img2 = parseJson<{ image: string; reused: boolean }>(again);
  assert.deepEqual([img2.image, img2.reused], [img.image, true]);
  assert.equal(fake.uploads.size, 1);

  const human = await uniprove(['gcp', 'image', 'demo', '--binary', binary], {
    env,
    cwd,
    timeoutMs: 480_000,
  });
  assert.match(human.stdout, new RegExp(`reused image ${img.image} in project image-project`));
  assert.match(human.stdout, /run it: uniprove gcp run --image /);

  const gc = await uniprove(['gcp', 'gc'], { env, cwd });
  assert.equal(gc.exitCode, 0, gc.stderr);
  assert.deepEqual(fake.leftovers(), []);
  for (const r of [first, again, human, gc]) {
    assert.ok(!r.stdout.includes(fake.token) && !r.stderr.includes(fake.token), 'token printed');
  }
}
