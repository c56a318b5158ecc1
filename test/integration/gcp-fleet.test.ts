/**
 * Fleets against the local Compute Engine server through the official
 * clients: the server's injected preemptions, exhausted zones, quotas, rate
 * limits and its serial window behave as Compute Engine's; a 20-input fleet
 * survives them with nothing left; Ctrl-C at several moments leaves nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createGcpClients, type GcpClients } from '../../src/core/cloud/clients.js';
import { fleetInstanceBody, fleetMachine, type GcpFleetSpec } from '../../src/core/cloud/fleet-plan.js';
import { runInstance } from '../../src/core/cloud/instance.js';
import { isUniproveError, type UniproveError } from '../../src/core/errors.js';
import { classifyAttemptError } from '../../src/core/gcp/fleet/capacity.js';
import { fleetError } from '../../src/core/gcp/fleet/record.js';
import {
  type FleetEvent,
  type FleetOptions,
  type FleetResult,
  runFleet,
} from '../../src/core/gcp/fleet/scheduler.js';
import { gcpImage } from '../../src/core/image/gce.js';
import { GceServer, SERIAL_WINDOW } from '../helpers/gce-server.js';
import { against, sparseDisk, TARGET } from '../helpers/gcp.js';
import {
  argsImages,
  argsTable,
  bootedArgs,
  fleetFileProofBytes,
  fleetFileProofConsole,
  fleetServerConsole,
  serverFleetRunOne,
} from '../helpers/gcp-fleet.js';
import { assertRunRecord } from '../helpers/record.js';
import { tempDir } from '../helpers/tmp.js';
import { needGcc } from '../helpers/tools.js';

const dir = await tempDir('uniprove-gcp-fleet-');
const raw = await sparseDisk(dir, 'prover.raw', 16 << 20, 3);
const volRaw = await sparseDisk(dir, 'params.raw', 16 << 20, 5);
const ZONES = ['us-central1-a', 'us-central1-b', 'us-central1-c'];
const inputs = (n: number) =>
  Array.from({ length: n }, (_, index) => ({ index, args: ['prove', String(index)] }));

/** Every input's arguments by their digest: what the server's instances prove is looked up here. */
const TABLE = argsTable(inputs(20).map((i) => i.args));

interface Fixture {
  server: GceServer;
  clients: GcpClients;
  image: string;
  /** One image per input's arguments (labelled uniprove-args), as the fleet imports them. */
  images: ReturnType<typeof argsImages>;
}

/** A server with the prover image, and one per input's arguments, imported and clients for it; closed after the test (or suite) that made it. */
async function fixture(
  options: Parameters<typeof GceServer.start>[0] = {},
  register: typeof after = after,
): Promise<Fixture> {
  const server = await GceServer.start({ console: fleetServerConsole(TABLE), ...options });
  const clients = await createGcpClients({
    project: TARGET.project,
    endpoints: { compute: server.url, storage: server.url },
    accessToken: server.token,
  });
  const imported = await gcpImage({ ...against(server), clients, disk: { rawPath: raw, name: 'prover' } });
  assert.ok(!imported.dryRun);
  register(async () => {
    await clients.close();
    await server.close();
  });
  const images = argsImages(server, imported.image, [...TABLE.values()]);
  return { server, clients, image: imported.image, images };
}

/** A fleet of 20 over the real Compute Engine runOne (the run lifecycle, one record per attempt). */
async function fleet(
  f: Fixture,
  fleetId: string,
  extra: Partial<FleetOptions> = {},
): Promise<FleetOptions & { runsDir: string }> {
  const runsDir = await tempDir('uniprove-fleet-runs-');
  return {
    runsDir,
    fleetId,
    inputs: inputs(20),
    parallel: 5,
    zones: ZONES,
    ...serverFleetRunOne({ clients: f.clients, image: f.image, images: f.images, fleetId, runsDir }),
    backoff: { baseMs: 5, maxMs: 50 },
    ...extra,
  };
}

