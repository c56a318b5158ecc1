/**
 * The fleet scheduler with a fake runOne and virtual time: bounds, retries of
 * preempted inputs only, backoff and lower concurrency on capacity errors,
 * moving zones, giving up, both Ctrl-Cs, and the events and record it makes.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gcpError } from '../../src/core/cloud/operations.js';
import { UniproveError } from '../../src/core/errors.js';
import { backoffDelay, classifyAttemptError } from '../../src/core/gcp/fleet/capacity.js';
import {
  buildFleetRecord,
  fleetError,
  fleetEventLine,
  fleetProgressEvent,
  newFleetId,
  writeFleetRecord,
} from '../../src/core/gcp/fleet/record.js';
import {
  type AttemptContext,
  type AttemptOutcome,
  type FleetEvent,
  type FleetInput,
  type FleetOptions,
  runFleet,
} from '../../src/core/gcp/fleet/scheduler.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { tempDir } from '../helpers/tmp.js';

const inputs = (n: number): FleetInput[] =>
  Array.from({ length: n }, (_, index) => ({ index, args: ['prove', '--block', String(100 + index)] }));

const capacity = (reason: string, status?: number) =>
  new UniproveError('E_GCP', {
    message: `instances.insert failed: ${reason}: injected`,
    details: { call: 'instances.insert', reason, ...(status ? { status } : {}) },
  });

const interrupted = () => new UniproveError('E_INTERRUPTED', { message: 'interrupted' });

/** A fake Compute Engine: decides each attempt's fate, tracks what runs where, takes virtual time. */
function fakeCloud(
  clock: FakeClock,
  decide: (
    input: FleetInput,
    ctx: AttemptContext,
    cloud: { running: Map<string, number> },
  ) => AttemptOutcome['kind'] | Error,
  options: { proveMs?: number; deleteMs?: number; ignoreAbort?: boolean } = {},
) {
  const running = new Map<string, number>();
  let maxRunning = 0;
  const calls: { index: number; zone: string; attempt: number; at: number }[] = [];
  const runOne = async (input: FleetInput, ctx: AttemptContext): Promise<AttemptOutcome> => {
    calls.push({ index: input.index, zone: ctx.zone, attempt: ctx.attempt, at: clock.now() });
    const fate = decide(input, ctx, { running });
    if (fate instanceof Error) {
      await clock.sleep(1000); // the insert's operation, then its error
      throw fate;
    }
    running.set(ctx.zone, (running.get(ctx.zone) ?? 0) + 1);
    maxRunning = Math.max(
      maxRunning,
      [...running.values()].reduce((a, b) => a + b, 0),
    );
    try {
      ctx.onState('proving');
      try {
        await clock.sleep(options.proveMs ?? 60_000, options.ignoreAbort ? undefined : ctx.signal);
      } catch {
        ctx.onState('deleting');
        await clock.sleep(options.deleteMs ?? 5000);
        throw interrupted();
      }
      return { kind: fate };
    } finally {
      running.set(ctx.zone, (running.get(ctx.zone) ?? 1) - 1);
    }
  };
  return { runOne, calls, running, max: () => maxRunning };
}

/** Timers every second, so a test can act at a given virtual time. */
function ticker(clock: FakeClock, until: Promise<unknown>) {
  let done = false;
  until
    .finally(() => {
      done = true;
    })
    .catch(() => {});
  void (async () => {
    while (!done) await clock.sleep(1000);
  })();
}

function base(
  clock: FakeClock,
  runOne: FleetOptions['runOne'],
  extra: Partial<FleetOptions> = {},
): FleetOptions {
  return {
    fleetId: 'f20261130t051400-abcd',
    inputs: inputs(20),
    parallel: 5,
    zones: ['us-central1-a', 'us-central1-b', 'us-central1-c'],
    runOne,
    clock,
    random: () => 0.5,
    ...extra,
  };
}

