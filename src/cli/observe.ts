/**
 * The observing flags of `run` and `gcp run` (--metrics-port, --metrics-host, --metrics-textfile, --alert-url)
 * and the observer a command feeds: metrics and alerts, loaded only when one of the flags is given
 * (`run`'s start-up time is measured: prom-client and the alert code stay unloaded otherwise).
 */
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { type CloudOpsSpec, cloudOpsPlan } from '../core/cloud/cloud-ops.js';
import { parseDuration } from '../core/duration.js';
import { summarizeError, UniproveError } from '../core/errors.js';
import type { FleetEvent, FleetResult } from '../core/gcp/fleet/scheduler.js';
import type { Alerter, AlertMessage } from '../core/observe/alerts.js';
import type { WorkMetrics } from '../core/observe/metrics.js';
import type { RunRecord } from '../core/record/record.js';
import type { ParallelEntry } from '../core/run/parallel.js';
import type { CliContext } from './context.js';

/** The observing flags as commander gives them. */
export interface ObserveFlags {
  metricsPort?: string;
  metricsHost?: string;
  metricsTextfile?: string;
  metricsLinger?: string;
  alertUrl?: string;
}

/** Add the observing flags to a command; `what` says what the metrics are of. */
export function addObserveOptions(cmd: Command, what: string): Command {
  return cmd
    .option(
      '--metrics-port <port>',
      `serve Prometheus metrics of ${what} on http://127.0.0.1:PORT/metrics while it runs (0: any free port, printed); see docs/observe.md`,
    )
    .option(
      '--metrics-host <address>',
      'with --metrics-port: the address to listen on (default 127.0.0.1; 0.0.0.0 lets other hosts scrape)',
    )
    .option(
      '--metrics-linger <duration>',
      'with --metrics-port: after the work ends, keep /metrics up until it is scraped once more, at most this long (10s, 1m; default 0)',
    )
    .option(
      '--metrics-textfile <path>',
      "write the metrics to PATH at the end, atomically, for node_exporter's textfile collector (name it *.prom)",
    )
    .option(
      '--alert-url <url>',
      'POST a JSON alert (Slack-compatible) for each failed input or run, and one when a fleet or batch ends (env UNIPROVE_ALERT_URL)',
    );
}

/** What `--help` teaches about the observing flags. */
export const OBSERVE_HELP = `
Metrics and alerts (docs/observe.md lists every metric and the alert's fields):
  $ uniprove run demo --parallel 4 --inputs seeds.txt --metrics-port 9464      scrape http://127.0.0.1:9464/metrics
  $ uniprove run demo --metrics-textfile /var/lib/node_exporter/textfile/uniprove.prom   for a cron job
  $ uniprove gcp run demo --inputs inputs.txt --parallel 5 --metrics-port 0 --alert-url https://hooks.slack.com/services/T/B/X
  $ UNIPROVE_ALERT_URL=http://127.0.0.1:9000/hook uniprove gcp run demo
An alert never fails the run and holds its end a few seconds at most; secrets (credential-like environment
values, a service-account key's fields) are scrubbed from it.`;

/** Checked observing flags (before anything is made). */
export interface ObserveSpec {
  port?: number;
  host?: string;
  lingerMs?: number;
  textfile?: string;
  alertUrl?: URL;
}

