/**
 * The run record: runs/<id>/record.json (written atomically, rewritten as the
 * run goes), and one line per run in runs/proving_report.csv, as operators keep.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../fs.js';
import type { Finding } from './findings.js';

export const RECORD_FILE = 'record.json';
export const REPORT_CSV = 'proving_report.csv';
/** The machine's console, in every run folder. */
export const CONSOLE_LOG = 'console.log';

/** How a guest's CPU is run: KVM, or QEMU's software emulation. */
export type Accel = 'kvm' | 'tcg';

/** How a run ended. */
export type RunOutcome =
  /** The prover exited 0. */
  | 'succeeded'
  /** The prover exited non-zero. */
  | 'failed'
  /** It was still running at the timeout and was killed. */
  | 'timeout'
  /** It ended but its exit status could not reach the host (plain `ops run`). */
  | 'unknown'
  /** uniprove could not run it (bad input, a missing tool, QEMU failed). */
  | 'error'
  /** Ctrl-C. */
  | 'interrupted';

export interface RunTimings {
  /** ops build, or copying the cached image. */
  imageBuildMs?: number;
  /** QEMU's start to the first console line. */
  bootMs?: number;
  /** The first console line to QEMU's exit. */
  proverMs?: number;
  /** uniprove's start to the first console line (what bench/run-vs-ops compares). */
  firstConsoleLineMs?: number;
  totalMs?: number;
}

export interface RunProof {
  /** Where the proof is in the record folder (relative to it). */
  path: string;
  sha256: string;
  bytes: number;
  /** Where it came from: a guest path, or `console`. */
  source: string;
}

export interface RunWarning {
  code: string;
  message: string;
}

/** Everything a run keeps about itself, in record.json. */
export interface RunRecord {
  id: string;
  dir: string;
  prover: string;
  package?: string;
  args: string[];
  /** qemu and ops: this host; gce: a Compute Engine instance (`uniprove gcp run`). */
  via: 'qemu' | 'ops' | 'gce';
  /** `running` until uniprove closes it; `abandoned` when uniprove was killed first and a later command swept it. */
  outcome: RunOutcome | 'running' | 'abandoned';
  /** The uniprove process running it: a `running` record whose owner is gone on this host was abandoned. */
  owner?: { pid: number; host: string };
  /** The prover's exit status; null when unknown. */
  exitCode: number | null;
  exitReason?: string;
  /** kvm or tcg locally; gce on Compute Engine. */
  accel?: Accel | 'gce';
  accelReason?: string;
  nanosVersion?: string;
  startedAt: string;
  endedAt?: string;
  timings: RunTimings;
  timeoutSeconds?: number;
  image?: string;
  /**
   * hit: an image `ops build` made earlier from the same inputs, booted as a snapshot (nothing reads it after
   * the run) or as a copy; stored: built, and kept for next time.
   */
  imageCache?:
    | { state: 'hit'; key: string; boot: 'snapshot' | 'copy' }
    | { state: 'stored'; key: string }
    | { state: 'off'; reason: string };
  qemu?: { argv: string[]; exitCode?: number; signal?: string; stderrTail?: string };
  volumes: { label: string; path: string; guestPath: string; readOnly: boolean }[];
  proofs: RunProof[];
  files: Record<string, string>;
  findings?: Finding[];
  warnings: RunWarning[];
  error?: { code: string; message: string; hint?: string };
  /** Where a `gcp run` ran and what it made (no credentials). */
  gce?: {
    project: string;
    zone: string;
    instance: string;
    image: string;
    machineType: string;
    volumeDisk?: string;
    ended?: 'marker' | 'stopped';
    consoleLostBytes?: number;
    /** Compute Engine calls tried again after a transient error (HTTP 5xx, 429, a rate limit). */
    retries?: number;
    durationMs?: { setup: number; run: number; cleanup: number };
    deleted?: { kind: string; name: string }[];
    kept?: { kind: string; name: string }[];
  };
  /** The vCPUs asked for and used, and why they differ (a kernel with the unmap deadlock). */
  vcpus?: RunVcpus;
  /** The fleet a run is an attempt of (`gcp run --inputs`): which fleet, which input, which try. */
  fleet?: {
    /** The fleet id (`f…`): runs/<id>/fleet.json, the instances' uniprove-fleet label. */
    id: string;
    /** The input's index in fleet.json's `inputs` (0-based: the table's #1 is input 0). */
    input: number;
    /** 1 for the input's first attempt, 2 for its first retry... */
    attempt: number;
  };
}