/** Each input's run record passes the schema and holds its own proof; preempted attempts kept theirs. */
async function assertFleetRecords(result: FleetResult, runsDir: string): Promise<void> {
  for (const input of result.inputs) {
    assert.ok(input.dir, `input ${input.index} has no run record`);
    const record = JSON.parse(await readFile(join(input.dir, 'record.json'), 'utf8'));
    assertRunRecord(record, `input ${input.index}'s record`);
    assert.equal(record.via, 'gce');
    assert.equal(record.outcome, 'succeeded');
    assert.deepEqual(record.args, input.args);
    // Its own arguments' proof: the server proves what the booted image holds, as Compute Engine does.
    const proof = await readFile(join(input.dir, record.proofs[0].path), 'utf8');
    assert.equal(proof.trim(), `proof of ${JSON.stringify(input.args)}`);
    assert.ok(
      !record.warnings.some((w: { code: string }) => w.code === 'fleet-args'),
      JSON.stringify(record.warnings),
    );
  }
  for (const a of result.attempts.filter((x) => x.kind === 'preempted')) {
    const record = JSON.parse(await readFile(join(a.dir!, 'record.json'), 'utf8'));
    assertRunRecord(record, "a preempted attempt's record");
    assert.equal(record.error.code, 'E_GCP_PREEMPTED');
  }
  const csv = (await readFile(join(runsDir, 'proving_report.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv.filter((l) => l.includes(',succeeded,gce,')).length, result.inputs.length);
}

const offSpec = (server: GceServer) => server.violations.filter((v) => !v.includes('(injected)'));

describe('the local Compute Engine server plays capacity and preemption', () => {
  let f: Fixture;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    f = await fixture({}, ((fn: () => Promise<void>) => closers.push(fn)) as unknown as typeof after);
  });
  after(async () => {
    for (const close of closers) await close();
  });

  test('an exhausted zone fails instances.insert in its operation, as Compute Engine does', async () => {
    f.server.exhaustedZones.add('us-central1-f');
    const error = await runInstance({
      ...against(f.server),
      clients: f.clients,
      target: { ...TARGET, zone: 'us-central1-f' },
      image: { existing: f.image },
      machine: { machineType: 'n2-standard-2', spot: true },
      watch: { intervalMs: 1 },
    }).catch((e: unknown) => e as UniproveError);
    assert.ok(isUniproveError(error));
    assert.equal(error.details.reason, 'ZONE_RESOURCE_POOL_EXHAUSTED');
    assert.match(error.message, /does not have enough resources available to fulfill the request/);
    assert.equal(classifyAttemptError(error), 'zone-exhausted');
    assert.deepEqual(f.server.inventory(), []);
  });

  test('a quota: QUOTA_EXCEEDED past the zone limit; rate limits: 403 and 429 rateLimitExceeded', async () => {
    f.server.instanceQuota.set('us-central1-a', 0);
    const run = () =>
      runInstance({
        ...against(f.server),
        clients: f.clients,
        image: { existing: f.image },
        machine: { machineType: 'n2-standard-2', spot: true },
        watch: { intervalMs: 1 },
      }).catch((e: unknown) => e as UniproveError);
    const quota = await run();
    assert.equal(classifyAttemptError(quota), 'quota', String(quota));
    assert.match((quota as UniproveError).message, /Quota 'INSTANCES' exceeded/);
    f.server.instanceQuota.delete('us-central1-a');
    for (const status of [403, 429] as const) {
      // More than the retries allow (test/helpers/gcp.ts: 4 tries): a persistent rate limit.
      f.server.rateLimitNext(4, status, ['instances.insert']);
      const limited = await run();
      assert.equal(classifyAttemptError(limited), 'rate-limit', `${status}: ${String(limited)}`);
    }
    assert.deepEqual(f.server.inventory(), []);
  });

  test('a preempted Spot instance (DELETE action): a compute.instances.preempted operation, E_GCP_PREEMPTED, nothing left', async () => {
    f.server.preemptNext(1, { afterSerialReads: 2 });
    const error = await runInstance({
      ...against(f.server),
      clients: f.clients,
      image: { existing: f.image },
      machine: { machineType: 'n2-standard-2', spot: true },
      watch: { intervalMs: 1, statusEvery: 1 },
      isEnd: (l) => /^exit status (\d+)$/.exec(l)?.[1],
    }).catch((e: unknown) => e as UniproveError);
    assert.equal((error as UniproveError).code, 'E_GCP_PREEMPTED', String(error));
    const [ops] = await f.clients.zoneOperations.list({
      project: TARGET.project,
      zone: TARGET.zone,
      filter: 'operationType="compute.instances.preempted"',
    });
    assert.equal(ops.length, 1);
    assert.equal(ops[0]!.status, 'DONE');
    assert.match(String(ops[0]!.targetLink), /instances\/uniprove-run-/);
    assert.deepEqual(f.server.inventory(), []);
    assert.deepEqual(offSpec(f.server), []);
  });

  test('Spot scheduling and fleet bodies are checked against the REST reference', async () => {
    const spec: GcpFleetSpec = {
      target: TARGET,
      fleetId: 'f20261130t051400-abcd',
      bucket: 'b',
      image: { existing: f.image },
      volume: { source: { existing: f.image }, diskType: 'pd-balanced', sizeGb: 10, readOnly: false },
      machine: fleetMachine({ machineType: 'n2-standard-2' }),
      bootDisk: { type: 'pd-balanced' },
      network: 'default',
      labels: {},
      maxRunSeconds: 3600,
      inputs: 1,
      parallel: 1,
      zones: [TARGET.zone],
    };
    const insert = (body: Record<string, unknown>) =>
      f.clients.instances.insert({
        project: TARGET.project,
        zone: TARGET.zone,
        instanceResource: body as never,
      });
    const body = fleetInstanceBody(spec, 0, 1, TARGET.zone, 'f20261130t051400-abcd-0');
    const [op] = await insert(body);
    assert.equal(op.latestResponse.error, undefined);
    const bad = [
      { ...body, name: 'bad-1', scheduling: { provisioningModel: 'SPOT', onHostMaintenance: 'MIGRATE' } },
      {
        ...body,
        name: 'bad-2',
        scheduling: { provisioningModel: 'STANDARD', instanceTerminationAction: 'DELETE' },
      },
      { ...body, name: 'bad-3', scheduling: { provisioningModel: 'STANDARD', preemptible: true } },
      {
        ...body,
        name: 'bad-4',
        scheduling: {
          provisioningModel: 'SPOT',
          onHostMaintenance: 'TERMINATE',
          maxRunDuration: { seconds: '60' },
        },
      },
      { ...body, name: 'bad-5', labels: { 'uniprove-fleet': 'UPPER' } },
    ];
    for (const b of bad) await assert.rejects(insert(b), /Invalid request/, String(b.name));
    await new Promise((r) => setTimeout(r, 5));
    // Once the insert is DONE the instance holds its boot disk and its own volume disk, labelled.
    for (let i = 0; i < 3; i++)
      await f.clients.zoneOperations.get({
        project: TARGET.project,
        zone: TARGET.zone,
        operation: op.latestResponse.name!,
      });
    assert.deepEqual(
      f.server.unlabelled('uniprove-fleet').filter((r) => !r.startsWith('image')),
      [],
    );
    assert.equal(f.server.inventory({ label: ['uniprove-fleet', spec.fleetId] }).length, 3);
    const { sweepFleet } = await import('../../src/core/cloud/fleet-sweep.js');
    const swept = await sweepFleet({
      clients: f.clients,
      target: TARGET,
      fleetId: spec.fleetId,
      poll: { initialMs: 1 },
    });
    assert.deepEqual(swept.failed, []);
    assert.deepEqual(f.server.inventory(), []);
  });
});

describe('a time-driven server (latencies)', () => {
  test('insert, boot and prove take their time; a preemption afterMs lands mid-proof', async () => {
    const f = await fixture({ latency: { insertMs: 150, bootMs: 100, proveMs: 200 } });
    const run = (spot: boolean) =>
      runInstance({
        ...against(f.server),
        clients: f.clients,
        image: { existing: f.image },
        machine: { machineType: 'n2-standard-2', spot },
        watch: { intervalMs: 10, statusEvery: 1 },
        isEnd: (l) => /^exit status (\d+)$/.exec(l)?.[1],
      });
    const t0 = performance.now();
    const ok = await run(false);
    assert.ok(!ok.dryRun && ok.ended === 'marker');
    assert.ok(performance.now() - t0 >= 450, `took ${performance.now() - t0} ms`);
    f.server.preemptNext(1, { afterMs: 150 });
    await assert.rejects(run(true), (e: UniproveError) => e.code === 'E_GCP_PREEMPTED');
    assert.deepEqual(f.server.inventory(), []);
    assert.deepEqual(offSpec(f.server), []);
  });
});

describe('getSerialPortOutput keeps a 1 MiB window with start and next offsets', () => {
  test('a late reader gets the last 1 MiB from the oldest kept byte; next offsets continue it', async () => {
    const big = `${'a'.repeat(SERIAL_WINDOW)}${'b'.repeat(SERIAL_WINDOW)}\nexit status 0\n`;
    const f = await fixture({ console: () => big, serialChunk: big.length });
    const [op] = await f.clients.instances.insert({
      project: TARGET.project,
      zone: TARGET.zone,
      instanceResource: {
        name: 'serial-window',
        machineType: `zones/${TARGET.zone}/machineTypes/n2-standard-2`,
        disks: [
          {
            boot: true,
            autoDelete: true,
            initializeParams: {
              sourceImage: `global/images/${f.image}`,
              diskType: `zones/${TARGET.zone}/diskTypes/pd-balanced`,
            },
          },
        ],
        networkInterfaces: [{ network: 'global/networks/default' }],
      },
    });
    for (let i = 0; i < 2; i++)
      await f.clients.zoneOperations.get({
        project: TARGET.project,
        zone: TARGET.zone,
        operation: op.latestResponse.name!,
      });
    const read = async (start: number) =>
      (
        await f.clients.instances.getSerialPortOutput({
          project: TARGET.project,
          zone: TARGET.zone,
          instance: 'serial-window',
          port: 1,
          start,
        })
      )[0];
    const first = await read(0);
    assert.equal(Number(first.start), big.length - SERIAL_WINDOW);
    assert.equal(Number(first.next), big.length);
    assert.equal(first.contents!.length, SERIAL_WINDOW);
    assert.ok(first.contents!.endsWith('exit status 0\n'));
    const again = await read(Number(first.next));
    assert.equal(again.contents, '');
    assert.equal(Number(again.start), big.length);
    const inside = await read(big.length - 10);
    assert.equal(inside.contents, big.slice(-10));
    assert.equal(Number(inside.start), big.length - 10);
  });
});

describe('a fleet of 20 on the local server', () => {
  test('3 preemptions and an exhausted zone: 20 proofs, 3 retries recorded, inventory empty', async () => {
    const f = await fixture();
    f.server.exhaustedZones.add('us-central1-a');
    f.server.preemptNext(3, { afterSerialReads: 2 });
    const events: FleetEvent[] = [];
    const options = await fleet(f, 'f20261130t060000-aaaa', { onEvent: (e) => events.push(e) });
    const result = await runFleet(options);
    assert.equal(
      result.summary.succeeded,
      20,
      JSON.stringify(result.inputs.filter((i) => i.outcome !== 'succeeded')),
    );
    assert.equal(result.summary.retried, 3);
    assert.equal(result.attempts.filter((a) => a.kind === 'preempted').length, 3);
    assert.ok(result.zones.left.includes('us-central1-a'));
    assert.ok(result.attempts.filter((a) => a.kind === 'succeeded').every((a) => a.zone === 'us-central1-b'));
    assert.deepEqual(result.cleanupErrors, []);
    assert.deepEqual(f.server.inventory(), []);
    assert.deepEqual(offSpec(f.server), []);
    const inserts = f.server.requests.filter((r) => r.api === 'instances.insert');
    assert.ok(
      inserts.every(
        (r) => (r.body as { labels: Record<string, string> }).labels['uniprove-fleet'] === result.fleetId,
      ),
    );
    assert.ok(events.some((e) => e.kind === 'zone'));
    await assertFleetRecords(result, options.runsDir);
    // Each instance boots the image of its input's arguments; nothing else tells it what to prove.
    for (const r of inserts) {
      const body = r.body as Record<string, unknown> & {
        name: string;
        metadata?: { items?: { key: string }[] };
      };
      const index = Number(/-(\d+)-\d+$/.exec(body.name)![1]);
      assert.deepEqual(bootedArgs(body, f.server, TABLE), ['prove', String(index)], body.name);
      assert.ok(!body.metadata?.items?.some((i) => i.key === 'uniprove-args'), 'arguments in the metadata');
    }
  });

  test("the fake proves what the image holds: an instance booting another input's image proves that input", async () => {
    const f = await fixture();
    // Input 0 booting input 1's image (as every input booting one shared image did): the proof is input 1's.
    const swapped = f.images.map((img, i) => ({ ...img, args: f.images[i ^ 1]!.args }));
    const fleetId = 'f20261130t060000-swap';
    const runsDir = await tempDir('uniprove-fleet-runs-');
    const result = await runFleet({
      fleetId,
      inputs: inputs(2),
      parallel: 2,
      zones: ZONES,
      ...serverFleetRunOne({ clients: f.clients, image: f.image, images: swapped, fleetId, runsDir }),
    });
    for (const input of result.inputs) {
      const record = JSON.parse(await readFile(join(input.dir!, 'record.json'), 'utf8'));
      const proof = await readFile(join(input.dir!, record.proofs[0].path), 'utf8');
      assert.equal(proof.trim(), `proof of ${JSON.stringify(['prove', String(input.index ^ 1)])}`);
    }
    assert.deepEqual(f.server.inventory(), []);
  });

  for (const stopAfter of [3, 15, 40]) {
    test(`Ctrl-C after ${stopAfter} API calls: interrupted (exit 130), inventory empty`, async () => {
      const f = await fixture();
      f.server.preemptNext(1, { afterSerialReads: 3 });
      const controller = new AbortController();
      const mark = f.server.requests.length;
      const timer = setInterval(() => {
        if (f.server.requests.length - mark >= stopAfter) controller.abort();
      }, 1);
      try {
        const result = await runFleet(
          await fleet(f, `f20261130t060000-c${stopAfter}`, { signal: controller.signal }),
        );
        assert.equal(result.interrupted, 'interrupt');
        assert.equal(fleetError(result)?.exitCode, 130);
        assert.deepEqual(f.server.inventory(), []);
        assert.deepEqual(offSpec(f.server), []);
      } finally {
        clearInterval(timer);
      }
    });
  }

  test('a second Ctrl-C sweeps at once: inventory empty when runFleet returns', async () => {
    const f = await fixture({ latency: { insertMs: 50, bootMs: 100, proveMs: 5000, deleteMs: 2000 } });
    const soft = new AbortController();
    const hard = new AbortController();
    const timer = setInterval(() => {
      if (f.server.inventory().filter((r) => r.startsWith('instance')).length >= 5) {
        soft.abort();
        setTimeout(() => hard.abort(), 20);
      }
    }, 5);
    try {
      const t0 = performance.now();
      const result = await runFleet(
        await fleet(f, 'f20261130t060000-hard', { signal: soft.signal, forceSignal: hard.signal }),
      );
      assert.equal(result.interrupted, 'force');
      assert.equal(fleetError(result)?.exitCode, 130);
      assert.ok(performance.now() - t0 < 4000, 'did not wait for the attempts to finish their own deletes');
      // The sweep's deletes were waited for; what the attempts still do finds nothing.
      assert.deepEqual(f.server.inventory(), []);
    } finally {
      clearInterval(timer);
    }
  });

  for (const readOnly of [false, true]) {
    test(`a ${readOnly ? 'read-only volume: one disk per zone, attached READ_ONLY to each instance' : 'volume: its own disk per instance, made from the volume image'}; nothing left`, async () => {
      const f = await fixture();
      const vol = await gcpImage({
        ...against(f.server),
        clients: f.clients,
        disk: { rawPath: volRaw, name: 'params' },
      });
      assert.ok(!vol.dryRun);
      f.server.exhaustedZones.add('us-central1-a');
      const fleetId = `f20261130t060000-v${readOnly ? 'ro' : 'rw'}`;
      const runsDir = await tempDir('uniprove-fleet-runs-');
      const result = await runFleet({
        fleetId,
        inputs: inputs(6),
        parallel: 3,
        zones: ZONES,
        ...serverFleetRunOne({
          clients: f.clients,
          image: f.image,
          images: f.images,
          fleetId,
          runsDir,
          volume: { image: vol.image, readOnly },
        }),
        backoff: { baseMs: 5, maxMs: 50 },
      });
      assert.equal(result.summary.succeeded, 6, JSON.stringify(result.inputs));
      const inserts = f.server.requests.filter((r) => r.api === 'instances.insert');
      const volumeDisks = inserts.map((r) => (r.body as { disks: Record<string, unknown>[] }).disks[1]!);
      if (readOnly) {
        assert.ok(
          volumeDisks.every((d) => d.mode === 'READ_ONLY' && String(d.source).endsWith(`${fleetId}-vol`)),
        );
        const made = f.server.requests.filter((r) => r.api === 'disks.insert');
        assert.deepEqual(
          made.map((r) => (r.body as { labels: Record<string, string> }).labels['uniprove-fleet']),
          made.map(() => fleetId),
        );
        assert.ok(made.length <= ZONES.length, `${made.length} disks made`);
      } else {
        assert.ok(volumeDisks.every((d) => d.autoDelete === true && d.initializeParams !== undefined));
      }
      assert.deepEqual(f.server.inventory(), []);
      assert.deepEqual(offSpec(f.server), []);
    });
  }

  test('file proofs: the file of each input comes back through its console, sha256 checked, even after a preemption', {
    skip: needGcc(),
  }, async () => {
    const f = await fixture({ console: fleetFileProofConsole(TABLE), serialChunk: 16_384 });
    f.server.preemptNext(1, { afterSerialReads: 2 });
    const fleetId = 'f20261130t060000-file';
    const runsDir = await tempDir('uniprove-fleet-runs-');
    const result = await runFleet({
      fleetId,
      inputs: inputs(6),
      parallel: 3,
      zones: ZONES,
      ...serverFleetRunOne({
        clients: f.clients,
        image: f.image,
        images: f.images,
        fleetId,
        runsDir,
        fileProof: { cacheDir: await tempDir('uniprove-fleet-cache-') },
      }),
      backoff: { baseMs: 5, maxMs: 50 },
    });
    assert.equal(result.summary.succeeded, 6, JSON.stringify(result.inputs));
    assert.equal(result.summary.retried, 1);
    for (const input of result.inputs) {
      const record = JSON.parse(await readFile(join(input.dir!, 'record.json'), 'utf8'));
      assertRunRecord(record, `input ${input.index}'s record`);
      // The record names its fleet, its input and its try (the preempted input's last try is its second).
      assert.deepEqual(record.fleet, { id: fleetId, input: input.index, attempt: input.attempts });
      assert.equal(record.exitCode, 0);
      const expected = fleetFileProofBytes(JSON.stringify(input.args));
      const proof = record.proofs[0];
      assert.equal(proof.sha256, createHash('sha256').update(expected).digest('hex'));
      assert.deepEqual(await readFile(join(input.dir!, proof.path)), expected);
    }
    assert.deepEqual(f.server.inventory(), []);
  });

  test('a file proof whose prover exited 3: that input fails with status 3, its proof kept, and is not retried', {
    skip: needGcc(),
  }, async () => {
    const failing = JSON.stringify(inputs(3)[1]!.args);
    const f = await fixture({
      console: fleetFileProofConsole(TABLE, (args) => (args === failing ? 3 : 0)),
      serialChunk: 16_384,
    });
    const fleetId = 'f20261130t060000-exit';
    const runsDir = await tempDir('uniprove-fleet-runs-');
    const result = await runFleet({
      fleetId,
      inputs: inputs(3),
      parallel: 3,
      zones: ZONES,
      ...serverFleetRunOne({
        clients: f.clients,
        image: f.image,
        images: f.images,
        fleetId,
        runsDir,
        fileProof: { cacheDir: await tempDir('uniprove-fleet-cache-') },
      }),
      backoff: { baseMs: 5, maxMs: 50 },
    });
    assert.equal(result.summary.succeeded, 2, JSON.stringify(result.inputs));
    assert.equal(result.summary.failed, 1);
    assert.equal(result.summary.retried, 0);
    const bad = result.inputs[1]!;
    assert.equal(bad.outcome, 'failed');
    assert.equal(bad.attempts, 1, 'a prover that exited non-zero is not retried');
    assert.equal(result.attempts.filter((a) => a.index === 1).length, 1);
    const record = JSON.parse(await readFile(join(bad.dir!, 'record.json'), 'utf8'));
    assertRunRecord(record, 'the failed input record');
    assert.equal(record.outcome, 'failed');
    assert.equal(record.exitCode, 3);
    assert.match(record.exitReason, /exited with status 3/);
    assert.deepEqual(record.fleet, { id: fleetId, input: 1, attempt: 1 });
    // The proof file came back whole and is kept as evidence, with a warning that it proves nothing.
    assert.equal(record.proofs.length, 1);
    assert.deepEqual(await readFile(join(bad.dir!, record.proofs[0].path)), fleetFileProofBytes(failing));
    assert.ok(record.warnings.some((w: { code: string }) => w.code === 'proof-of-failed-prover'));
    assert.deepEqual(f.server.inventory(), []);
  });

  test('a quota of 2 instances per zone with one zone: backs off, lowers concurrency, all proofs done', async () => {
    const f = await fixture();
    f.server.instanceQuota.set('us-central1-a', 2);
    const events: FleetEvent[] = [];
    const result = await runFleet(
      await fleet(f, 'f20261130t060000-qqqq', {
        inputs: inputs(8),
        zones: ['us-central1-a'],
        onEvent: (e) => events.push(e),
        maxCapacityErrors: 50,
      }),
    );
    assert.equal(result.summary.succeeded, 8);
    const backoffs = events.filter((e) => e.kind === 'backoff');
    assert.ok(backoffs.length > 0);
    assert.ok(backoffs.every((b) => b.kind === 'backoff' && b.reason === 'quota'));
    assert.ok(backoffs.some((b) => b.kind === 'backoff' && b.concurrency <= 2));
    assert.deepEqual(f.server.inventory(), []);
  });
});