/** Check the observing flags: a bad one is a usage error before any work. Undefined when none is given. */
export async function observeSpec(ctx: CliContext, flags: ObserveFlags): Promise<ObserveSpec | undefined> {
  const alertText = flags.alertUrl ?? ctx.env.UNIPROVE_ALERT_URL;
  if (flags.metricsPort === undefined && !flags.metricsTextfile && !alertText) {
    if (flags.metricsHost !== undefined || flags.metricsLinger !== undefined) {
      throw new UniproveError('E_USAGE', {
        message: `${flags.metricsHost !== undefined ? '--metrics-host' : '--metrics-linger'} goes with --metrics-port`,
        hint: 'For example --metrics-port 9464 --metrics-host 0.0.0.0 --metrics-linger 30s.',
      });
    }
    return undefined;
  }
  const spec: ObserveSpec = {};
  if (flags.metricsPort !== undefined) {
    const port = Number(flags.metricsPort);
    if (!/^\d+$/.test(flags.metricsPort) || port > 65535) {
      throw new UniproveError('E_USAGE', {
        message: `--metrics-port ${flags.metricsPort} is not a TCP port (0 to 65535)`,
        hint: "For example --metrics-port 9464 (prom-client's usual port), or 0 for any free port.",
      });
    }
    spec.port = port;
    spec.host = flags.metricsHost ?? '127.0.0.1';
    if (flags.metricsLinger !== undefined)
      spec.lingerMs = parseDuration(flags.metricsLinger, '--metrics-linger');
  } else if (flags.metricsHost !== undefined || flags.metricsLinger !== undefined) {
    throw new UniproveError('E_USAGE', {
      message: `${flags.metricsHost !== undefined ? '--metrics-host' : '--metrics-linger'} goes with --metrics-port`,
      hint: 'For example --metrics-port 9464 --metrics-host 0.0.0.0 --metrics-linger 30s.',
    });
  }
  if (flags.metricsTextfile) spec.textfile = resolve(ctx.cwd, flags.metricsTextfile);
  if (alertText) {
    const { parseAlertUrl } = await import('../core/observe/alerts.js');
    spec.alertUrl = parseAlertUrl(alertText, flags.alertUrl ? '--alert-url' : 'UNIPROVE_ALERT_URL');
  }
  return spec;
}

/** The prover's name for the metrics' `prover` label, from the target as typed (a name, folder or recipe.json). */
export function proverName(target: string): string {
  const path = target.replace(/\/+$/, '');
  return (basename(path) === 'recipe.json' ? basename(dirname(path)) : basename(path)) || 'prover';
}

/** What a command feeds while it works, and ends in its `finally`. */
export interface Observer {
  metrics?: WorkMetrics;
  /** A fleet resolved: its inputs and machine. */
  onPlan(fleet: { inputs: number; machineType: string; spot: boolean }): void;
  onFleetEvent(event: FleetEvent): void;
  /** An attempt of a fleet ended with a record. */
  onAttemptRecord(record: RunRecord): void;
  onRunStart(index: number): void;
  onRunDone(entry: ParallelEntry): void;
  /** A single run ended: its record (a failure alerts). */
  single(record: RunRecord): void;
  /**
   * A single run, or the whole work, failed before a record could say so; `asInput` false for a fleet or batch
   * (its inputs keep the states they had).
   */
  failed(error: unknown, runDir?: string, asInput?: boolean): void;
  fleetEnd(fleet: FleetResult, recordPath: string, costUsd: number | null): void;
  batchEnd(summary: Record<string, number> & { total: number; succeeded: number }): void;
  /** Write the textfile, close the server, wait a few seconds at most for the alerts; report on stderr. */
  end(): Promise<void>;
}

/**
 * Start observing: the metrics (and their server, whose port in use is E_PORT_IN_USE before anything is made)
 * and the alerter.
 */