describe('fleet scheduler', () => {
  test('20 inputs, 5 at once: never more than 5, wall time 4 rounds, every proof done', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, () => 'succeeded');
    const events: FleetEvent[] = [];
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { onEvent: (e) => events.push(e) })));
    assert.equal(cloud.max(), 5);
    assert.equal(result.wallMs, 4 * 60_000);
    assert.equal(result.summary.succeeded, 20);
    assert.equal(result.summary.retried, 0);
    assert.equal(result.instanceSeconds, 20 * 60);
    assert.deepEqual(result.zones.used, ['us-central1-a']);
    assert.equal(result.interrupted, false);
    assert.equal(fleetError(result), undefined);
    const last = events.filter((e) => e.kind === 'fleet').at(-1);
    assert.deepEqual(last && { done: last.done, running: last.running, queued: last.queued }, {
      done: 20,
      running: 0,
      queued: 0,
    });
    const states = events
      .filter((e) => e.kind === 'instance' && e.index === 0)
      .map((e) => e.kind === 'instance' && e.state);
    assert.deepEqual(states, ['starting', 'proving', 'succeeded']);
  });

  test('preempted inputs are retried on a new instance and counted; the retry goes first', async () => {
    const clock = new FakeClock();
    const preempt = new Set([3, 7, 11]);
    const cloud = fakeCloud(clock, (input, ctx) =>
      preempt.has(input.index) && ctx.attempt === 1 ? 'preempted' : 'succeeded',
    );
    const result = await clock.drive(runFleet(base(clock, cloud.runOne)));
    assert.equal(result.summary.succeeded, 20);
    assert.equal(result.summary.retried, 3);
    for (const i of preempt) {
      const r = result.inputs[i]!;
      assert.equal(r.attempts, 2);
      assert.equal(r.retries, 1);
      assert.deepEqual(
        result.attempts.filter((a) => a.index === i).map((a) => a.kind),
        ['preempted', 'succeeded'],
      );
    }
    // Input 3 was preempted at t=60 s; its retry starts before input 10, queued since the start.
    const retry3 = cloud.calls.find((c) => c.index === 3 && c.attempt === 2)!;
    const first10 = cloud.calls.find((c) => c.index === 10)!;
    assert.ok(retry3.at <= first10.at);
    assert.ok(cloud.max() <= 5);
  });

  test('a preemption thrown as E_GCP_PREEMPTED counts the same; past --retries the input is preempted', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, (input) =>
      input.index === 0
        ? new UniproveError('E_GCP_PREEMPTED', { message: 'instance went TERMINATED' })
        : 'succeeded',
    );
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { inputs: inputs(3), retries: 2 })));
    const r = result.inputs[0]!;
    assert.equal(r.outcome, 'preempted');
    assert.equal(r.attempts, 3);
    assert.equal(r.retries, 2);
    assert.equal(result.summary.retried, 2);
    assert.equal(result.summary.succeeded, 2);
    assert.equal(fleetError(result)?.code, 'E_RUN_FAILED');
  });

  test('an input that fails by itself is not retried, nor is an unknown error', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, (input) =>
      input.index === 1 ? 'failed' : input.index === 2 ? new Error('boom') : 'succeeded',
    );
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { inputs: inputs(4) })));
    assert.equal(result.inputs[1]!.outcome, 'failed');
    assert.equal(result.inputs[1]!.attempts, 1);
    assert.equal(result.inputs[2]!.outcome, 'error');
    assert.equal(result.inputs[2]!.error?.message, 'boom');
    assert.equal(cloud.calls.filter((c) => c.index === 1 || c.index === 2).length, 2);
    assert.equal(result.summary.retried, 0);
  });

  test('a quota of 3 instances: backs off with jitter, lowers concurrency to what fits, all succeed', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, (_, ctx, { running }) =>
      (running.get(ctx.zone) ?? 0) >= 3 ? capacity('QUOTA_EXCEEDED') : 'succeeded',
    );
    const events: FleetEvent[] = [];
    const result = await clock.drive(
      runFleet(
        base(clock, cloud.runOne, { onEvent: (e) => events.push(e), quotaStrikes: 100, recoverAfter: 100 }),
      ),
    );
    assert.equal(result.summary.succeeded, 20);
    assert.equal(result.summary.retried, 0, 'capacity refusals are not retries');
    assert.ok(cloud.max() <= 3);
    const backoffs = events.filter((e) => e.kind === 'backoff');
    assert.ok(backoffs.length >= 1);
    assert.ok(backoffs.every((b) => b.kind === 'backoff' && b.concurrency <= 4));
    assert.equal(backoffs[0]!.kind === 'backoff' && backoffs[0]!.waitMs, 1500, 'random 0.5: 3/4 of 2 s');
    assert.deepEqual(result.zones.used, ['us-central1-a']);
    assert.ok(result.attempts.some((a) => a.kind === 'capacity' && a.instanceSeconds === 0));
  });

  test('ZONE_RESOURCE_POOL_EXHAUSTED moves the fleet to the next zone and leaves the first once empty', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, (_, ctx) =>
      ctx.zone === 'us-central1-a' ? capacity('ZONE_RESOURCE_POOL_EXHAUSTED') : 'succeeded',
    );
    const left: string[] = [];
    const swept: string[] = [];
    const events: FleetEvent[] = [];
    const result = await clock.drive(
      runFleet(
        base(clock, cloud.runOne, {
          onEvent: (e) => events.push(e),
          leaveZone: async (z) => {
            left.push(z);
          },
          sweep: async (why) => {
            swept.push(why);
          },
        }),
      ),
    );
    assert.equal(result.summary.succeeded, 20);
    assert.deepEqual(left, ['us-central1-a']);
    assert.deepEqual(result.zones.left, ['us-central1-a']);
    assert.deepEqual(swept, ['end']);
    assert.ok(result.attempts.filter((a) => a.kind === 'succeeded').every((a) => a.zone === 'us-central1-b'));
    assert.deepEqual(
      events.filter((e) => e.kind === 'zone'),
      [{ kind: 'zone', from: 'us-central1-a', to: 'us-central1-b', reason: 'zone-exhausted' }],
    );
    assert.ok(cloud.max() <= 5);
  });

  test('a quota that stays used up in a zone moves the fleet on after 3 refusals in a row', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, (_, ctx) =>
      ctx.zone === 'us-central1-a' ? capacity('quotaExceeded', 403) : 'succeeded',
    );
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { inputs: inputs(6) })));
    assert.equal(result.summary.succeeded, 6);
    assert.deepEqual(result.zones.left, ['us-central1-a']);
  });

  test('rate limits (429) back off and the fleet finishes', async () => {
    const clock = new FakeClock();
    let limited = 4;
    const cloud = fakeCloud(clock, () => (limited-- > 0 ? capacity('rateLimitExceeded', 429) : 'succeeded'));
    const events: FleetEvent[] = [];
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { onEvent: (e) => events.push(e) })));
    assert.equal(result.summary.succeeded, 20);
    assert.ok(events.some((e) => e.kind === 'backoff' && e.reason === 'rate-limit'));
    assert.deepEqual(result.zones.used, ['us-central1-a']);
  });

  test('backoff grows with each refusal in a row and is capped', () => {
    const delays = [1, 2, 3, 4, 10].map((n) => backoffDelay(n, { baseMs: 1000, maxMs: 5000 }, () => 1));
    assert.deepEqual(delays, [1000, 2000, 4000, 5000, 5000]);
    assert.equal(
      backoffDelay(3, { baseMs: 1000 }, () => 0),
      2000,
    );
  });

  test('no capacity anywhere: gives up with E_GCP_CAPACITY, inputs not started are errors', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, () => capacity('ZONE_RESOURCE_POOL_EXHAUSTED'));
    const result = await clock.drive(
      runFleet(
        base(clock, cloud.runOne, {
          inputs: inputs(4),
          zones: ['us-central1-a', 'us-central1-b'],
          maxCapacityErrors: 3,
        }),
      ),
    );
    assert.ok(result.capacityError);
    assert.equal(result.summary.error, 4);
    assert.equal(fleetError(result)?.code, 'E_GCP_CAPACITY');
    assert.deepEqual(result.zones.left, ['us-central1-a']);
  });

  for (const at of [500, 30_000, 61_000, 150_000]) {
    test(`first Ctrl-C at t=${at / 1000} s: nothing new starts, every attempt cleans up, sweep, interrupted`, async () => {
      const clock = new FakeClock();
      const cloud = fakeCloud(clock, () => 'succeeded');
      const controller = new AbortController();
      const swept: string[] = [];
      const run = runFleet(
        base(clock, cloud.runOne, {
          signal: controller.signal,
          sweep: async (why) => {
            swept.push(why);
          },
        }),
      );
      ticker(clock, run);
      const result = await clock.drive(run, (now) => {
        if (now >= at && !controller.signal.aborted) controller.abort();
      });
      assert.equal(result.interrupted, 'interrupt');
      assert.deepEqual(swept, ['interrupt']);
      assert.ok(
        cloud.calls.every((c) => c.at <= at),
        'nothing started after the abort',
      );
      assert.equal(
        [...cloud.running.values()].reduce((a, b) => a + b, 0),
        0,
        'every attempt settled',
      );
      const s = result.summary;
      assert.equal(s.succeeded + s.interrupted + s.notStarted, 20);
      assert.ok(s.interrupted > 0);
      assert.equal(fleetError(result)?.code, 'E_INTERRUPTED');
    });
  }

  test('second Ctrl-C: stops waiting for slow deletes and sweeps now', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, () => 'succeeded', { ignoreAbort: true, proveMs: 3600_000 });
    const soft = new AbortController();
    const hard = new AbortController();
    const swept: { why: string; at: number }[] = [];
    const run = runFleet(
      base(clock, cloud.runOne, {
        signal: soft.signal,
        forceSignal: hard.signal,
        sweep: async (why) => {
          swept.push({ why, at: clock.now() });
        },
      }),
    );
    ticker(clock, run);
    const result = await clock.drive(run, (now) => {
      if (now >= 10_000 && !soft.signal.aborted) soft.abort();
      if (now >= 20_000 && !hard.signal.aborted) hard.abort();
    });
    assert.equal(result.interrupted, 'force');
    assert.equal(swept.length, 1);
    assert.equal(swept[0]!.why, 'force');
    assert.ok(swept[0]!.at < 3600_000, 'did not wait for the attempts');
    assert.equal(result.summary.interrupted, 5);
    assert.equal(result.summary.notStarted + result.summary.interrupted, 20);
  });

  test('a sweep that fails is reported, not thrown', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(clock, () => 'succeeded');
    const result = await clock.drive(
      runFleet(
        base(clock, cloud.runOne, {
          inputs: inputs(2),
          sweep: async () => {
            throw new Error('disks.delete failed');
          },
        }),
      ),
    );
    assert.deepEqual(result.cleanupErrors, ['sweep: disks.delete failed']);
  });

  test('bad settings are a usage error', async () => {
    await assert.rejects(
      runFleet({
        fleetId: 'f',
        inputs: inputs(1),
        parallel: 0,
        zones: ['z'],
        runOne: async () => ({ kind: 'succeeded' }),
      }),
      (e: UniproveError) => e.code === 'E_USAGE',
    );
  });
});

