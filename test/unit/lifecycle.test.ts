/**
 * The run lifecycle's promises, with a driver that runs no machine: whatever step fails, times out or is stopped
 * by Ctrl-C, the driver's destroy runs, the record is closed (an outcome, an end time, on disk) and the run's
 * proving_report.csv line is written exactly once.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isUniproveError, UniproveError } from '../../src/core/errors.js';
import type { DriverRun, MachineDriver, MachineEnd, MachineReport } from '../../src/core/machine/driver.js';
import type { PreparedTarget } from '../../src/core/package/target.js';
import { CONSOLE_LOG, REPORT_CSV, type RunRecord } from '../../src/core/record/record.js';
import { runOnMachine } from '../../src/core/run/lifecycle.js';
import { tempDir } from '../helpers/tmp.js';

type Step = 'check' | 'image' | 'start' | 'wait' | 'fetchProofs';

/** A machine that prints `console` and ends as told; `failAt` throws at that step; every call is logged. */
class FakeDriver implements MachineDriver {
  readonly name = 'qemu' as const;
  readonly exitStatus = 'known' as const;
  readonly machineWord = 'the fake machine';
  readonly calls: string[] = [];
  constructor(
    private readonly behaviour: {
      failAt?: Step;
      end?: MachineEnd;
      console?: string;
      /** wait() hangs until this signal aborts, then ends as stopped (what Ctrl-C does to QEMU). */
      hangUntil?: AbortSignal;
      /** destroy() with no failure throws (something could not be deleted). */
      destroyFails?: boolean;
    } = {},
  ) {}

  private step(step: Step): void {
    this.calls.push(step);
    if (this.behaviour.failAt === step) {
      throw new UniproveError('E_RUN_FAILED', { message: `the fake machine failed at ${step}` });
    }
  }
  async check(): Promise<undefined> {
    this.step('check');
  }
  async image(_target: PreparedTarget, run: DriverRun): Promise<MachineReport> {
    this.step('image');
    await writeFile(join(run.record.dir, CONSOLE_LOG), this.behaviour.console ?? '');
    return { image: 'fake-image', files: { console: CONSOLE_LOG }, timings: { imageBuildMs: 7 } };
  }
  async start(): Promise<undefined> {
    this.step('start');
  }
  async wait(): Promise<MachineEnd> {
    this.step('wait');
    const signal = this.behaviour.hangUntil;
    if (signal) {
      await new Promise((done) => signal.addEventListener('abort', done, { once: true }));
      return { state: 'stopped', reason: 'Ctrl-C' };
    }
    return (
      this.behaviour.end ?? { state: 'exited', exitCode: 0, report: { timings: { bootMs: 3, proverMs: 5 } } }
    );
  }
  async fetchProofs(): Promise<undefined> {
    this.step('fetchProofs');
  }
  async destroy(_run: DriverRun, failure?: unknown): Promise<undefined> {
    this.calls.push(failure ? 'destroy(failing)' : 'destroy');
    if (this.behaviour.destroyFails && !failure) {
      throw new UniproveError('E_RUN_FAILED', { message: 'the fake machine could not be deleted' });
    }
  }
}

function target(dir: string, proof: PreparedTarget['proof'] = { kind: 'none' }): PreparedTarget {
  return {
    name: 'fake',
    packageDir: dir,
    config: {},
    recipe: undefined,
    proof,
    volumes: [],
    bytes: 0,
    threadVars: [],
  };
}

/** One run through the lifecycle; what it returned or threw, its record on disk and its report lines. */
async function lifecycleRun(
  driver: FakeDriver,
  options: { signal?: AbortSignal; proof?: PreparedTarget['proof'] } = {},
) {
  const cwd = await tempDir();
  const prepared = target(cwd, options.proof);
  const outcome = await runOnMachine(driver, {
    cwd,
    prover: 'fake',
    args: [],
    elsewhere: 'anywhere',
    prepared,
    prepare: async () => prepared,
    ...(options.signal ? { signal: options.signal } : {}),
  }).then(
    (record) => ({ record, error: undefined }),
    (error: unknown) => ({ record: undefined, error }),
  );
  const runDir =
    outcome.record?.dir ?? (isUniproveError(outcome.error) ? String(outcome.error.details.runDir) : '');
  assert.ok(runDir, `the run's folder is known (${String(outcome.error)})`);
  const onDisk = JSON.parse(await readFile(join(runDir, 'record.json'), 'utf8')) as RunRecord;
  const report = await readFile(join(cwd, 'runs', REPORT_CSV), 'utf8');
  const lines = report.trim().split('\n').slice(1);
  return { ...outcome, onDisk, lines };
}

/** What every run promises, however it ended. */
function assertClosed(
  result: Awaited<ReturnType<typeof lifecycleRun>>,
  driver: FakeDriver,
  outcome: string,
): void {
  assert.equal(result.onDisk.outcome, outcome, 'the record on disk has its outcome');
  assert.ok(result.onDisk.endedAt, 'the record on disk has its end time');
  assert.equal(result.lines.length, 1, `one report line: ${result.lines.join(' | ')}`);
  assert.ok(result.lines[0]!.includes(result.onDisk.id), 'the line is this run’s');
  assert.ok(result.lines[0]!.includes(outcome), 'the line has the outcome');
  assert.equal(driver.calls.filter((c) => c.startsWith('destroy')).length >= 1, true, 'destroy ran');
}

