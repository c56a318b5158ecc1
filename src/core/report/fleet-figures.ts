/**
 * A fleet's figures: one lane per input with its attempts on the fleet's time axis, the preemptions, retries and
 * zone moves between them, its attempts' phases summed, and its cost. The axis is absolute time: fleet.json keeps
 * each attempt's start and end in ms from the scheduler's start, which the attempts' own records place in time.
 */
import type { FleetRecord } from '../gcp/fleet/record.js';
import type { AttemptRecord } from '../gcp/fleet/scheduler.js';
import type { RunRecord } from '../record/record.js';
import type { EvidenceRun } from './evidence.js';
import { machineCost, round, runPhases, sumPhases } from './phases.js';
import type { AttemptFigure, FleetEventFigure, FleetFigure, SegmentFigure } from './shapes.js';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * When the scheduler started, in epoch ms: an attempt's record opens as the attempt starts, so the earliest
 * record start less its attempt's offset; the fleet's own start when no attempt has a record.
 */
function schedulerStart(fleet: FleetRecord, runs: Map<string, EvidenceRun>): number {
  const anchors = fleet.attempts.flatMap((a) => {
    const run = a.runId ? runs.get(a.runId) : undefined;
    return run ? [Date.parse(run.record.startedAt) - a.startedMs] : [];
  });
  return anchors.length ? Math.min(...anchors) : Date.parse(fleet.startedAt);
}

/**
 * The stretches of one attempt: from its record's gce.durationMs, laid back from the record's end (insert, boot
 * and prove, delete); one stretch of unknown phase when the record holds no durations (a preempted instance).
 */
function segmentsOf(start: number, end: number, record?: RunRecord): SegmentFigure[] {
  const d = record?.gce?.durationMs;
  if (!record || !d || !record.endedAt) return [{ phase: 'attempt', start: iso(start), end: iso(end) }];
  const close = Date.parse(record.endedAt);
  const deleteStart = close - d.cleanup;
  const runStart = deleteStart - d.run;
  const insertStart = runStart - d.setup;
  const t = record.timings;
  const segments: SegmentFigure[] = [{ phase: 'insert', start: iso(insertStart), end: iso(runStart) }];
  if (t.bootMs !== undefined && t.bootMs <= d.run) {
    segments.push({ phase: 'boot', start: iso(runStart), end: iso(runStart + t.bootMs) });
    segments.push({ phase: 'prove', start: iso(runStart + t.bootMs), end: iso(deleteStart) });
  } else segments.push({ phase: 'prove', start: iso(runStart), end: iso(deleteStart) });
  segments.push({ phase: 'delete', start: iso(deleteStart), end: iso(close) });
  return segments;
}

function attemptFigure(a: AttemptRecord, origin: number, runs: Map<string, EvidenceRun>): AttemptFigure {
  const run = a.runId ? runs.get(a.runId) : undefined;
  const start = origin + a.startedMs;
  const end = origin + a.endedMs;
  return {
    attempt: a.attempt,
    zone: a.zone,
    kind: a.kind,
    start: iso(start),
    end: iso(end),
    instanceSeconds: round(a.instanceSeconds, 3),
    runId: a.runId ?? null,
    record: run?.path ?? null,
    segments: a.kind === 'capacity' ? [] : segmentsOf(start, end, run?.record),
    error: a.error ?? null,
  };
}

/** Preemptions, retries and zone moves of one input, from its attempts in the order they started. */
function eventsOf(input: number, attempts: AttemptFigure[]): FleetEventFigure[] {
  const events: FleetEventFigure[] = [];
  attempts.forEach((a, i) => {
    const before = attempts[i - 1];
    if (a.kind === 'preempted') {
      events.push({ kind: 'preemption', input, at: a.end, detail: `instance preempted in ${a.zone}` });
    }
    if (!before) return;
    if (before.zone !== a.zone) {
      const why =
        before.kind === 'capacity'
          ? ` (${before.error?.message.match(/[A-Z_]{8,}/)?.[0] ?? 'capacity'})`
          : '';
      events.push({ kind: 'zone-move', input, at: a.start, detail: `${before.zone} → ${a.zone}${why}` });
    }
    if (a.attempt > before.attempt) {
      events.push({ kind: 'retry', input, at: a.start, detail: `attempt ${a.attempt} after ${before.kind}` });
    }
  });
  return events;
}

/** One fleet's figures; `runs` holds every record read, by run id. */
export function fleetFigure(
  evidence: { record: FleetRecord; path: string },
  runs: Map<string, EvidenceRun>,
): FleetFigure {
  const f = evidence.record;
  const origin = schedulerStart(f, runs);
  const attempts = [...f.attempts].sort((a, b) => a.startedMs - b.startedMs || a.index - b.index);
  const lanes = f.runs.map((input) => {
    const mine = attempts.filter((a) => a.index === input.index).map((a) => attemptFigure(a, origin, runs));
    return { input: input.index, args: input.args, outcome: input.outcome, attempts: mine };
  });
  const records = attempts.flatMap((a) => {
    const run = a.runId ? runs.get(a.runId) : undefined;
    return run ? [run.record] : [];
  });
  const costOf = (list: AttemptRecord[]) =>
    list.reduce<number | null>((sum, a) => {
      const usd = machineCost(f.machineType, f.spot, a.instanceSeconds);
      return sum === null || usd === null ? null : round(sum + usd);
    }, 0);
  const billed = f.attempts.filter((a) => a.instanceSeconds > 0);
  const estimated = costOf(billed);
  const preempted = costOf(billed.filter((a) => a.kind === 'preempted'));
  return {
    id: f.id,
    record: evidence.path,
    startedAt: f.startedAt,
    scheduledAt: iso(origin),
    machineType: f.machineType,
    spot: f.spot,
    inputs: f.inputs,
    succeeded: f.succeeded,
    failed: f.failed,
    retried: f.retried,
    wallSeconds: f.wallSeconds,
    zones: f.zones,
    setupMs: Math.max(0, Math.round(origin - Date.parse(f.startedAt))),
    phasesMs: sumPhases(records.map(runPhases)),
    cost: {
      estimatedUsd: estimated,
      recordedUsd: f.estimatedCostUsd,
      spentUsd: null,
      perProofUsd: estimated === null || f.succeeded === 0 ? null : round(estimated / f.succeeded),
      preemptedUsd: preempted,
      instanceHours: round(f.instanceHours),
      basis: `${round(f.instanceHours * 3600, 1)} instance-seconds (fleet.json attempts) of ${f.machineType}${f.spot ? ' Spot' : ''}, each attempt billed a minute at least, at the price table of ${f.prices.date} (fleet.json's estimatedCostUsd, rounded to cents: ${f.estimatedCostUsd === null ? 'none' : `$${f.estimatedCostUsd}`}); per proof: over ${f.succeeded} proofs`,
    },
    lanes,
    events: lanes
      .flatMap((l) => eventsOf(l.input, l.attempts))
      .sort((a, b) => a.at.localeCompare(b.at) || a.input - b.input),
  };
}