export async function startObserver(
  ctx: CliContext,
  spec: ObserveSpec,
  work: {
    prover: string;
    inputs?: number;
    machine?: { machineType: string; spot: boolean };
    retries?: number;
  },
): Promise<Observer> {
  let metrics: WorkMetrics | undefined;
  if (spec.port !== undefined || spec.textfile) {
    const { startMetrics } = await import('../core/observe/metrics.js');
    metrics = await startMetrics({
      prover: work.prover,
      ...(work.inputs !== undefined ? { inputs: work.inputs } : {}),
      ...(spec.port !== undefined ? { port: spec.port, host: spec.host } : {}),
      ...(spec.lingerMs ? { lingerMs: spec.lingerMs } : {}),
      ...(spec.textfile ? { textfile: spec.textfile } : {}),
      ...(work.machine ? { machine: work.machine } : {}),
      ...(work.retries !== undefined ? { retries: work.retries } : {}),
    });
    if (metrics.url) ctx.out.stderr.write(`metrics: ${metrics.url}\n`);
  }
  let alerter: Alerter | undefined;
  let alerts: typeof import('../core/observe/alerts.js') | undefined;
  if (spec.alertUrl) {
    alerts = await import('../core/observe/alerts.js');
    alerter = alerts.createAlerter({ url: spec.alertUrl, secrets: await alerts.secretsOf(ctx.env) });
  }
  const send = (m: AlertMessage | undefined) => {
    if (m) alerter?.send(m);
  };
  return {
    ...(metrics ? { metrics } : {}),
    onPlan(fleet) {
      metrics?.setWork({
        inputs: fleet.inputs,
        machine: { machineType: fleet.machineType, spot: fleet.spot },
      });
    },
    onFleetEvent(e) {
      metrics?.fleetEvent(e);
      // An attempt that failed without a record (its record, when it has one, alerts in onAttemptRecord).
      if (alerts && e.kind === 'instance' && e.state === 'error')
        send(
          alerts.inputErrorAlert({ prover: work.prover, input: e.index, outcome: 'error', detail: e.detail }),
        );
    },
    onAttemptRecord(record) {
      metrics?.runRecord(record);
      if (alerts && record.outcome !== 'succeeded' && record.error?.code !== 'E_GCP_PREEMPTED')
        send(
          alerts.runAlert(record, {
            kind: 'input-failed',
            ...(record.fleet ? { input: record.fleet.input } : {}),
          }),
        );
    },
    onRunStart(index) {
      metrics?.runStarted(index);
    },
    onRunDone(entry) {
      if (entry.result) metrics?.runRecord(entry.result.record, entry.index);
      else metrics?.runFailed(entry.index, entry.outcome);
      if (!alerts || entry.outcome === 'succeeded') return;
      send(
        entry.result
          ? alerts.runAlert(entry.result.record, { kind: 'input-failed', input: entry.index })
          : alerts.inputErrorAlert({
              prover: work.prover,
              input: entry.index,
              outcome: entry.outcome,
              ...(entry.error ? { error: entry.error } : {}),
              ...(entry.id ? { runId: entry.id } : {}),
              ...(entry.dir ? { dir: entry.dir } : {}),
            }),
      );
    },
    single(record) {
      metrics?.runRecord(record, 0);
      if (alerts && record.outcome !== 'succeeded') send(alerts.runAlert(record, { kind: 'run-failed' }));
    },
    failed(error, runDir, asInput = true) {
      if (asInput) metrics?.runFailed(0, 'error');
      if (alerts) send(alerts.runErrorAlert(work.prover, summarizeError(error), runDir));
    },
    fleetEnd(fleet, recordPath, costUsd) {
      metrics?.fleetResult(fleet, costUsd);
      if (alerts) send(alerts.fleetEndAlert(fleet, { prover: work.prover, recordPath, costUsd }));
    },
    batchEnd(summary) {
      if (alerts) send(alerts.batchEndAlert(summary, work.prover));
    },
    async end() {
      const done = await metrics?.finish().catch((error: unknown) => {
        ctx.out.stderr.write(`warning: metrics: ${(error as Error).message}\n`);
        return undefined;
      });
      if (done?.textfile) ctx.out.stderr.write(`metrics written to ${done.textfile}\n`);
      if (alerter) {
        const report = await alerter.close(5000);
        for (const f of report.failed)
          ctx.out.stderr.write(
            `warning: an alert (${f.kind}) was not delivered: ${f.reason} [alert-failed]\n`,
          );
      }
    },
  };
}

/** The cloud-side flags of `gcp run` (the guest's own logs and metrics, through Nanos's gcp klib). */
export interface CloudOpsFlags {
  cloudLogging?: boolean;
  cloudMetrics?: boolean;
  serviceAccount?: string;
}

