/**
 * Prometheus metrics of work while it runs (`--metrics-port`) and at its end (`--metrics-textfile`): inputs by
 * state, attempts, preemptions, retries, proof durations, proof bytes, the fleet's cost so far.
 *
 * prom-client is imported only here and only when `startMetrics` is called: a run without a metrics flag never
 * loads it (uniprove run's start-up time is measured). Labels are low-cardinality on purpose (prover, state,
 * zone, outcome: never a run id, an argument or anything from the environment), so a scrape stays small however
 * many inputs a fleet has.
 *
 * One `WorkMetrics` per command: its registry is its own, never prom-client's global one.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { costOfUsage } from '../cloud/prices.js';
import { UniproveError } from '../errors.js';
import { writeFileAtomic } from '../fs.js';
import type { FleetEvent, FleetResult } from '../gcp/fleet/scheduler.js';
import type { RunRecord } from '../record/record.js';

/** States an input is counted in (`uniprove_inputs{state}`). */
export const INPUT_STATES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timeout',
  'unknown',
  'preempted',
  'error',
  'interrupted',
] as const;
export type InputState = (typeof INPUT_STATES)[number];

/** Proof duration buckets (seconds): a few seconds to a day, roughly doubling. */
export const DURATION_BUCKETS = [
  1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200, 86400,
];

export interface StartMetricsOptions {
  /** The prover's name (the `prover` label). */
  prover: string;
  /** Serve /metrics on this port while the work runs (0: any free port). */
  port?: number;
  /** Where to listen (default 127.0.0.1: nothing outside this host can scrape it). */
  host?: string;
  /**
   * After the work ends, keep /metrics up until it has been scraped once more (so a scraper sees the final
   * counts), at most this long (ms; default 0: close at once).
   */
  lingerMs?: number;
  /** Write the metrics here at the end, in node_exporter's textfile-collector format. */
  textfile?: string;
  /** A fleet's machine, for its cost so far (absent for local runs: they cost nothing by the hour). */
  machine?: { machineType: string; spot: boolean };
  /** New instances a preempted input gets (a fleet's --retries, default 2): whether it is queued again. */
  retries?: number;
  /** How many inputs (all queued at the start); setWork can tell it later. */
  inputs?: number;
  /** Injected time (ms), for the cost of attempts still running. */
  now?: () => number;
}

/** What a command feeds its metrics and how it ends them. */
export interface WorkMetrics {
  /** Where /metrics is served, when a port was asked. */
  url?: string;
  /** What the work is, once resolved: its inputs, and a fleet's machine (for the cost so far). */
  setWork(work: { inputs: number; machine?: { machineType: string; spot: boolean } }): void;
  /** A fleet's progress event (core/gcp/fleet/scheduler.ts). */
  fleetEvent(event: FleetEvent): void;
  /** A local run of a batch started (`run --parallel`). */
  runStarted(index: number): void;
  /** A run ended with its record (an attempt of a fleet, a run of a batch, a single run). */
  runRecord(record: RunRecord, index?: number): void;
  /** A local run of a batch ended without a record (an error before it had one). */
  runFailed(index: number, outcome: InputState): void;
  /** The fleet's result: the final state of each input, its cost as the fleet record has it. */
  fleetResult(result: FleetResult, costUsd: number | null): void;
  /** The metrics text as a scrape gets it. */
  text(): Promise<string>;
  /** Write the textfile (if asked) and close the server; safe to call twice. */
  finish(): Promise<{ textfile?: string }>;
}

/** Keys of running attempts: input and attempt. */
type AttemptKey = `${number}:${number}`;

const TERMINAL = new Set(['succeeded', 'failed', 'preempted', 'capacity', 'error', 'interrupted']);

/**
 * Start the metrics of one piece of work: the registry, and the /metrics server when a port is given (a port in
 * use is E_PORT_IN_USE naming --metrics-port). prom-client is loaded here.
 */
