/** The fleet's live view: NDJSON with --json, plain lines off a terminal, one listr2 task on one. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createFleetProgress } from '../../src/cli/fleet-progress.js';
import type { FleetEvent } from '../../src/core/gcp/fleet/scheduler.js';

function sink(isTTY = false) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 120;
  return { stream, text: () => chunks.join('') };
}

const inst = (
  index: number,
  state: FleetEvent & { kind: 'instance' } extends infer T
    ? T extends { state: infer S }
      ? S
      : never
    : never,
  elapsedMs = 0,
): FleetEvent => ({
  kind: 'instance',
  index,
  input: `prove ${index}`,
  zone: 'us-central1-b',
  attempt: 1,
  state,
  elapsedMs,
});
const fleet: FleetEvent = {
  kind: 'fleet',
  done: 1,
  running: 1,
  queued: 18,
  retried: 0,
  failed: 0,
  concurrency: 5,
  zone: 'us-central1-b',
  elapsedMs: 61_000,
};
const events: FleetEvent[] = [
  inst(0, 'starting'),
  inst(0, 'proving', 1000),
  inst(0, 'proving', 2000),
  { kind: 'zone', from: 'us-central1-a', to: 'us-central1-b', reason: 'zone-exhausted' },
  inst(0, 'succeeded', 60_000),
  fleet,
];

test('--json: one NDJSON line per event on stderr, stdout untouched', async () => {
  const err = sink();
  const out = sink();
  const p = createFleetProgress({ stdout: out.stream, stderr: err.stream }, { json: true });
  for (const e of events) p.onEvent(e);
  await p.done();
  const lines = err
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, events.length);
  assert.equal(lines[0].type, 'fleet.instance');
  assert.equal(lines.at(-1).type, 'fleet.fleet');
  assert.equal(out.text(), '');
});

test('plain: a line per change of state (ticks dropped), the fleet line, zone moves', async () => {
  const err = sink();
  const p = createFleetProgress({ stdout: sink().stream, stderr: err.stream }, { plain: true });
  for (const e of events) p.onEvent(e);
  await p.done();
  const text = err.text();
  assert.equal(text.match(/#1 prove 0 {2}us-central1-b {2}proving/g)?.length, 1);
  assert.match(text, /#1 prove 0 {2}us-central1-b {2}succeeded {2}60 s/);
  assert.match(text, /zone-exhausted in us-central1-a: moving to us-central1-b/);
  assert.match(text, /fleet: 1 done, 1 running, 18 queued, 0 retried \(5 at once in us-central1-b, 61 s\)/);
});

test('terminal: one listr2 task, the fleet line as its title', async () => {
  const err = sink(true);
  // A terminal outside CI (the test itself may run under CI=true, which turns the live view off).
  const p = createFleetProgress({ stdout: sink().stream, stderr: err.stream }, { env: {} });
  for (const e of events.slice(0, 2)) p.onEvent(e);
  await new Promise((r) => setTimeout(r, 200));
  for (const e of events.slice(2)) p.onEvent(e);
  await p.done();
  assert.match(err.text(), /fleet: 1 done, 1 running, 18 queued/);
});
