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
import type { Counter, Gauge, Histogram } from 'prom-client';
import { UniproveError } from '../errors.js';
import type { FleetEvent, FleetResult } from '../fleet/scheduler.js';
import { writeFileAtomic } from '../fs.js';
import { costOfUsage } from '../gcp/prices.js';
import type { RunRecord } from '../run/record.js';

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
  /** A fleet's progress event (core/fleet/scheduler.ts). */
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
    new prom.Gauge({
      name: 'uniprove_cost_usd',
      help: "Estimated cost so far (USD) of the fleet's instances, from uniprove's price table (core/gcp/prices.ts), a minute at least each.",
      labelNames: ['prover'],
      registers: [register],
      collect() {
        if (!machine) return;
        const t = now();
        const usd =
          finalCost !== undefined
            ? finalCost
            : costOfUsage({
                instanceSeconds: [...endedSeconds, ...[...running.values()].map((s) => (t - s) / 1000)],
                ...machine,
              }).usd;
        if (usd !== null) this.set({ prover }, usd);
      },
    });
  if (machine) addCost();

  const fleetEvent = (e: FleetEvent) => {
    if (e.kind !== 'instance') return;
    const key: AttemptKey = `${e.index}:${e.attempt}`;
    const zone = e.zone;
    if (!seen.has(key)) {
      seen.add(key);
      if (e.attempt > 1) retries.inc({ prover, zone });
    }
    if (!TERMINAL.has(e.state)) {
      if (!running.has(key)) running.set(key, now() - e.elapsedMs);
      state.set(e.index, 'running');
    } else {
      const started = running.get(key);
      running.delete(key);
      // A capacity refusal made no instance: nothing billed.
      if (e.state !== 'capacity')
        endedSeconds.push(started === undefined ? e.elapsedMs / 1000 : (now() - started) / 1000);
      attempts.inc({ prover, zone, outcome: e.state });
      if (e.state === 'preempted') {
        preemptions.inc({ prover, zone });
        state.set(e.index, e.attempt <= (options.retries ?? 2) ? 'queued' : 'preempted');
      } else if (e.state === 'capacity') state.set(e.index, 'queued');
      else state.set(e.index, e.state as InputState);
      if (state.get(e.index) === 'queued') state.delete(e.index);
    }
    counts();
  };

  const runRecord = (record: RunRecord, index?: number) => {
    const outcome = record.outcome === 'running' || record.outcome === 'abandoned' ? 'error' : record.outcome;
    if (record.timings.totalMs !== undefined)
      duration.observe({ prover, outcome }, record.timings.totalMs / 1000);
    const bytes = record.proofs.reduce((sum, p) => sum + p.bytes, 0);
    proofBytes.inc({ prover }, bytes);
    if (index !== undefined) {
      attempts.inc({ prover, zone: record.gce?.zone ?? 'local', outcome });
      state.set(index, outcome);
      counts();
    }
  };

  let server: Server | undefined;
  let url: string | undefined;
  let scrapes = 0;
  const scraped: (() => void)[] = [];
  if (options.port !== undefined) {
    const host = options.host ?? '127.0.0.1';
    server = await serve(
      host,
      options.port,
      async (path) => {
        if (path !== '/metrics') return undefined;
        const text = `${await register.metrics()}\n${await processRegister.metrics()}`;
        return { text, type: register.contentType };
      },
      () => {
        // Counted once the answer is written: the linger must not close a scrape's connection under it.
        scrapes++;
        for (const f of scraped.splice(0)) f();
      },
    );
    const address = server.address() as AddressInfo;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/metrics`;
  }

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
        if (server && options.lingerMs) {
          const before = scrapes;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, options.lingerMs);
            scraped.push(() => {
              if (scrapes > before) {
                clearTimeout(t);
                resolve();
              }
            });
          });
        }
        if (server) await closeServer(server);
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