describe('capacity errors as the clients surface them', () => {
  test('operation errors (waitOperation) and HTTP errors (gcpError) are classified', () => {
    assert.equal(
      classifyAttemptError(capacity('ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS')),
      'zone-exhausted',
    );
    assert.equal(classifyAttemptError(capacity('QUOTA_EXCEEDED')), 'quota');
    const http = (status: number, reason: string) =>
      gcpError(
        Object.assign(
          new Error(
            JSON.stringify({
              error: { code: status, message: `${reason} (injected)`, errors: [{ reason }] },
            }),
          ),
          { code: status },
        ),
        'instances.insert',
        'us-central1-a/x',
      );
    assert.equal(classifyAttemptError(http(403, 'quotaExceeded')), 'quota');
    assert.equal(classifyAttemptError(http(403, 'rateLimitExceeded')), 'rate-limit');
    assert.equal(classifyAttemptError(http(429, 'rateLimitExceeded')), 'rate-limit');
    assert.equal(classifyAttemptError(http(400, 'invalid')), 'error');
    assert.equal(classifyAttemptError(new UniproveError('E_GCP_PREEMPTED', { message: 'x' })), 'preempted');
    assert.equal(classifyAttemptError(interrupted()), 'interrupted');
    assert.equal(
      classifyAttemptError(new Error('QUOTA_EXCEEDED')),
      'error',
      'only uniprove errors are trusted',
    );
  });
});

