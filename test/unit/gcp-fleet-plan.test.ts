/** The dry-run plan of a fleet: one image import, one volume image import, N-bounded Spot instance inserts, the fleet label everywhere, the cost. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  fleetInstanceBody,
  fleetInstanceName,
  fleetMachine,
  type GcpFleetSpec,
  planFleet,
} from '../../src/core/gcp/fleet-plan.js';
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
});
