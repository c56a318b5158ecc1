/**
 * A fleet: one proof per input, at most N instances at once, on machines that
 * may vanish. The scheduler knows nothing of Compute Engine: it is given a
 * `runOne` that proves one input on one new instance in a zone and cleans up
 * after itself, and decides what to start, where and when:
 *
 * - a preempted attempt is retried on a new instance, up to `retries`, and
 *   counted as a retry; an input that fails by itself is not retried;
 * - capacity errors (quota, zone exhausted, rate limits) back off with jitter
 *   and lower the fleet's concurrency, which creeps back up after successes;
 *   an exhausted zone (or one whose quota stays used up) is left for the next
 *   of `zones`, and `leaveZone` is called once nothing of the fleet runs there;
 * - a first abort starts nothing new and cancels every attempt (each deletes
 *   its instance); a second (`forceSignal`) stops waiting and sweeps now.
 *
 * Time and randomness are injected, so tests drive it with a fake clock.
 */

import type { AttemptState } from '../../cloud/fleet-plan.js';
import { UniproveError } from '../../errors.js';
import {
  type AttemptFailureKind,
  type BackoffOptions,
  backoffDelay,
  classifyAttemptError,
  isCapacityKind,
} from './capacity.js';

export type { AttemptState };

/** One input of the fleet: a line of the inputs file. */
export interface FleetInput {
  index: number;
  args: string[];
}

/** What runOne returns. Errors it throws are classified (classifyAttemptError). */
export interface AttemptOutcome {
  /** succeeded / failed: the prover ran to its end (failed: by itself; never retried); preempted: retried. */
  kind: 'succeeded' | 'failed' | 'preempted';
  /** Seconds the instance existed (billed); default the attempt's wall time. */
  instanceSeconds?: number;
  /** The run record of this attempt. */
  runId?: string;
  dir?: string;
  detail?: string;
}

/** What runOne is told about its attempt. */
export interface AttemptContext {
  fleetId: string;
  zone: string;
  /** 1 for the first attempt of the input, 2 for its first retry... */
  attempt: number;
  /** Aborted on the fleet's first Ctrl-C: stop, delete the instance, throw E_INTERRUPTED. */
  signal: AbortSignal;
  /** Report where the attempt is (shown per instance). */
  onState: (state: AttemptState, detail?: string) => void;
}

/**
 * Proves one input on one new instance in `ctx.zone`, deleting what it made before it settles.
 *
 * The contract a machine driver (Compute Engine's, in the run lifecycle) keeps:
 * - a new instance per call, named by fleet id, input index and `ctx.attempt`, labelled
 *   `uniprove-fleet=<fleetId>` (boot and volume disks too), in `ctx.zone`; the input's own
 *   run record (runs/<run-id>/, a proving_report.csv line) as a local run keeps, its id returned;
 * - resolve `succeeded` when the proof came back, `failed` when the prover ended without one (or
 *   with a non-zero status): such inputs are not retried;
 * - resolve `preempted`, or throw E_GCP_PREEMPTED, when the instance was preempted (TERMINATED or
 *   deleted after a `compute.instances.preempted` operation, the console without the end marker);
 * - throw the gcp module's errors as they come for capacity (E_GCP with details.reason
 *   ZONE_RESOURCE_POOL_EXHAUSTED / QUOTA_EXCEEDED / quotaExceeded / rateLimitExceeded, or
 *   details.status 429): the scheduler backs off and may change zone;
 * - on `ctx.signal`, stop, delete the instance, and throw E_INTERRUPTED;
 * - report progress through `ctx.onState` (inserting, booting, proving, deleting).
 */
export type RunOne = (input: FleetInput, ctx: AttemptContext) => Promise<AttemptOutcome>;

