/** The shapes of a report's figures: what `uniprove report --json` prints and the charts draw. */
import type { FleetRecord } from '../gcp/fleet/record.js';
import type { RunRecord } from '../record/record.js';
import type { EvidenceSkip } from './evidence.js';
import type { Phase, PhaseMs } from './phases.js';

/** Which runs a report covers. */
export interface ReportFilter {
  /** Runs started at or after this time. */
  since?: Date;
  /** Runs of this prover (recipe or package name). */
  prover?: string;
  /** Only this fleet and its attempts. */
  fleet?: string;
}

/** A cost and how it was worked out. */
export interface CostFigure {
  /** The price table's rate times the seconds billed (a minute at least); null where no price applies. */
  estimatedUsd: number | null;
  /** What was billed: no record holds it (Compute Engine's billing export is not read), so null. */
  spentUsd: number | null;
  basis: string;
}

/** One run. */
export interface RunFigure {
  id: string;
  prover: string;
  via: RunRecord['via'];
  outcome: RunRecord['outcome'];
  exitCode: number | null;
  startedAt: string;
  endedAt: string | null;
  args: string[];
  /** Its record.json, relative to the runs folder. */
  record: string;
  fleet: { id: string; input: number; attempt: number } | null;
  proofs: number;
  phasesMs: PhaseMs;
  totalMs: number | null;
  /** Phases the record holds no figure for. */
  missingPhases: Phase[];
  cost: CostFigure;
  error: { code: string; message: string; hint: string | null } | null;
}

/** A finding of a failed run, with its fix. */
export interface FindingFigure {
  kind: string;
  severity: string;
  name: string;
  message: string;
  fix: string;
}

/** A run that did not succeed. */
export interface FailureFigure {
  id: string;
  prover: string;
  outcome: RunRecord['outcome'];
  exitCode: number | null;
  startedAt: string;
  record: string;
  error: RunFigure['error'];
  findings: FindingFigure[];
}

/** One stretch of an attempt on the fleet's time axis. */
export interface SegmentFigure {
  phase: 'insert' | 'boot' | 'prove' | 'delete' | 'attempt';
  start: string;
  end: string;
}

/** One attempt of an input. */
export interface AttemptFigure {
  attempt: number;
  zone: string;
  /** How it ended: succeeded, failed, preempted, capacity, error, interrupted. */
  kind: string;
  start: string;
  end: string;
  instanceSeconds: number;
  runId: string | null;
  record: string | null;
  segments: SegmentFigure[];
  error: { code: string; message: string } | null;
}

/** Something that happened to an input between its attempts. */
export interface FleetEventFigure {
  kind: 'preemption' | 'retry' | 'zone-move';
  input: number;
  at: string;
  detail: string;
}

/** One fleet. */
export interface FleetFigure {
  id: string;
  record: string;
  startedAt: string;
  /** When its first instance was asked for (the scheduler's start, read off its attempts' records). */
  scheduledAt: string;
  machineType: string;
  spot: boolean;
  inputs: number;
  succeeded: number;
  failed: number;
  retried: number;
  wallSeconds: number;
  zones: FleetRecord['zones'];
  /** Before the first instance: packaging, image builds and imports (scheduledAt − startedAt). */
  setupMs: number;
  /** Its attempts' phases, summed. */
  phasesMs: PhaseMs;
  cost: CostFigure & {
    /** fleet.json's estimatedCostUsd (the same price table, rounded to cents). */
    recordedUsd: number | null;
    perProofUsd: number | null;
    /** What its preempted attempts cost: paid for, no proof. */
    preemptedUsd: number | null;
    instanceHours: number;
  };
  lanes: { input: number; args: string[]; outcome: string; attempts: AttemptFigure[] }[];
  /** Every input's events, in the order they happened. */
  events: FleetEventFigure[];
}

/** verify's figures of one package. */
export interface VerifyFigure {
  package: string;
  provers: string[];
  cpuSeconds: number;
  userSeconds: number;
  sysSeconds: number;
  peakMemoryMiB: number;
  suggestedMemory: string;
  measuredAt: string;
}

/** Everything a report shows; `uniprove report --json` prints it. */
export interface ReportFigures {
  runsDir: string;
  filter: { since: string | null; prover: string | null; fleet: string | null };
  totals: {
    runs: number;
    succeeded: number;
    notSucceeded: number;
    /** Fleet attempts that did not succeed but whose input did, on a later attempt (not in failures). */
    recovered: number;
    fleets: number;
    proofs: number;
  };
  runs: RunFigure[];
  failures: FailureFigure[];
  fleets: FleetFigure[];
  verify: VerifyFigure[];
  prices: { date: string; region: string; source: string };
  /** What the records do not hold, in words. */
  notes: string[];
  skipped: EvidenceSkip[];
}