describe('fleet record and events', () => {
  test('fleet.json: inputs, succeeded, failed, retried, wall time, instance-hours, vCPU-hours, cost', async () => {
    const clock = new FakeClock();
    const cloud = fakeCloud(
      clock,
      (input, ctx) =>
        input.index === 2 && ctx.attempt === 1 ? 'preempted' : input.index === 4 ? 'failed' : 'succeeded',
      {
        proveMs: 3600_000,
      },
    );
    const result = await clock.drive(runFleet(base(clock, cloud.runOne, { inputs: inputs(10) })));
    const record = buildFleetRecord(result, {
      machineType: 'n2-standard-8',
      spot: true,
      parallel: 5,
      zones: ['us-central1-a'],
      startedAt: new Date('2026-11-30T05:00:00Z'),
    });
    assert.equal(record.inputs, 10);
    assert.equal(record.succeeded, 9);
    assert.equal(record.failed, 1);
    assert.equal(record.retried, 1);
    assert.equal(record.instanceHours, 11);
    assert.equal(record.vcpuHours, 88);
    assert.ok(record.estimatedCostUsd! > 0 && record.estimatedCostUsd! < 11 * 0.5);
    assert.equal(record.wallSeconds, 3 * 3600);
    const dir = await tempDir('uniprove-fleet-');
    const path = await writeFleetRecord(dir, record);
    assert.equal(path, join(dir, record.id, 'fleet.json'));
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), JSON.parse(JSON.stringify(record)));
  });

  test('events become progress steps and NDJSON lines; fleet ids are label values', () => {
    const e: FleetEvent = {
      kind: 'instance',
      index: 2,
      input: 'prove --block 102',
      zone: 'us-central1-b',
      attempt: 2,
      state: 'proving',
      elapsedMs: 42_000,
    };
    assert.deepEqual(fleetProgressEvent(e), {
      kind: 'update',
      step: 'input 3',
      detail: 'prove --block 102 · us-central1-b · proving (attempt 2) · 42 s',
    });
    assert.equal(JSON.parse(fleetEventLine(e)).type, 'fleet.instance');
    const f = fleetProgressEvent({
      kind: 'fleet',
      done: 3,
      running: 5,
      queued: 12,
      retried: 1,
      failed: 0,
      concurrency: 5,
      zone: 'us-central1-b',
      elapsedMs: 1000,
    });
    assert.equal(f.detail, '3 done, 5 running, 12 queued, 1 retried · us-central1-b · 1 s');
    assert.match(
      newFleetId(new Date('2026-11-30T05:14:00Z'), () => '00a0b0'),
      /^f20261130t051400000-00a0b0$/,
    );
  });
});

test('with tickMs, running instances and the fleet line are re-emitted so elapsed times move', async () => {
  const clock = new FakeClock();
  const cloud = fakeCloud(clock, () => 'succeeded', { proveMs: 10_000 });
  const events: FleetEvent[] = [];
  await clock.drive(
    runFleet(base(clock, cloud.runOne, { inputs: inputs(1), tickMs: 1000, onEvent: (e) => events.push(e) })),
  );
  const elapsed = events.flatMap((e) =>
    e.kind === 'instance' && e.state === 'proving' ? [e.elapsedMs] : [],
  );
  assert.deepEqual(elapsed, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
});
