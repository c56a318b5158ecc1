/** The price table and the fleet cost estimate behind --dry-run and --max-cost. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkMaxCost,
  costOfUsage,
  estimateFleetCost,
  hourlyPrice,
  machineShape,
  PRICE_TABLE,
} from '../../src/core/cloud/prices.js';
import type { UniproveError } from '../../src/core/errors.js';

describe('price table', () => {
  test('is dated, names its source, and prices every family with Spot below on-demand', () => {
    assert.match(PRICE_TABLE.date, /^\d{4}-\d{2}-\d{2}$/);
    assert.match(PRICE_TABLE.source, /^https:\/\/cloud\.google\.com\/compute\//);
    for (const [family, p] of Object.entries({ ...PRICE_TABLE.families, ...PRICE_TABLE.custom })) {
      assert.ok(p.spot.vcpuHour < p.onDemand.vcpuHour, family);
      assert.ok(p.spot.gbHour < p.onDemand.gbHour, family);
      assert.ok(p.onDemand.vcpuHour > 0.01 && p.onDemand.vcpuHour < 0.1, family);
    }
    // Custom types cost more than predefined ones (E2 aside).
    assert.ok(PRICE_TABLE.custom.n2!.onDemand.vcpuHour > PRICE_TABLE.families.n2!.onDemand.vcpuHour);
  });

  test('machine shapes: predefined, custom (as machineTypeFor names them), shared-core, URLs', () => {
    assert.deepEqual(machineShape('n2-standard-8'), { family: 'n2', vcpus: 8, memoryGb: 32, custom: false });
    assert.deepEqual(machineShape('n1-standard-4'), { family: 'n1', vcpus: 4, memoryGb: 15, custom: false });
    assert.deepEqual(machineShape('c3-highcpu-4'), { family: 'c3', vcpus: 4, memoryGb: 8, custom: false });
    assert.deepEqual(machineShape('zones/us-central1-a/machineTypes/n2-custom-8-32768'), {
      family: 'n2',
      vcpus: 8,
      memoryGb: 32,
      custom: true,
    });
    assert.deepEqual(machineShape('custom-2-4096'), { family: 'n1', vcpus: 2, memoryGb: 4, custom: true });
    assert.equal(machineShape('e2-medium').vcpus, 1);
    assert.throws(
      () => machineShape('a2-megagpu-16g'),
      (e: UniproveError) => e.code === 'E_USAGE',
    );
  });

  test('n2-standard-8 on demand in us-central1 is about $0.39/hour', () => {
    const price = hourlyPrice(machineShape('n2-standard-8'), false)!;
    assert.ok(Math.abs(price - 0.388472) < 1e-6, String(price));
    assert.ok(hourlyPrice(machineShape('n2-standard-8'), true)! < price / 3);
    assert.equal(hourlyPrice({ family: 'm3', vcpus: 32, memoryGb: 976, custom: false }, false), undefined);
  });
});

describe('fleet cost estimate', () => {
  test('instances x hours x price, a minute at least each, Spot retries counted, disks added', () => {
    const e = estimateFleetCost({
      machineType: 'n2-standard-8',
      spot: false,
      inputs: 20,
      secondsPerInput: 1800,
      disks: [{ type: 'pd-balanced', sizeGb: 10 }],
    });
    assert.equal(e.instances, 20);
    assert.equal(e.instanceHours, 10);
    assert.equal(e.vcpuHours, 80);
    assert.ok(Math.abs(e.diskUsd - (0.1 / 730) * 10 * 10) < 1e-9);
    assert.equal(e.usd, Math.ceil((0.388472 * 10 + e.diskUsd) * 100) / 100);
    assert.equal(e.prices.source, PRICE_TABLE.source);
    const spot = estimateFleetCost({
      machineType: 'n2-standard-8',
      spot: true,
      inputs: 20,
      secondsPerInput: 10,
    });
    assert.equal(spot.instances, 22, '10% more for preemptions');
    assert.equal(spot.instanceHours, 22 / 60, 'billed a minute at least');
    assert.ok(spot.warnings.some((w) => /Spot prices are approximate/.test(w)));
  });

  test('--max-cost refuses, before launch, an estimate above it or one that cannot be made', () => {
    const e = estimateFleetCost({
      machineType: 'n2-standard-8',
      spot: false,
      inputs: 100,
      secondsPerInput: 3600,
    });
    assert.doesNotThrow(() => checkMaxCost(e, undefined));
    assert.doesNotThrow(() => checkMaxCost(e, 1000));
    assert.throws(
      () => checkMaxCost(e, 10),
      (err: UniproveError) =>
        err.code === 'E_GCP_MAX_COST' && /exceeds --max-cost 10/.test(err.message) && err.exitCode === 2,
    );
    const unknown = estimateFleetCost({
      machineType: 'm3-standard-32',
      spot: false,
      inputs: 1,
      secondsPerInput: 60,
    });
    assert.equal(unknown.usd, null);
    assert.throws(
      () => checkMaxCost(unknown, 10),
      (err: UniproveError) => err.code === 'E_GCP_MAX_COST',
    );
    assert.throws(
      () => estimateFleetCost({ machineType: 'n2-standard-8', spot: false, inputs: 1, secondsPerInput: 0 }),
      (err: UniproveError) => err.code === 'E_USAGE',
    );
  });

  test('the cost of what a fleet used', () => {
    const c = costOfUsage({ instanceSeconds: [3600, 1800, 10], machineType: 'n2-standard-8', spot: false });
    assert.ok(Math.abs(c.instanceHours - 5410 / 3600) < 1e-9);
    assert.equal(c.vcpuHours, c.instanceHours * 8);
    assert.equal(c.usd, Math.ceil(0.388472 * (5460 / 3600) * 100) / 100);
  });
});
