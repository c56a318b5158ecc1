/**
 * The figures of a report, computed from the evidence alone: per run its phases and cost, the failures with
 * their findings, per fleet its lanes of attempts on a time axis and its summed phases, and verify's CPU time and
 * peak memory. What a record does not hold is null and named in `notes`, never guessed. This is also what
 * `uniprove report --json` prints: its shape is the --json contract of the command.
 */

import { PRICE_TABLE } from '../cloud/prices.js';
import type { FleetRecord } from '../gcp/fleet/record.js';
import type { AttemptRecord } from '../gcp/fleet/scheduler.js';
import type { RunRecord } from '../record/record.js';
import type { Evidence } from './evidence.js';
import { fleetFigure } from './fleet-figures.js';
import { machineCost, missingPhases, PHASE_SOURCES, type Phase, round, runPhases } from './phases.js';
import type {
  CostFigure,
  FailureFigure,
  FleetFigure,
  ReportFigures,
  ReportFilter,
  RunFigure,
  VerifyFigure,
} from './shapes.js';

export { PHASE_SOURCES, PHASES, type Phase, type PhaseMs, runPhases, sumPhases } from './phases.js';

export type * from './shapes.js';

function runCost(record: RunRecord, attempt: AttemptRecord | undefined, fleet?: FleetRecord): CostFigure {
  if (record.via !== 'gce' || !record.gce) {
    return { estimatedUsd: null, spentUsd: null, basis: 'this host (no cloud charge)' };
  }
  if (attempt && fleet) {
    return {
      estimatedUsd: machineCost(fleet.machineType, fleet.spot, attempt.instanceSeconds),
      spentUsd: null,
      basis: `${round(attempt.instanceSeconds, 1)} instance-seconds (fleet.json attempts) of ${fleet.machineType}${fleet.spot ? ' Spot' : ''} at the price table's rate`,
    };
  }
  const d = record.gce.durationMs;
  if (!d) return { estimatedUsd: null, spentUsd: null, basis: 'the record holds no instance time' };
  const seconds = (d.setup + d.run + d.cleanup) / 1000;
  return {
    estimatedUsd: machineCost(record.gce.machineType, false, seconds),
    spentUsd: null,
    basis: `${round(seconds, 1)} s (gce.durationMs setup + run + cleanup) of ${record.gce.machineType} at the on-demand rate (the record does not say whether it was Spot)`,
  };
}

function fleetAttemptOf(fleets: FleetRecord[], record: RunRecord) {
  const fleet = record.fleet && fleets.find((f) => f.id === record.fleet?.id);
  const attempt = fleet?.attempts.find((a) => a.runId === record.id);
  return { fleet: fleet || undefined, attempt };
}

function runFigure(run: { record: RunRecord; path: string }, fleets: FleetRecord[]): RunFigure {
  const r = run.record;
  const phasesMs = runPhases(r);
  const { fleet, attempt } = fleetAttemptOf(fleets, r);
  return {
    id: r.id,
    prover: r.prover,
    via: r.via,
    outcome: r.outcome,
    exitCode: r.exitCode,
    startedAt: r.startedAt,
    endedAt: r.endedAt ?? null,
    args: r.args,
    record: run.path,
    fleet: r.fleet ?? null,
    proofs: r.proofs.length,
    phasesMs,
    totalMs: r.timings.totalMs ?? null,
    missingPhases: missingPhases(phasesMs),
    cost: runCost(r, attempt, fleet),
    error: r.error ? { code: r.error.code, message: r.error.message, hint: r.error.hint ?? null } : null,
  };
}

function failureFigure(run: RunFigure, record: RunRecord): FailureFigure {
  return {
    id: run.id,
    prover: run.prover,
    outcome: run.outcome,
    exitCode: run.exitCode,
    startedAt: run.startedAt,
    record: run.record,
    error: run.error,
    findings: (record.findings ?? []).map((f) => ({
      kind: f.kind,
      severity: f.severity,
      name: f.name,
      message: f.message,
      fix: f.fix,
    })),
  };
}

/**
 * A fleet attempt whose input went on to succeed (an insert a zone refused, a preempted instance): the fleet's
 * timeline shows it; the failures list is for what did not end well.
 */
function recovered(run: RunFigure, fleets: FleetRecord[]): boolean {
  if (!run.fleet) return false;
  const input = fleets.find((f) => f.id === run.fleet?.id)?.runs.find((i) => i.index === run.fleet?.input);
  return input?.outcome === 'succeeded' && input.runId !== run.id;
}

