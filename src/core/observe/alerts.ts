/**
 * Alerts (`--alert-url`): one JSON message per failed input (or failed single run) and one when a fleet or
 * batch ends, posted to a Slack-compatible webhook (`{"text": ...}` plus structured fields).
 *
 * An alert never fails the run and never holds its end for long: each post has a short timeout and a few
 * retries with backoff, messages are sent as they come (not awaited by the work), and `close` waits for what is
 * still in flight only until a deadline, then gives up and says so in its report. Nothing credential-like leaves:
 * every message is scrubbed of the secret values the caller names (credential-like environment values, the
 * fields of a service-account key file) and of anything shaped like a key, token or password.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { UniproveError } from '../errors.js';
import type { FleetResult } from '../gcp/fleet/scheduler.js';
import type { RunRecord } from '../record/record.js';

/** What an alert is about. */
export type AlertKind = 'input-failed' | 'run-failed' | 'batch-ended' | 'fleet-ended';

/** The message posted: Slack's `text`, and the facts as fields. */
export interface AlertMessage {
  text: string;
  kind: AlertKind;
  prover: string;
  /** The run's outcome (failed, timeout, error...) or, at a batch's end, `succeeded` / `failed`. */
  outcome: string;
  runId?: string;
  /** The input's line (0-based) in the inputs file. */
  input?: number;
  fleetId?: string;
  /** runs/<id>/record.json, or runs/<fleet-id>/fleet.json at a fleet's end. */
  record?: string;
  error?: { code: string; message: string; hint?: string };
  findings?: { code: string; message: string; fix: string }[];
  summary?: Record<string, number>;
  estimatedCostUsd?: number | null;
}

/** Validate an alert URL (http or https, nothing else); `source` names where it came from. */
export function parseAlertUrl(text: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new UniproveError('E_USAGE', {
      message: `${source} ${JSON.stringify(text)} is not a URL`,
      hint: 'Give the full webhook address, e.g. --alert-url https://hooks.slack.com/services/T000/B000/XXXX.',
      cause: error,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UniproveError('E_USAGE', {
      message: `${source} must be an http or https URL, not ${url.protocol.replace(/:$/, '')}:`,
      hint: 'Give an http:// or https:// webhook address (a Slack incoming webhook, or any receiver of JSON POSTs).',
    });
  }
  return url;
}

/** Environment variable names whose values are secrets. */
const SECRET_NAME =
  /(TOKEN|SECRET|PASSW|PASSWD|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY|AUTH|COOKIE|SESSION)/i;
/** Fields of a Google credentials file (service-account key, authorized user) that are secrets. */
const KEY_FILE_FIELDS = ['private_key', 'private_key_id', 'client_secret', 'refresh_token', 'client_id'];

/**
 * The secret values to scrub, from an environment: credential-like variables' values, and the secret fields of
 * the file GOOGLE_APPLICATION_CREDENTIALS names (unreadable: none from it).
 */
export async function secretsOf(env: Record<string, string | undefined>): Promise<string[]> {
  const secrets: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value && value.length >= 6 && SECRET_NAME.test(name)) secrets.push(value);
  }
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile) {
    try {
      const key = JSON.parse(await readFile(keyFile, 'utf8')) as Record<string, unknown>;
      for (const field of KEY_FILE_FIELDS) {
        const v = key[field];
        if (typeof v === 'string' && v.length >= 6) {
          secrets.push(v);
          // The PEM's lines one by one too: a message may quote a line of it.
          for (const line of v.split('\n'))
            if (line.length >= 16 && !line.startsWith('-----')) secrets.push(line);
        }
      }
    } catch {
      // Not JSON or not readable: nothing of it can be quoted by uniprove either.
    }
  }
  return [...new Set(secrets)].sort((a, b) => b.length - a.length);
}

/** Patterns of credentials whatever their source. */
const PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[private key]'],
  [
    /"(private_key|private_key_id|client_secret|refresh_token|access_token)"\s*:\s*"[^"]*"/g,
    '"$1":"[redacted]"',
  ],
  [/\bya29\.[\w.-]+/g, '[token]'],
  [/\b(Bearer|Basic)\s+[\w.~+/=-]{8,}/gi, '$1 [redacted]'],
  [/\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{30,})/g, '[token]'],
  [/([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi, '$1[redacted]@'],
  [/([?&](?:token|key|secret|password|sig|signature|access_token)=)[^&\s"]+/gi, '$1[redacted]'],
];

/** `text` with every secret value and credential-shaped string replaced. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[redacted]');
  for (const [re, by] of PATTERNS) out = out.replace(re, by);
  return out;
}

/** Scrub every string of a JSON value. */
function scrubValue(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return scrub(value, secrets);
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, secrets));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v, secrets)]));
  return value;
}