/** Injectable time: `now` in ms, `sleep` that rejects when the signal aborts. */
export interface FleetClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Progress of a fleet, one event per change; see fleetProgressEvent for the listr2/plain form. */
export type FleetEvent =
  | {
      kind: 'instance';
      index: number;
      input: string;
      zone: string;
      attempt: number;
      state: AttemptState;
      elapsedMs: number;
      detail?: string;
    }
  | {
      kind: 'fleet';
      done: number;
      running: number;
      queued: number;
      retried: number;
      failed: number;
      concurrency: number;
      zone: string;
      elapsedMs: number;
    }
  | { kind: 'backoff'; reason: AttemptFailureKind; waitMs: number; concurrency: number; zone: string }
  | { kind: 'zone'; from: string; to: string; reason: AttemptFailureKind };

export interface FleetOptions {
  fleetId: string;
  inputs: FleetInput[];
  /** Instances at once (N). */
  parallel: number;
  /** Zones in order of preference; the fleet moves on when one runs out. */
  zones: string[];
  /** New instances for a preempted input (default 2). */
  retries?: number;
  runOne: RunOne;
  /** First Ctrl-C. */
  signal?: AbortSignal;
  /** Second Ctrl-C: stop waiting for attempts, sweep now. */
  forceSignal?: AbortSignal;
  /** Delete everything of the fleet (by its label), at the end and after an interrupt; must not throw for "nothing there". */
  sweep?: (reason: 'end' | 'interrupt' | 'force') => Promise<void>;
  /** Called once per zone the fleet left, when nothing of it runs there any more. */
  leaveZone?: (zone: string) => Promise<void>;
  onEvent?: (event: FleetEvent) => void;
  backoff?: BackoffOptions;
  /** Quota errors in a row in one zone before the fleet leaves it (default 3). */
  quotaStrikes?: number;
  /** Capacity errors in a row in the last zone before the fleet gives up (default 8). */
  maxCapacityErrors?: number;
  /** Successes in a row that raise a lowered concurrency by one (default 2). */
  recoverAfter?: number;
  /** Also emit every running instance's state and the fleet line this often (ms), so elapsed times move. */
  tickMs?: number;
  clock?: FleetClock;
  random?: () => number;
}

/** One attempt, as recorded. */
export interface AttemptRecord {
  index: number;
  attempt: number;
  zone: string;
  kind: AttemptState;
  startedMs: number;
  endedMs: number;
  instanceSeconds: number;
  runId?: string;
  dir?: string;
  error?: { code: string; message: string };
}

/** How each input ended. */
export interface FleetInputResult {
  index: number;
  args: string[];
  outcome: 'succeeded' | 'failed' | 'preempted' | 'error' | 'interrupted' | 'not-started';
  /** Attempts that had an instance (capacity refusals are not counted). */
  attempts: number;
  /** Preempted attempts retried. */
  retries: number;
  zone?: string;
  runId?: string;
  dir?: string;
  error?: { code: string; message: string };
}

export interface FleetResult {
  fleetId: string;
  inputs: FleetInputResult[];
  attempts: AttemptRecord[];
  summary: {
    total: number;
    succeeded: number;
    failed: number;
    preempted: number;
    error: number;
    interrupted: number;
    notStarted: number;
    retried: number;
  };
  wallMs: number;
  instanceSeconds: number;
  zones: { used: string[]; left: string[] };
  interrupted: false | 'interrupt' | 'force';
  /** Set when the fleet gave up for lack of capacity. */
  capacityError?: { code: string; message: string };
  /** Problems of the sweep or of leaving a zone (resources that may be left: see `gcp ls`). */
  cleanupErrors: string[];
}

/** The system clock. */
export const systemClock: FleetClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/** Run a fleet to its end (or interruption); never throws for an attempt's failure, which is data. */
export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  if (options.inputs.length > 0 && (options.zones.length === 0 || !(options.parallel >= 1))) {
    throw new UniproveError('E_USAGE', {
      message: `a fleet needs a zone and --parallel 1 or more (got ${options.zones.length} zones, --parallel ${options.parallel})`,
      hint: 'Give --zones a,b,c (or --zone) and --parallel N.',
    });
  }
  return new Fleet(options).run();
}