export async function startMetrics(options: StartMetricsOptions): Promise<WorkMetrics> {
  const prom = await import('prom-client');
  const now = options.now ?? Date.now;
  const register = new prom.Registry();
  const prover = options.prover;
  // The process metrics go to the server only: node_exporter exports process_* of its own, and a textfile with
  // the same names makes its scrape fail ("collected before with the same name and label values").
  const processRegister = new prom.Registry();
  prom.collectDefaultMetrics({ register: processRegister });

  const series = defineSeries(prom, register, prover);
  const { inputs, attempts, preemptions, retries, duration, proofBytes, ended } = series;

  let total = options.inputs ?? 0;
  const state = new Map<number, InputState>();
  const counts = () => {
    const by = new Map<InputState, number>(INPUT_STATES.map((s) => [s, 0]));
    by.set('queued', Math.max(0, total - state.size));
    for (const s of state.values()) by.set(s, (by.get(s) ?? 0) + 1);
    for (const [s, n] of by) inputs.set({ prover, state: s }, n);
  };
  counts();

  // Cost so far: attempts that ended (their instance-seconds) and those still running (their seconds until now).
  const endedSeconds: number[] = [];
  const running = new Map<AttemptKey, number>();
  const seen = new Set<AttemptKey>();
  let finalCost: number | null | undefined;
  let machine = options.machine;
  const addCost = () =>
    defineCost(prom, register, prover, () => {
      if (!machine) return null;
      if (finalCost !== undefined) return finalCost;
      const t = now();
      const seconds = [...endedSeconds, ...[...running.values()].map((s) => (t - s) / 1000)];
      return costOfUsage({ instanceSeconds: seconds, ...machine }).usd;
    });
  if (machine) addCost();

  const tally: FleetTally = {
    prover,
    now,
    retries: options.retries ?? 2,
    state,
    running,
    seen,
    endedSeconds,
  };
  const fleetEvent = (e: FleetEvent) => {
    countFleetEvent(tally, { attempts, preemptions, retries }, e);
    counts();
  };

  const runRecord = (record: RunRecord, index?: number) => {
    const outcome = countRecord({ duration, proofBytes }, prover, record);
    if (index === undefined) return;
    attempts.inc({ prover, zone: record.gce?.zone ?? 'local', outcome });
    state.set(index, outcome);
    counts();
  };

  const live =
    options.port === undefined
      ? undefined
      : await serveMetrics(
          options.host ?? '127.0.0.1',
          options.port,
          async () => `${await register.metrics()}\n${await processRegister.metrics()}`,
          register.contentType,
        );
  const url = live?.url;

  let finished: Promise<{ textfile?: string }> | undefined;
  return {
    ...(url ? { url } : {}),
    setWork(work) {
      total = work.inputs;
      if (work.machine && !machine) {
        machine = work.machine;
        addCost();
      }
      counts();
    },
    fleetEvent,
    runStarted(index) {
      state.set(index, 'running');
      counts();
    },
    runRecord,
    runFailed(index, outcome) {
      attempts.inc({ prover, zone: 'local', outcome });
      state.set(index, outcome);
      counts();
    },
    fleetResult(result, costUsd) {
      for (const i of result.inputs) {
        if (i.outcome === 'not-started') state.delete(i.index);
        else state.set(i.index, i.outcome);
      }
      running.clear();
      finalCost = costUsd;
      counts();
    },
    text: () => register.metrics(),
    finish() {
      finished ??= (async () => {
        ended.set({ prover }, Math.round(now() / 1000));
        if (live && options.lingerMs) await live.scrapedOnce(options.lingerMs);
        if (live) await closeServer(live.server);
        if (!options.textfile) return {};
        await writeFileAtomic(options.textfile, await register.metrics(), {
          what: `--metrics-textfile ${options.textfile}`,
        });
        return { textfile: options.textfile };
      })();
      return finished;
    },
  };
}