/** The vCPUs of a run: asked (recipe, --cpus), used, and the kernel verdict that decided it. */
export interface RunVcpus {
  asked: number;
  used: number;
  /** Why used differs from asked, or why it does not where it might have. */
  reason?: string;
  /** The thread-count variables set to the count used (resources.threadVars). */
  threadVars?: string[];
  /** The kernel's unmap-deadlock verdict, asked for runs of more than one vCPU. */
  kernel?: { version: string; unmapDeadlock: boolean | 'unknown'; detail: string };
}

/**
 * The run id every machine uses: `r` + the UTC time to the millisecond + 6 random hex digits, e.g.
 * `r20250101t120000123-a1b2c3`. Fixed width, so ids sort by time; lowercase letters, digits and one hyphen, so it
 * is a Compute Engine label value and, on its own or after a prefix, a resource name ([a-z]([-a-z0-9]*[a-z0-9])?).
 */
export function newRunId(
  now = new Date(),
  random: () => string = () => randomBytes(3).toString('hex'),
): string {
  const stamp = now
    .toISOString()
    .replace(/[-:.Z]/g, '')
    .replace('T', 't');
  return `r${stamp}-${random()}`;
}

/** True when text is a run id newRunId makes. */
export function isRunId(text: string): boolean {
  return /^r\d{8}t\d{9}-[0-9a-f]{6}$/.test(text);
}

export async function writeRecord(record: RunRecord): Promise<void> {
  await writeJsonAtomic(join(record.dir, RECORD_FILE), record);
}

const CSV_HEADER = [
  'id',
  'prover',
  'args',
  'start',
  'image_build_s',
  'boot_s',
  'prover_s',
  'total_s',
  'exit_status',
  'outcome',
  'accel',
  'proofs',
  'record',
];

/** A CSV field, quoted when it needs to be (RFC 4180). */
export function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

const secs = (ms: number | undefined) => (ms === undefined ? '' : (ms / 1000).toFixed(3));

/** The CSV line for a finished run. */
export function reportLine(record: RunRecord): string {
  return [
    record.id,
    record.prover,
    record.args.join(' '),
    record.startedAt,
    secs(record.timings.imageBuildMs),
    secs(record.timings.bootMs),
    secs(record.timings.proverMs),
    secs(record.timings.totalMs),
    record.exitCode === null ? '' : String(record.exitCode),
    record.outcome,
    record.accel ?? '',
    record.proofs.map((p) => `${p.path}=sha256:${p.sha256}`).join(';'),
    record.dir,
  ]
    .map(csvField)
    .join(',');
}

/**
 * Append a run's line to <runsRoot>/proving_report.csv, writing the header
 * when the file is new. One appendFile per line: lines from parallel runs do not interleave.
 */
export async function appendReport(runsRoot: string, record: RunRecord): Promise<string> {
  await mkdir(runsRoot, { recursive: true });
  const path = join(runsRoot, REPORT_CSV);
  // Create it with the header only if it does not exist (O_EXCL), so parallel runs write one header.
  try {
    const fh = await open(path, 'wx');
    await fh.writeFile(`${CSV_HEADER.join(',')}\n`);
    await fh.close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // A file cut mid-line (a full disk, an edit) gets a newline first, in the same append: the new line is never
  // glued to the last one. An empty file gets the header.
  const last = await lastByte(path);
  const before = last === undefined ? `${CSV_HEADER.join(',')}\n` : last === 0x0a ? '' : '\n';
  await appendFile(path, `${before}${reportLine(record)}\n`);
  return path;
}

/** The last byte of a file, undefined when it is empty. */
async function lastByte(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) return undefined;
    const buffer = Buffer.alloc(1);
    await fh.read(buffer, 0, 1, size - 1);
    return buffer[0];
  } finally {
    await fh.close();
  }
}

/**
 * Close a run's record: outcome, end time and total, written atomically, and its line in proving_report.csv.
 * A line that cannot be written is a `report-not-written` warning that keeps the line, in the record.
 */
export async function finishRecord(
  record: RunRecord,
  outcome: RunOutcome,
  options: { runsDir: string; startedAt: number; noReport?: boolean | undefined },
): Promise<void> {
  record.outcome = outcome;
  record.endedAt = new Date().toISOString();
  record.timings.totalMs = Math.round(performance.now() - options.startedAt);
  if (!options.noReport) {
    try {
      await appendReport(options.runsDir, record);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      record.warnings.push({
        code: 'report-not-written',
        message: `the line of this run could not be added to ${join(options.runsDir, REPORT_CSV)} (${reason}); it is kept here: ${reportLine(record)}`,
      });
    }
  }
  await writeRecord(record);
}
