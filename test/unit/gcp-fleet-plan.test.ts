/** The dry-run plan of a fleet: one image import per distinct argument list, one volume image import, N-bounded Spot instance inserts, the fleet label everywhere, the cost. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  argsDigest,
  distinctArgs,
  fleetInstanceBody,
  fleetInstanceName,
  fleetMachine,
  type GcpFleetSpec,
  planFleet,
  planFleetAttempt,
} from '../../src/core/cloud/fleet-plan.js';
import { TARGET } from '../helpers/gcp.js';

const FLEET = 'f20261130t051400-abcd';

function spec(extra: Partial<GcpFleetSpec> = {}): GcpFleetSpec {
  return {
    target: TARGET,
    fleetId: FLEET,
    bucket: 'uniprove-test-uniprove',
    image: { name: 'demo', sha256: 'a'.repeat(64), rawPath: '/x/demo.raw' },
    volume: {
      source: { name: 'params', sha256: 'b'.repeat(64), rawPath: '/x/params.raw' },
      diskType: 'pd-balanced',
      sizeGb: 20,
      readOnly: false,
    },
    machine: fleetMachine({ machineType: 'n2-standard-8' }),
    bootDisk: { type: 'pd-balanced' },
    network: 'default',
    labels: {},
    maxRunSeconds: 3600,
    inputs: 20,
    parallel: 5,
    zones: ['us-central1-b', 'us-central1-c'],
    ...extra,
  };
}

type Body = {
  labels?: Record<string, string>;
  metadata?: Record<string, string>;
  scheduling?: Record<string, unknown>;
  disks?: Record<string, unknown>[];
};

describe('planFleet', () => {
  test('one image import, one volume image import, N instance inserts, each Spot with the fleet label', () => {
    const plan = planFleet(spec());
    const main = plan.calls.filter((c) => c.phase === 'main');
    const count = (m: string) => main.filter((c) => c.method === m).length;
    assert.equal(count('images.insert'), 2);
    assert.equal(count('storage.objects.insert'), 2);
    assert.equal(count('disks.insert'), 0, 'volume disks are made with each instance');
    assert.equal(count('instances.insert'), 5);
    const names = new Set<string>();
    for (const c of main.filter((x) => x.method === 'instances.insert')) {
      const body = c.body as Body;
      names.add(String((c.body as { name: string }).name));
      assert.equal(c.params.zone, 'us-central1-b');
      assert.equal(body.scheduling?.provisioningModel, 'SPOT');
      assert.equal(body.scheduling?.instanceTerminationAction, 'DELETE');
      assert.deepEqual(body.scheduling?.maxRunDuration, { seconds: '3600' });
      assert.equal(body.labels?.['uniprove-fleet'], FLEET);
      const volume = body.disks![1]!;
      assert.equal(volume.autoDelete, true);
      const init = volume.initializeParams as Record<string, unknown>;
      assert.match(String(init.sourceImage), /^global\/images\/uniprove-vol-params-b{12}$/);
      assert.equal(init.diskType, 'zones/us-central1-b/diskTypes/pd-balanced');
      assert.equal((init.labels as Record<string, string>)['uniprove-fleet'], FLEET);
      assert.equal(
        ((body.disks![0]!.initializeParams as Record<string, unknown>).labels as Record<string, string>)[
          'uniprove-fleet'
        ],
        FLEET,
      );
      assert.match(c.when ?? '', /at most 5 at once: 20 inputs/);
    }
    assert.equal(names.size, 5);
    for (const c of main.filter((x) => x.body && (x.body as Body).labels)) {
      assert.equal((c.body as Body).labels?.['uniprove-fleet'], FLEET, c.method);
    }
    for (const c of main.filter((x) => x.method === 'storage.objects.insert')) {
      assert.equal((c.body as Body).metadata?.['uniprove-fleet'], FLEET);
    }
    assert.ok(plan.calls.some((c) => c.phase === 'cleanup' && c.method === 'instances.delete'));
    assert.equal(plan.fleet.spot, true);
    assert.equal(plan.fleet.machineType, 'n2-standard-8');
    assert.ok(plan.fleet.cost.usd! > 0);
    assert.equal(plan.fleet.cost.instances, 22);
  });

  test('fewer inputs than N: one insert per input; --no-spot: STANDARD', () => {
    const plan = planFleet(
      spec({ inputs: 2, machine: fleetMachine({ machineType: 'n2-standard-8', spot: false }) }),
    );
    const inserts = plan.calls.filter((c) => c.method === 'instances.insert');
    assert.equal(inserts.length, 2);
    assert.equal((inserts[0]!.body as Body).scheduling?.provisioningModel, 'STANDARD');
  });

  test('a read-only volume: one disk in the zone, attached READ_ONLY to every instance, deleted at the end', () => {
    const plan = planFleet(spec({ volume: { ...spec().volume!, readOnly: true } }));
    const disks = plan.calls.filter((c) => c.method === 'disks.insert');
    assert.equal(disks.length, 1);
    assert.equal(disks[0]!.params.zone, 'us-central1-b');
    assert.match(disks[0]!.when ?? '', /in each zone the fleet uses/);
    const diskName = (disks[0]!.body as { name: string }).name;
    for (const c of plan.calls.filter((x) => x.method === 'instances.insert')) {
      const v = (c.body as Body).disks![1]!;
      assert.equal(v.mode, 'READ_ONLY');
      assert.equal(v.source, `zones/us-central1-b/disks/${diskName}`);
    }
    assert.ok(plan.calls.some((c) => c.phase === 'cleanup' && c.method === 'disks.delete'));
  });

  test('an instance of a retry in another zone: its own name, disks in that zone', () => {
    const body = fleetInstanceBody(spec(), 7, 2, 'us-central1-c', `${FLEET}-7`) as Body & {
      name: string;
      machineType: string;
    };
    assert.equal(body.name, fleetInstanceName(FLEET, 7, 2));
    assert.equal(body.name, `uniprove-${FLEET}-7-2`);
    assert.equal(body.machineType, 'zones/us-central1-c/machineTypes/n2-standard-8');
    assert.match(
      String((body.disks![1]!.initializeParams as Record<string, unknown>).diskType),
      /us-central1-c/,
    );
    assert.equal(body.labels?.['uniprove-run'], `${FLEET}-7`);
  });

  test("one image import per distinct argument list, each labelled with its digest; each insert boots its input's", () => {
    const inputArgs = Array.from({ length: 20 }, (_, i) => ['prove', String(i % 3)]);
    const images = distinctArgs(inputArgs).map((args, i) => ({
      args,
      source: { name: 'demo', sha256: String(i + 1).repeat(64), rawPath: `/x/demo-${i}.raw` },
    }));
    assert.equal(images.length, 3);
    const plan = planFleet(spec({ images, inputArgs }));
    const main = plan.calls.filter((c) => c.phase === 'main');
    const boot = main.filter(
      (c) =>
        c.method === 'images.insert' &&
        !String((c.body as { name: string }).name).startsWith('uniprove-vol-'),
    );
    assert.equal(boot.length, 3);
    assert.deepEqual(
      boot.map((c) => (c.body as Body).labels?.['uniprove-args']),
      images.map((i) => argsDigest(i.args)),
    );
    assert.ok(boot.every((c) => /^[a-z0-9_-]{1,63}$/.test((c.body as Body).labels!['uniprove-args']!)));
    assert.equal(main.filter((c) => c.method === 'images.insert').length, 4, 'and the volume image once');
    assert.equal(main.filter((c) => c.method === 'storage.buckets.get').length, 1, 'the bucket checked once');
    assert.equal(main[0]!.method, 'storage.buckets.get');
    const inserts = main.filter((c) => c.method === 'instances.insert');
    assert.equal(inserts.length, 5);
    inserts.forEach((c, i) => {
      const source = String((c.body as Body).disks![0]!.initializeParams!['sourceImage' as never]);
      assert.equal(source, `global/images/${String((boot[i % 3]!.body as { name: string }).name)}`);
    });
    assert.equal(plan.fleet.cost.instances, planFleet(spec()).fleet.cost.instances, 'the cost unchanged');
    // An attempt boots the image of its arguments and carries them nowhere else.
    const attempt = planFleetAttempt(spec({ images }), {
      index: 4,
      attempt: 2,
      zone: 'us-central1-c',
      runId: `${FLEET}-4`,
      args: ['prove', '1'],
    });
    const body = attempt.calls[0]!.body as Body & { metadata: { items: { key: string }[] } };
    assert.equal(
      (body.disks![0]!.initializeParams as Record<string, unknown>).sourceImage,
      `global/images/${String((boot[1]!.body as { name: string }).name)}`,
    );
    assert.ok(!body.metadata.items.some((i) => i.key === 'uniprove-args'));
  });

  test('inputs that all have the same arguments: one image import', () => {
    const inputArgs = Array.from({ length: 20 }, () => ['prove', 'same']);
    const images = distinctArgs(inputArgs).map((args) => ({ args, source: spec().image }));
    const plan = planFleet(spec({ images, inputArgs }));
    assert.equal(
      plan.calls.filter((c) => c.method === 'images.insert').length,
      2,
      'the image and the volume image',
    );
  });
});