/** What a fleet's events are counted into: each input's state, the attempts running and their seconds. */
interface FleetTally {
  prover: string;
  now: () => number;
  /** New instances a preempted input gets: past them, it stays preempted. */
  retries: number;
  state: Map<number, InputState>;
  /** Attempts with an instance, by key, and when each started (ms). */
  running: Map<AttemptKey, number>;
  seen: Set<AttemptKey>;
  /** Instance-seconds of attempts that ended (for the cost). */
  endedSeconds: number[];
}

/** Count one fleet event: retries when an attempt > 1 starts; at an attempt's end, its outcome and state. */
function countFleetEvent(
  t: FleetTally,
  series: Pick<ReturnType<typeof defineSeries>, 'attempts' | 'preemptions' | 'retries'>,
  e: FleetEvent,
): void {
  if (e.kind !== 'instance') return;
  const { prover } = t;
  const key: AttemptKey = `${e.index}:${e.attempt}`;
  const zone = e.zone;
  if (!t.seen.has(key)) {
    t.seen.add(key);
    if (e.attempt > 1) series.retries.inc({ prover, zone });
  }
  if (!TERMINAL.has(e.state)) {
    if (!t.running.has(key)) t.running.set(key, t.now() - e.elapsedMs);
    t.state.set(e.index, 'running');
    return;
  }
  const started = t.running.get(key);
  t.running.delete(key);
  // A capacity refusal made no instance: nothing billed.
  if (e.state !== 'capacity')
    t.endedSeconds.push(started === undefined ? e.elapsedMs / 1000 : (t.now() - started) / 1000);
  series.attempts.inc({ prover, zone, outcome: e.state });
  if (e.state === 'preempted') {
    series.preemptions.inc({ prover, zone });
    // Queued again for a retry, unless it had its last.
    if (e.attempt <= t.retries) t.state.delete(e.index);
    else t.state.set(e.index, 'preempted');
  } else if (e.state === 'capacity') t.state.delete(e.index);
  else t.state.set(e.index, e.state as InputState);
}

/** A run's record into the duration histogram and the proof bytes; its outcome as an input state. */
function countRecord(
  series: Pick<ReturnType<typeof defineSeries>, 'duration' | 'proofBytes'>,
  prover: string,
  record: RunRecord,
): InputState {
  const outcome = record.outcome === 'running' || record.outcome === 'abandoned' ? 'error' : record.outcome;
  if (record.timings.totalMs !== undefined)
    series.duration.observe({ prover, outcome }, record.timings.totalMs / 1000);
  series.proofBytes.inc(
    { prover },
    record.proofs.reduce((sum, p) => sum + p.bytes, 0),
  );
  return outcome;
}

type Prom = typeof import('prom-client');

/** The uniprove_* series of one registry (cost apart: only fleets have it), at their start values. */
function defineSeries(prom: Prom, register: Registry, prover: string) {
  const inputs: Gauge<'prover' | 'state'> = new prom.Gauge({
    name: 'uniprove_inputs',
    help: 'Inputs of the fleet or batch by state (queued, running, succeeded, failed, timeout, unknown, preempted, error, interrupted).',
    labelNames: ['prover', 'state'],
    registers: [register],
  });
  const attempts: Counter<'prover' | 'zone' | 'outcome'> = new prom.Counter({
    name: 'uniprove_attempts_total',
    help: 'Attempts that ended, by zone (local for runs on this host) and outcome (succeeded, failed, preempted, capacity, error, interrupted).',
    labelNames: ['prover', 'zone', 'outcome'],
    registers: [register],
  });
  const preemptions: Counter<'prover' | 'zone'> = new prom.Counter({
    name: 'uniprove_preemptions_total',
    help: 'Spot instances preempted while they proved.',
    labelNames: ['prover', 'zone'],
    registers: [register],
  });
  const retries: Counter<'prover' | 'zone'> = new prom.Counter({
    name: 'uniprove_retries_total',
    help: 'Attempts started again for an input whose earlier attempt was preempted or refused for capacity.',
    labelNames: ['prover', 'zone'],
    registers: [register],
  });
  const duration: Histogram<'prover' | 'outcome'> = new prom.Histogram({
    name: 'uniprove_proof_duration_seconds',
    help: "Wall time of each run that ended with a record (its record's timings.totalMs), by outcome.",
    labelNames: ['prover', 'outcome'],
    buckets: DURATION_BUCKETS,
    registers: [register],
  });
  const proofBytes: Counter<'prover'> = new prom.Counter({
    name: 'uniprove_proof_bytes_total',
    help: 'Bytes of proofs brought back (each sha256-checked in its run record).',
    labelNames: ['prover'],
    registers: [register],
  });
  const ended = new prom.Gauge({
    name: 'uniprove_last_end_timestamp_seconds',
    help: 'When the work last ended (Unix seconds); 0 while it runs. For a cron job: alert when it is old.',
    labelNames: ['prover'],
    registers: [register],
  });
  ended.set({ prover }, 0);
  for (const outcome of ['succeeded', 'failed']) duration.zero({ prover, outcome });
  return { inputs, attempts, preemptions, retries, duration, proofBytes, ended };
}