/** Whether a run passes the filter (a fleet's attempts pass --fleet; --since by its start). */
function keepRun(record: RunRecord, filter: ReportFilter): boolean {
  if (filter.since && Date.parse(record.startedAt) < filter.since.getTime()) return false;
  if (filter.prover && record.prover !== filter.prover) return false;
  if (filter.fleet && record.fleet?.id !== filter.fleet) return false;
  return true;
}

function keepFleet(fleet: FleetRecord, provers: Map<string, string>, filter: ReportFilter): boolean {
  if (filter.since && Date.parse(fleet.startedAt) < filter.since.getTime()) return false;
  if (filter.fleet && fleet.id !== filter.fleet) return false;
  if (filter.prover) {
    const ids = fleet.attempts.map((a) => a.runId).filter(Boolean) as string[];
    if (!ids.some((id) => provers.get(id) === filter.prover)) return false;
  }
  return true;
}

function verifyFigures(evidence: Evidence, runs: RunRecord[]): VerifyFigure[] {
  return evidence.usage
    .filter((u) => runs.some((r) => r.package === u.package))
    .map((u) => ({
      package: u.package,
      provers: [...new Set(runs.filter((r) => r.package === u.package).map((r) => r.prover))],
      cpuSeconds: round(u.usage.cpuMs / 1000, 3),
      userSeconds: round(u.usage.userMs / 1000, 3),
      sysSeconds: round(u.usage.sysMs / 1000, 3),
      peakMemoryMiB: round(u.usage.maxRssBytes / (1024 * 1024), 1),
      suggestedMemory: u.usage.suggestedMemory,
      measuredAt: u.measuredAt,
    }));
}

function notesOf(runs: RunFigure[], fleets: FleetFigure[], verify: VerifyFigure[]): string[] {
  const notes: string[] = [];
  const missing = new Map<Phase, number>();
  for (const run of runs) for (const p of run.missingPhases) missing.set(p, (missing.get(p) ?? 0) + 1);
  for (const [p, n] of missing) {
    notes.push(
      `${n} of ${runs.length} runs hold no figure for ${PHASE_SOURCES[p].label} (${PHASE_SOURCES[p].source}): shown as missing, not as zero.`,
    );
  }
  notes.push(
    'Packaging is not timed apart from the checks before the machine starts; "package & check" is the time from uniprove\'s start to the machine\'s start, less the image build and instance insert.',
  );
  if (runs.some((r) => r.via === 'gce') || fleets.length) {
    notes.push(
      "Spent cost: no record holds a billed amount (Compute Engine's billing export is not read); the costs shown are estimates from the price table.",
    );
  }
  if (verify.length === 0) {
    notes.push(
      "No package these runs were made from holds verify's figures (<package>/.uniprove/verify/rusage.json): run `uniprove verify <package>` to measure CPU time and peak memory.",
    );
  }
  return notes;
}

/** The report's figures from the evidence, narrowed by the filter. */
export function computeFigures(evidence: Evidence, filter: ReportFilter = {}): ReportFigures {
  const provers = new Map(evidence.runs.map((r) => [r.record.id, r.record.prover]));
  const fleetRecords = evidence.fleets.filter((f) => keepFleet(f.record, provers, filter));
  const kept = evidence.runs.filter((r) => keepRun(r.record, filter));
  const all = evidence.fleets.map((f) => f.record);
  const runs = kept.map((r) => runFigure(r, all));
  const byId = new Map(kept.map((r) => [r.record.id, r.record]));
  const failures = runs
    .filter((r) => r.outcome !== 'succeeded' && r.outcome !== 'running' && !recovered(r, all))
    .map((r) => failureFigure(r, byId.get(r.id) as RunRecord));
  const fleets = fleetRecords.map((f) => fleetFigure(f, new Map(evidence.runs.map((r) => [r.record.id, r]))));
  const verify = verifyFigures(
    evidence,
    kept.map((r) => r.record),
  );
  return {
    runsDir: evidence.runsDir,
    filter: {
      since: filter.since?.toISOString() ?? null,
      prover: filter.prover ?? null,
      fleet: filter.fleet ?? null,
    },
    totals: {
      runs: runs.length,
      succeeded: runs.filter((r) => r.outcome === 'succeeded').length,
      notSucceeded: runs.filter((r) => r.outcome !== 'succeeded').length,
      recovered: runs.filter((r) => r.outcome !== 'succeeded' && recovered(r, all)).length,
      fleets: fleets.length,
      proofs: runs.reduce((n, r) => n + r.proofs, 0),
    },
    runs,
    failures,
    fleets,
    verify,
    prices: { date: PRICE_TABLE.date, region: PRICE_TABLE.region, source: PRICE_TABLE.source },
    notes: notesOf(runs, fleets, verify),
    skipped: evidence.skipped,
  };
}