export interface AlerterOptions {
  url: URL;
  /** Secret values to scrub (secretsOf). */
  secrets: string[];
  /** One post's limit (default 3 s). */
  timeoutMs?: number;
  /** Posts after the first on a failure (default 3). */
  retries?: number;
  /** Backoff before the first retry, doubling (default 250 ms). */
  backoffMs?: number;
}

/** What became of the alerts. */
export interface AlertReport {
  sent: number;
  failed: { kind: AlertKind; reason: string }[];
}

/** Posts alerts; `send` never throws nor waits; `close` waits until a deadline and reports. */
export interface Alerter {
  send(message: AlertMessage): void;
  close(deadlineMs?: number): Promise<AlertReport>;
}

/** An alerter for one command. */
export function createAlerter(options: AlerterOptions): Alerter {
  const agent = new Agent({ connect: { timeout: options.timeoutMs ?? 3000 }, keepAliveTimeout: 1000 });
  const stop = new AbortController();
  const report: AlertReport = { sent: 0, failed: [] };
  const pending = new Set<Promise<void>>();
  const timeoutMs = options.timeoutMs ?? 3000;
  const retries = options.retries ?? 3;
  const backoffMs = options.backoffMs ?? 250;
  // The receiver's address never goes into a report: a webhook URL is itself a secret.
  const secrets = [...options.secrets, options.url.href, options.url.pathname].filter((s) => s.length > 1);

  const post = async (message: AlertMessage): Promise<void> => {
    const body = JSON.stringify(scrubValue(message, options.secrets));
    let reason = '';
    for (let i = 0; i <= retries && !stop.signal.aborted; i++) {
      if (i > 0) {
        const wait = backoffMs * 2 ** (i - 1);
        const ok = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(true), wait);
          t.unref();
          stop.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t);
              resolve(false);
            },
            { once: true },
          );
        });
        if (!ok) break;
      }
      try {
        const res = await request(options.url, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', 'user-agent': 'uniprove-alerts' },
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]),
        });
        await res.body.dump().catch(() => {});
        if (res.statusCode >= 200 && res.statusCode < 300) {
          report.sent++;
          return;
        }
        reason = `HTTP ${res.statusCode}`;
        // A 4xx other than 408/429 will not change on a retry.
        if (res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429) break;
      } catch (error) {
        reason = scrub((error as Error).message || String(error), secrets);
      }
    }
    report.failed.push({
      kind: message.kind,
      reason: stop.signal.aborted && !reason ? 'gave up at the deadline' : reason,
    });
  };

  return {
    send(message) {
      const p = post(message).catch(() => {});
      pending.add(p);
      void p.finally(() => pending.delete(p));
    },
    async close(deadlineMs = 5000) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), deadlineMs);
      });
      const all = Promise.all([...pending]).then(() => 'done' as const);
      const how = await Promise.race([all, deadline]);
      clearTimeout(timer);
      if (how === 'late') {
        const left = pending.size;
        stop.abort();
        await Promise.race([all, new Promise((r) => setTimeout(r, 200).unref())]);
        if (report.failed.length === 0 && left > 0)
          report.failed.push({
            kind: 'run-failed',
            reason: `${left} still unsent at the ${deadlineMs} ms deadline`,
          });
      }
      await agent.destroy().catch(() => {});
      return report;
    },
  };
}