/** /metrics on host:port, and a wait for the next scrape (the linger). */
async function serveMetrics(host: string, port: number, text: () => Promise<string>, type: string) {
  const scraped: (() => void)[] = [];
  const server = await serve(
    host,
    port,
    async (path) => (path === '/metrics' ? { text: await text(), type } : undefined),
    () => {
      // Told once the answer is written: the linger must not close a scrape's connection under it.
      for (const f of scraped.splice(0)) f();
    },
  );
  const address = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/metrics`,
    /** Resolves after the next scrape is answered, or after `ms`. */
    scrapedOnce: (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        scraped.push(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/** uniprove_cost_usd, computed at each scrape by `usd` (null: unknown, not set). */
function defineCost(prom: Prom, register: Registry, prover: string, usd: () => number | null) {
  return new prom.Gauge({
    name: 'uniprove_cost_usd',
    help: "Estimated cost so far (USD) of the fleet's instances, from uniprove's price table (core/cloud/prices.ts), a minute at least each.",
    labelNames: ['prover'],
    registers: [register],
    collect() {
      const value = usd();
      if (value !== null) this.set({ prover }, value);
    },
  });
}

/** Listen on host:port with a handler of GET paths; a port in use (or not ours to take) is a typed error. */
async function serve(
  host: string,
  port: number,
  handle: (path: string) => Promise<{ text: string; type: string } | undefined>,
  onServed: () => void,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').replace(/\?.*$/, '');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    handle(path).then(
      (body) => {
        if (!body) res.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics is served here\n');
        else res.writeHead(200, { 'content-type': body.type }).end(body.text, onServed);
      },
      (error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
      },
    );
  });
  // A scraper's keep-alive connection must not hold the process open after the work ends.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
        reject(
          new UniproveError('E_PORT_IN_USE', {
            message: `--metrics-port ${port}: ${error.code === 'EACCES' ? 'not allowed to listen on' : 'something already listens on'} ${host}:${port}`,
            hint:
              error.code === 'EACCES'
                ? 'Give a port of 1024 or more (--metrics-port 9464), or --metrics-port 0 for any free port (the URL is printed).'
                : `Give another port (--metrics-port ${port + 1}), or --metrics-port 0 for any free port (the URL is printed); \`ss -ltnp 'sport = :${port}'\` shows who holds ${port}.`,
            cause: error,
            details: { port, host },
          }),
        );
      } else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
        reject(
          new UniproveError('E_USAGE', {
            message: `--metrics-host ${host} is not an address of this host`,
            hint: 'Give 127.0.0.1 (the default), 0.0.0.0 for every interface, or one of `ip -br addr`.',
            cause: error,
          }),
        );
      } else reject(error);
    });
    server.listen(port, host, () => resolve());
  });
  return server;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