/** Add --cloud-logging, --cloud-metrics and --service-account to `gcp run`. */
export function addCloudOpsOptions(cmd: Command): Command {
  return cmd
    .option(
      '--cloud-logging',
      "with a recipe: the instance's console also goes to Cloud Logging (Nanos's gcp klib; the log is named after the instance's hostname)",
    )
    .option(
      '--cloud-metrics',
      "with a recipe: the guest's memory use goes to Cloud Monitoring every 60 s (Nanos's gcp klib, agent.googleapis.com/memory/*)",
    )
    .option(
      '--service-account <email>',
      'with --cloud-logging/--cloud-metrics: the service account the instance runs as (default: the project\'s Compute Engine default, "default")',
    );
}

/** What `--help` teaches about the cloud-side flags. */
export const CLOUD_OPS_HELP = `
Cloud-side logs and metrics (docs/observe.md): the image gets Klibs gcp and tls and ManifestPassthrough
{"gcp": {"logging": {}, "metrics": {"interval": "60"}}}; the instance runs as --service-account with the
logging.write / monitoring.write scopes, and that account needs roles/logging.logWriter and
roles/monitoring.metricWriter. --dry-run shows both.
  $ uniprove gcp run demo --cloud-logging --dry-run
  $ uniprove gcp run demo --inputs inputs.txt --cloud-logging --cloud-metrics --service-account prover@my-proj.iam.gserviceaccount.com`;

/** Check the cloud-side flags: undefined when neither is on; --service-account alone is a usage error. */
export function cloudOpsOf(flags: CloudOpsFlags): CloudOpsSpec | undefined {
  if (!flags.cloudLogging && !flags.cloudMetrics) {
    if (flags.serviceAccount !== undefined) {
      throw new UniproveError('E_USAGE', {
        message: '--service-account goes with --cloud-logging or --cloud-metrics',
        hint: 'Add --cloud-logging (the console to Cloud Logging) or --cloud-metrics (memory to Cloud Monitoring).',
      });
    }
    return undefined;
  }
  const account = flags.serviceAccount ?? 'default';
  if (account !== 'default' && !/^[^@\s]+@[^@\s]+\.[a-z]+$/.test(account)) {
    throw new UniproveError('E_USAGE', {
      message: `--service-account ${account} is not a service account email (or "default")`,
      hint: 'For example --service-account prover@my-project.iam.gserviceaccount.com; `gcloud iam service-accounts list` shows them.',
    });
  }
  return {
    logging: Boolean(flags.cloudLogging),
    metrics: Boolean(flags.cloudMetrics),
    serviceAccount: account,
  };
}

/** The dry run's words on the cloud-side setup: what the image and the instance get, and what the account needs. */
export function cloudOpsLines(spec: CloudOpsSpec): string[] {
  const plan = cloudOpsPlan(spec);
  return [
    '',
    `Cloud-side ${[spec.logging ? 'logging' : '', spec.metrics ? 'metrics' : ''].filter(Boolean).join(' and ')}: the image gets Klibs ${plan.klibs.join(', ')} and ManifestPassthrough ${JSON.stringify(plan.manifestPassthrough)};`,
    `  the instance runs as ${spec.serviceAccount} with scopes ${plan.serviceAccounts[0]?.scopes.join(', ')};`,
    `  that account needs ${plan.roles.join(' and ')} in the project (docs/observe.md).`,
  ];
}

/** The observing and cloud-side flags go with a recipe: with --image/--image-file they are a usage error. */
export function refuseWithoutRecipe(flags: ObserveFlags & CloudOpsFlags): void {
  const given = (
    ['metricsPort', 'metricsTextfile', 'alertUrl', 'cloudLogging', 'cloudMetrics', 'serviceAccount'] as const
  ).find((k) => flags[k] !== undefined);
  if (!given) return;
  throw new UniproveError('E_USAGE', {
    message: `--${given.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)} goes with a recipe (a run or a fleet), not with --image/--image-file`,
    hint: 'Run a recipe (`uniprove gcp run demo --metrics-textfile m.prom`): its record is what the metrics and alerts report, and its image is where the gcp klib is configured.',
  });
}