interface Running {
  input: FleetInput;
  zone: string;
  attempt: number;
  controller: AbortController;
  startedMs: number;
  state: AttemptState;
}

type Settled =
  | { run: Running; outcome: AttemptOutcome }
  | { run: Running; failure: AttemptFailureKind; error: unknown };

class Fleet {
  readonly #o: FleetOptions;
  readonly #clock: FleetClock;
  readonly #random: () => number;
  readonly #retries: number;
  readonly #queue: FleetInput[];
  readonly #running = new Set<Running>();
  readonly #settled: Settled[] = [];
  readonly #results: FleetInputResult[];
  readonly #attempts: AttemptRecord[] = [];
  /** Zones the fleet moved away from, still to be left (something of it may run there). */
  readonly #zonesLeft: string[] = [];
  readonly #leftZones: string[] = [];
  readonly #cleanupErrors: string[] = [];
  readonly #leaving: Promise<void>[] = [];
  #zoneIndex = 0;
  #limit: number;
  #pauseUntil = 0;
  #capacityStreak = 0;
  #quotaStreak = 0;
  #successStreak = 0;
  #retried = 0;
  #gaveUp: { code: string; message: string } | undefined;
  #started = 0;
  #wake: (() => void) | undefined;

  constructor(options: FleetOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#retries = options.retries ?? 2;
    this.#limit = Math.max(1, Math.floor(options.parallel));
    this.#queue = [...options.inputs];
    this.#results = options.inputs.map((i) => ({
      index: i.index,
      args: i.args,
      outcome: 'not-started',
      attempts: 0,
      retries: 0,
    }));
  }

  get #zone(): string {
    return this.#o.zones[this.#zoneIndex] ?? '';
  }

  async run(): Promise<FleetResult> {
    this.#started = this.#clock.now();
    const wakeOnAbort = () => this.#wake?.();
    this.#o.signal?.addEventListener('abort', wakeOnAbort);
    this.#o.forceSignal?.addEventListener('abort', wakeOnAbort);
    let interrupted: FleetResult['interrupted'] = false;
    try {
      interrupted = await this.#loop();
    } finally {
      this.#o.signal?.removeEventListener('abort', wakeOnAbort);
      this.#o.forceSignal?.removeEventListener('abort', wakeOnAbort);
    }
    if (interrupted !== 'force') await Promise.all(this.#leaving);
    await this.#sweep(interrupted || 'end');
    return this.#result(interrupted);
  }

  async #loop(): Promise<FleetResult['interrupted']> {
    for (;;) {
      if (this.#o.forceSignal?.aborted) return this.#forceStop();
      if (this.#o.signal?.aborted) return this.#interrupt();
      this.#drainSettled();
      this.#startWhatFits();
      if (this.#running.size === 0 && (this.#queue.length === 0 || this.#gaveUp)) {
        for (const input of this.#queue.splice(0)) this.#giveUpOn(input);
        return false;
      }
      await this.#waitForChange();
    }
  }

  #startWhatFits(): void {
    if (this.#gaveUp) return;
    while (
      this.#queue.length > 0 &&
      this.#running.size < this.#limit &&
      this.#clock.now() >= this.#pauseUntil
    ) {
      this.#start(this.#queue.shift()!);
    }
  }

  /** Wait until an attempt settles, the backoff pause ends, or an abort arrives. */
  async #waitForChange(): Promise<void> {
    if (this.#settled.length > 0) return;
    const woken = new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    const pauseMs = this.#pauseUntil - this.#clock.now();
    const timer = new AbortController();
    const waits: Promise<void>[] = [woken];
    if (pauseMs > 0 && this.#queue.length > 0 && !this.#gaveUp) {
      waits.push(this.#clock.sleep(pauseMs, timer.signal).catch(() => {}));
    }
    let ticked = false;
    if (this.#o.tickMs && this.#running.size > 0) {
      const tick = this.#clock.sleep(this.#o.tickMs, timer.signal).then(() => {
        ticked = true;
      });
      waits.push(tick.catch(() => {}));
    }
    await Promise.race(waits);
    timer.abort();
    this.#wake = undefined;
    if (ticked) {
      for (const r of this.#running) this.#instanceEvent(r, r.state);
      this.#fleetEvent();
    }
  }

  #start(input: FleetInput): void {
    const result = this.#results.find((r) => r.index === input.index)!;
    const run: Running = {
      input,
      zone: this.#zone,
      attempt: result.attempts + 1,
      controller: new AbortController(),
      startedMs: this.#clock.now(),
      state: 'starting',
    };
    this.#running.add(run);
    const onState = (state: AttemptState, detail?: string) => {
      run.state = state;
      this.#instanceEvent(run, state, detail);
    };
    onState('starting');
    this.#fleetEvent();
    const ctx: AttemptContext = {
      fleetId: this.#o.fleetId,
      zone: run.zone,
      attempt: run.attempt,
      signal: run.controller.signal,
      onState,
    };
    // runOne may throw synchronously: wrap it so every attempt settles through the same path.
    Promise.resolve()
      .then(() => this.#o.runOne(input, ctx))
      .then(
        (outcome) => this.#settle({ run, outcome }),
        (error: unknown) => this.#settle({ run, failure: classifyAttemptError(error), error }),
      );
  }

  #settle(settled: Settled): void {
    this.#settled.push(settled);
    this.#wake?.();
  }

  #drainSettled(): void {
    for (const s of this.#settled.splice(0)) {
      this.#running.delete(s.run);
      if ('outcome' in s) this.#onOutcome(s.run, s.outcome);
      else this.#onFailure(s.run, s.failure, s.error);
      this.#maybeLeaveZones();
      this.#fleetEvent();
    }
  }

  #record(run: Running, kind: AttemptState, extra: Partial<AttemptRecord> = {}): AttemptRecord {
    const endedMs = this.#clock.now();
    const withInstance = kind !== 'capacity';
    const rec: AttemptRecord = {
      index: run.input.index,
      attempt: run.attempt,
      zone: run.zone,
      kind,
      startedMs: Math.round(run.startedMs - this.#started),
      endedMs: Math.round(endedMs - this.#started),
      instanceSeconds: withInstance ? (endedMs - run.startedMs) / 1000 : 0,
      ...extra,
    };
    this.#attempts.push(rec);
    this.#instanceEvent(run, kind);
    return rec;
  }

  #onOutcome(run: Running, outcome: AttemptOutcome): void {
    const result = this.#results.find((r) => r.index === run.input.index)!;
    result.attempts++;
    result.zone = run.zone;
    const ids = {
      ...(outcome.runId ? { runId: outcome.runId } : {}),
      ...(outcome.dir ? { dir: outcome.dir } : {}),
    };
    this.#record(run, outcome.kind, {
      ...ids,
      ...(outcome.instanceSeconds !== undefined ? { instanceSeconds: outcome.instanceSeconds } : {}),
    });
    Object.assign(result, ids);
    this.#capacityStreak = 0;
    if (outcome.kind === 'preempted') {
      this.#onPreempted(run, result);
      return;
    }
    result.outcome = outcome.kind;
    if (++this.#successStreak >= (this.#o.recoverAfter ?? 2) && this.#limit < this.#o.parallel) {
      this.#limit++;
      this.#successStreak = 0;
    }
  }

  #onPreempted(run: Running, result: FleetInputResult): void {
    if (this.#o.signal?.aborted) {
      result.outcome = 'interrupted';
      return;
    }
    if (result.retries < this.#retries) {
      result.retries++;
      this.#retried++;
      // A retry goes first: it has waited longest.
      this.#queue.unshift(run.input);
    } else {
      result.outcome = 'preempted';
      result.error = {
        code: 'E_GCP_PREEMPTED',
        message: `preempted ${result.attempts} times (--retries ${this.#retries})`,
      };
    }
  }

  #onFailure(run: Running, kind: AttemptFailureKind, error: unknown): void {
    const result = this.#results.find((r) => r.index === run.input.index)!;
    const err = errorSummary(error);
    if (kind === 'preempted') {
      this.#onOutcome(run, { kind: 'preempted', detail: err.message });
      return;
    }
    if (isCapacityKind(kind)) {
      this.#record(run, 'capacity', { error: err });
      this.#onCapacity(run, kind, err);
      return;
    }
    result.attempts++;
    result.zone = run.zone;
    this.#record(run, kind === 'interrupted' ? 'interrupted' : 'error', { error: err });
    result.outcome = kind === 'interrupted' ? 'interrupted' : 'error';
    result.error = err;
    const details = (error as { details?: { runDir?: unknown; runId?: unknown } })?.details;
    if (typeof details?.runDir === 'string') result.dir = details.runDir;
  }

  #onCapacity(run: Running, kind: AttemptFailureKind, err: { code: string; message: string }): void {
    // The input did nothing wrong: it goes back first, and is not counted as a retry.
    this.#queue.unshift(run.input);
    if (run.zone !== this.#zone) return; // news from a zone the fleet has left already
    this.#successStreak = 0;
    this.#capacityStreak++;
    this.#quotaStreak = kind === 'quota' ? this.#quotaStreak + 1 : 0;
    const nextZone = this.#o.zones[this.#zoneIndex + 1];
    const leave =
      kind === 'zone-exhausted' || (kind === 'quota' && this.#quotaStreak >= (this.#o.quotaStrikes ?? 3));
    if (leave && nextZone) {
      this.#o.onEvent?.({ kind: 'zone', from: this.#zone, to: nextZone, reason: kind });
      this.#zonesLeft.push(this.#zone);
      this.#zoneIndex++;
      this.#limit = Math.max(1, Math.floor(this.#o.parallel));
      this.#capacityStreak = 0;
      this.#quotaStreak = 0;
      this.#pauseUntil = 0;
      return;
    }
    if (this.#capacityStreak > (this.#o.maxCapacityErrors ?? 8)) {
      this.#gaveUp = {
        code: 'E_GCP_CAPACITY',
        message: `no capacity after ${this.#capacityStreak} tries in ${this.#o.zones.join(', ')}: ${err.message}`,
      };
      return;
    }
    // What runs now is what the zone or the quota allows: aim there, one less than before at most.
    this.#limit = Math.max(1, Math.min(this.#limit - 1, this.#running.size));
    const waitMs = backoffDelay(this.#capacityStreak, this.#o.backoff, this.#random);
    this.#pauseUntil = this.#clock.now() + waitMs;
    this.#o.onEvent?.({ kind: 'backoff', reason: kind, waitMs, concurrency: this.#limit, zone: this.#zone });
  }

  #giveUpOn(input: FleetInput): void {
    const result = this.#results.find((r) => r.index === input.index)!;
    // Inputs a Ctrl-C kept from starting stay 'not-started': nothing of them ran.
    if (this.#gaveUp) {
      result.outcome = 'error';
      result.error = this.#gaveUp;
    } else if (result.attempts > 0) {
      result.outcome = 'interrupted'; // a preempted input whose retry never started
    }
  }

  /** Leave zones the fleet moved away from once nothing of it runs there. */
  #maybeLeaveZones(): void {
    for (const zone of this.#zonesLeft.splice(0)) {
      if ([...this.#running].some((r) => r.zone === zone)) {
        this.#zonesLeft.push(zone);
        continue;
      }
      if (this.#o.leaveZone) {
        this.#leaving.push(
          this.#o.leaveZone(zone).catch((error: unknown) => {
            this.#cleanupErrors.push(`leaving ${zone}: ${errorSummary(error).message}`);
          }),
        );
      }
      this.#leftZones.push(zone);
    }
  }

  /** First Ctrl-C: start nothing, cancel every attempt and wait for each to clean up (unless forced meanwhile). */
  async #interrupt(): Promise<FleetResult['interrupted']> {
    for (const r of this.#running) r.controller.abort(this.#o.signal?.reason);
    while (this.#running.size > 0) {
      if (this.#o.forceSignal?.aborted) return this.#forceStop();
      this.#drainSettled();
      if (this.#running.size > 0) await this.#waitForChange();
    }
    for (const input of this.#queue.splice(0)) this.#giveUpOn(input);
    this.#maybeLeaveZones();
    return 'interrupt';
  }

  /** Second Ctrl-C: stop waiting; whatever still runs is marked interrupted and swept by label. */
  #forceStop(): FleetResult['interrupted'] {
    for (const r of this.#running) r.controller.abort(this.#o.forceSignal?.reason);
    this.#drainSettled();
    for (const r of this.#running) {
      const result = this.#results.find((x) => x.index === r.input.index)!;
      result.attempts++;
      result.zone = r.zone;
      result.outcome = 'interrupted';
      this.#record(r, 'interrupted');
    }
    this.#running.clear();
    for (const input of this.#queue.splice(0)) this.#giveUpOn(input);
    return 'force';
  }

  async #sweep(reason: 'end' | 'interrupt' | 'force'): Promise<void> {
    if (!this.#o.sweep) return;
    try {
      await this.#o.sweep(reason);
    } catch (error) {
      this.#cleanupErrors.push(`sweep: ${errorSummary(error).message}`);
    }
  }

  #instanceEvent(run: Running, state: AttemptState, detail?: string): void {
    this.#o.onEvent?.({
      kind: 'instance',
      index: run.input.index,
      input: run.input.args.join(' '),
      zone: run.zone,
      attempt: run.attempt,
      state,
      elapsedMs: Math.round(this.#clock.now() - run.startedMs),
      ...(detail ? { detail } : {}),
    });
  }

  #fleetEvent(): void {
    this.#o.onEvent?.({
      kind: 'fleet',
      done: this.#results.filter((r) => r.outcome !== 'not-started').length,
      running: this.#running.size,
      queued: this.#queue.length,
      retried: this.#retried,
      failed: this.#results.filter((r) => r.outcome !== 'not-started' && r.outcome !== 'succeeded').length,
      concurrency: this.#limit,
      zone: this.#zone,
      elapsedMs: Math.round(this.#clock.now() - this.#started),
    });
  }

  #result(interrupted: FleetResult['interrupted']): FleetResult {
    const count = (o: FleetInputResult['outcome']) => this.#results.filter((r) => r.outcome === o).length;
    const used = [...new Set(this.#attempts.map((a) => a.zone))];
    return {
      fleetId: this.#o.fleetId,
      inputs: this.#results,
      attempts: this.#attempts,
      summary: {
        total: this.#results.length,
        succeeded: count('succeeded'),
        failed: count('failed'),
        preempted: count('preempted'),
        error: count('error'),
        interrupted: count('interrupted'),
        notStarted: count('not-started'),
        retried: this.#retried,
      },
      wallMs: Math.round(this.#clock.now() - this.#started),
      instanceSeconds: this.#attempts.reduce((s, a) => s + a.instanceSeconds, 0),
      zones: { used, left: [...this.#leftZones, ...this.#zonesLeft] },
      interrupted,
      ...(this.#gaveUp ? { capacityError: this.#gaveUp } : {}),
      cleanupErrors: this.#cleanupErrors,
    };
  }
}

function errorSummary(error: unknown): { code: string; message: string } {
  const e = error as { code?: unknown; message?: unknown };
  return {
    code: typeof e?.code === 'string' ? e.code : 'E_INTERNAL',
    message: typeof e?.message === 'string' ? e.message : String(error),
  };
}