/** The alert of a run that did not succeed (an input of a fleet or batch, or a single run), from its record. */
export function runAlert(
  record: Pick<
    RunRecord,
    'id' | 'dir' | 'prover' | 'outcome' | 'error' | 'findings' | 'exitCode' | 'exitReason' | 'fleet'
  >,
  context: { kind: 'input-failed' | 'run-failed'; input?: number },
): AlertMessage {
  const findings = (record.findings ?? []).map((f) => ({ code: f.kind, message: f.message, fix: f.fix }));
  const why =
    record.error?.message ??
    record.exitReason ??
    (record.exitCode !== null ? `exit status ${record.exitCode}` : '');
  const where = context.input !== undefined ? `input ${context.input + 1}` : 'run';
  return {
    text: `uniprove: ${record.prover} ${where} ${record.outcome}${why ? `: ${why}` : ''} (run ${record.id}, record ${record.dir}/record.json)${findings[0] ? `\nfix: ${findings[0].fix}` : ''}`,
    kind: context.kind,
    prover: record.prover,
    outcome: record.outcome,
    runId: record.id,
    ...(context.input !== undefined ? { input: context.input } : {}),
    ...(record.fleet ? { fleetId: record.fleet.id } : {}),
    record: `${record.dir}/record.json`,
    ...(record.error ? { error: record.error } : {}),
    ...(findings.length ? { findings } : {}),
  };
}

/** The alert of an input that ended without a record (an error before its run had one). */
export function inputErrorAlert(options: {
  prover: string;
  input: number;
  outcome: string;
  error?: { code: string; message: string; hint?: string };
  /** What the fleet's progress said of the attempt, when there is no error summary. */
  detail?: string | undefined;
  fleetId?: string;
  runId?: string;
  dir?: string;
}): AlertMessage {
  const why = options.error ? `${options.error.code} ${options.error.message}` : options.detail;
  return {
    text: `uniprove: ${options.prover} input ${options.input + 1} ${options.outcome}${why ? `: ${why}` : ''}${options.dir ? ` (record ${options.dir}/record.json)` : ''}`,
    kind: 'input-failed',
    prover: options.prover,
    outcome: options.outcome,
    input: options.input,
    ...(options.runId ? { runId: options.runId } : {}),
    ...(options.fleetId ? { fleetId: options.fleetId } : {}),
    ...(options.dir ? { record: `${options.dir}/record.json` } : {}),
    ...(options.error ? { error: options.error } : {}),
  };
}

/** The alert of a single run that ended in an error (no outcome of its own), with its record folder if it had one. */
export function runErrorAlert(
  prover: string,
  error: { code: string; message: string; hint?: string },
  runDir?: string,
): AlertMessage {
  return {
    text: `uniprove: ${prover} run error: ${error.code} ${error.message}${runDir ? ` (record ${runDir}/record.json)` : ''}`,
    kind: 'run-failed',
    prover,
    outcome: error.code === 'E_INTERRUPTED' ? 'interrupted' : 'error',
    ...(runDir ? { runId: runDir.replace(/^.*\//, ''), record: `${runDir}/record.json` } : {}),
    error,
  };
}

/** The alert at a fleet's end: its summary, cost and record. */
export function fleetEndAlert(
  fleet: FleetResult,
  options: { prover: string; recordPath: string; costUsd: number | null },
): AlertMessage {
  const s = fleet.summary;
  const ok = s.succeeded === s.total;
  return {
    text: `uniprove: fleet ${fleet.fleetId} of ${options.prover} ended: ${s.succeeded} of ${s.total} proofs, ${s.failed} failed, ${s.error} errors, ${s.retried} retried${s.interrupted ? `, ${s.interrupted} interrupted` : ''}${options.costUsd !== null ? `, about $${options.costUsd.toFixed(2)}` : ''} (record ${options.recordPath})`,
    kind: 'fleet-ended',
    prover: options.prover,
    outcome: ok ? 'succeeded' : fleet.interrupted ? 'interrupted' : 'failed',
    fleetId: fleet.fleetId,
    record: options.recordPath,
    summary: { ...s },
    estimatedCostUsd: options.costUsd,
  };
}

/** The alert at a local batch's end (`run --parallel`). */
export function batchEndAlert(
  summary: Record<string, number> & { total: number; succeeded: number },
  prover: string,
): AlertMessage {
  const ok = summary.succeeded === summary.total;
  return {
    text: `uniprove: batch of ${prover} ended: ${summary.succeeded} of ${summary.total} runs succeeded${Object.entries(
      summary,
    )
      .filter(([k, v]) => k !== 'total' && k !== 'succeeded' && v > 0)
      .map(([k, v]) => `, ${v} ${k}`)
      .join('')}`,
    kind: 'batch-ended',
    prover,
    outcome: ok ? 'succeeded' : (summary.interrupted ?? 0) > 0 ? 'interrupted' : 'failed',
    summary: { ...summary },
  };
}