test('a run that succeeds: every step once, in order, then destroy; the record closed as succeeded', async () => {
  const driver = new FakeDriver({ console: 'proof: 42\n' });
  const result = await lifecycleRun(driver);
  assert.equal(result.error, undefined);
  assert.deepEqual(driver.calls, ['check', 'image', 'start', 'wait', 'fetchProofs', 'destroy']);
  assertClosed(result, driver, 'succeeded');
  assert.equal(result.onDisk.exitCode, 0);
  // What the driver said it saw is in the record: only the lifecycle writes it.
  assert.equal(result.onDisk.image, 'fake-image');
  assert.equal(result.onDisk.files.console, CONSOLE_LOG);
  assert.deepEqual(
    [result.onDisk.timings.imageBuildMs, result.onDisk.timings.bootMs, result.onDisk.timings.proverMs],
    [7, 3, 5],
  );
});

test('a prover that exits 1: failed, not an error; the record and its line say so', async () => {
  const driver = new FakeDriver({ end: { state: 'exited', exitCode: 1 } });
  const result = await lifecycleRun(driver);
  assert.equal(result.error, undefined);
  assertClosed(result, driver, 'failed');
  assert.equal(result.onDisk.exitCode, 1);
});

for (const step of ['check', 'image', 'start', 'wait', 'fetchProofs'] as const) {
  test(`a failure at ${step}: thrown, destroy runs with the failure, the record closed as error`, async () => {
    const driver = new FakeDriver({ failAt: step });
    const result = await lifecycleRun(driver);
    assert.ok(isUniproveError(result.error), String(result.error));
    assert.match(result.error.message, new RegExp(`failed at ${step}`));
    assert.equal(driver.calls.at(-1), 'destroy(failing)');
    assert.equal(driver.calls.filter((c) => c.startsWith('destroy')).length, 1);
    assertClosed(result, driver, 'error');
    assert.equal(result.onDisk.error?.code, 'E_RUN_FAILED');
    // Nothing after the failing step ran.
    const order = ['check', 'image', 'start', 'wait', 'fetchProofs'];
    assert.deepEqual(
      driver.calls.filter((c) => !c.startsWith('destroy')),
      order.slice(0, order.indexOf(step) + 1),
    );
  });
}

test('a destroy that cannot delete what it made: the run fails with that, and the record is still closed', async () => {
  const driver = new FakeDriver({ destroyFails: true });
  const result = await lifecycleRun(driver);
  assert.ok(isUniproveError(result.error));
  assert.match(result.error.message, /could not be deleted/);
  assert.deepEqual(driver.calls.slice(-2), ['destroy', 'destroy(failing)']);
  assertClosed(result, driver, 'error');
});

test('a timeout: returned, not thrown; the record says timeout with E_RUN_TIMEOUT; destroy ran once', async () => {
  const driver = new FakeDriver({ end: { state: 'timeout', reason: 'the limit passed' } });
  const result = await lifecycleRun(driver);
  assert.equal(result.error, undefined);
  assertClosed(result, driver, 'timeout');
  assert.equal(result.onDisk.error?.code, 'E_RUN_TIMEOUT');
  assert.equal(driver.calls.filter((c) => c === 'destroy').length, 1);
});

test('a machine the platform could not run: E_RUN_FAILED thrown, the record closed as error', async () => {
  const driver = new FakeDriver({
    end: { state: 'failed', reason: 'QEMU could not start', hint: 'install QEMU' },
  });
  const result = await lifecycleRun(driver);
  assert.ok(isUniproveError(result.error));
  assert.equal(result.error.code, 'E_RUN_FAILED');
  assert.equal(result.error.hint, 'install QEMU');
  assertClosed(result, driver, 'error');
});

test('Ctrl-C while the machine runs: E_INTERRUPTED thrown, destroy ran, the record closed as interrupted', async () => {
  const abort = new AbortController();
  const driver = new FakeDriver({ hangUntil: abort.signal });
  setTimeout(() => abort.abort(), 50);
  const result = await lifecycleRun(driver, { signal: abort.signal });
  assert.ok(isUniproveError(result.error));
  assert.equal(result.error.code, 'E_INTERRUPTED');
  assertClosed(result, driver, 'interrupted');
});

test('Ctrl-C before the machine starts: nothing is started, destroy still runs, the record is closed', async () => {
  const abort = new AbortController();
  abort.abort();
  const driver = new FakeDriver();
  const result = await lifecycleRun(driver, { signal: abort.signal });
  assert.ok(isUniproveError(result.error));
  assert.equal(result.error.code, 'E_INTERRUPTED');
  assert.ok(!driver.calls.includes('start'), driver.calls.join(','));
  assertClosed(result, driver, 'interrupted');
});

test('a console proof between the markers: kept with its sha256 in the record', async () => {
  const driver = new FakeDriver({ console: 'boot\nBEGIN\nabc\nEND\nbye\n' });
  const result = await lifecycleRun(driver, { proof: { kind: 'console', begin: 'BEGIN', end: 'END' } });
  assert.equal(result.error, undefined);
  assertClosed(result, driver, 'succeeded');
  assert.equal(result.onDisk.proofs.length, 1);
  assert.match(result.onDisk.proofs[0]!.sha256, /^[0-9a-f]{64}$/);
});
