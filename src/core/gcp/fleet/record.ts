/**
 * The fleet's summary record (`runs/<fleet-id>/fleet.json`), its id, the
 * error a fleet that did not finish ends with, and its progress events in
 * the form the CLI's renderers take (listr2/plain lines, NDJSON).
 */
import { join } from 'node:path';
import { costOfUsage, PRICE_TABLE } from '../../cloud/prices.js';
import { UniproveError } from '../../errors.js';
import { writeJsonAtomic } from '../../fs.js';
import type { ProgressEvent } from '../../progress.js';
import { newRunId } from '../../record/record.js';
import type { FleetEvent, FleetResult } from './scheduler.js';

/** A fresh fleet id, like a run id with an `f` (a label value: `uniprove-fleet=<id>`). */
export function newFleetId(now = new Date(), random?: () => string): string {
  return newRunId(now, random).replace(/^r/, 'f');
}

/** What runs/<fleet-id>/fleet.json holds. */
export interface FleetRecord {
  id: string;
  startedAt: string;
  machineType: string;
  spot: boolean;
  parallel: number;
  zones: { asked: string[]; used: string[]; left: string[] };
  inputs: number;
  succeeded: number;
  failed: number;
  /** Preempted attempts retried on a new instance. */
  retried: number;
  wallSeconds: number;
  instanceHours: number;
  vcpuHours: number;
  /** From the price table (null when the machine's family is not in it). */
  estimatedCostUsd: number | null;
  prices: { date: string; region: string; source: string };
  interrupted: FleetResult['interrupted'];
  summary: FleetResult['summary'];
  runs: FleetResult['inputs'];
  attempts: FleetResult['attempts'];
  capacityError?: { code: string; message: string };
  cleanupErrors: string[];
}

/** Build the record from a fleet's result and the machine it ran on. */
export function buildFleetRecord(
  result: FleetResult,
  spec: { machineType: string; spot: boolean; parallel: number; zones: string[]; startedAt: Date },
): FleetRecord {
  const cost = costOfUsage({
    instanceSeconds: result.attempts.filter((a) => a.instanceSeconds > 0).map((a) => a.instanceSeconds),
    machineType: spec.machineType,
    spot: spec.spot,
  });
  const s = result.summary;
  return {
    id: result.fleetId,
    startedAt: spec.startedAt.toISOString(),
    machineType: spec.machineType,
    spot: spec.spot,
    parallel: spec.parallel,
    zones: { asked: spec.zones, used: result.zones.used, left: result.zones.left },
    inputs: s.total,
    succeeded: s.succeeded,
    failed: s.total - s.succeeded,
    retried: s.retried,
    wallSeconds: result.wallMs / 1000,
    instanceHours: cost.instanceHours,
    vcpuHours: cost.vcpuHours,
    estimatedCostUsd: cost.usd,
    prices: { date: PRICE_TABLE.date, region: PRICE_TABLE.region, source: PRICE_TABLE.source },
    interrupted: result.interrupted,
    summary: s,
    runs: result.inputs,
    attempts: result.attempts,
    ...(result.capacityError ? { capacityError: result.capacityError } : {}),
    cleanupErrors: result.cleanupErrors,
  };
}

/** Write runs/<fleet-id>/fleet.json atomically; returns its path. */
export async function writeFleetRecord(runsDir: string, record: FleetRecord): Promise<string> {
  const path = join(runsDir, record.id, 'fleet.json');
  await writeJsonAtomic(path, record, { what: 'the fleet record' });
  return path;
}

/** The error a fleet that did not end well ends with (undefined when every input succeeded). */
export function fleetError(result: FleetResult): UniproveError | undefined {
  const s = result.summary;
  const details = { fleetId: result.fleetId, summary: s };
  if (result.interrupted) {
    return new UniproveError('E_INTERRUPTED', {
      message: `fleet ${result.fleetId} interrupted: ${s.succeeded} of ${s.total} proofs done`,
      hint: 'What it started was deleted; `uniprove gcp ls` shows anything left, `uniprove gcp gc` deletes it.',
      details,
    });
  }
  if (result.capacityError) {
    return new UniproveError('E_GCP_CAPACITY', {
      message: `fleet ${result.fleetId}: ${result.capacityError.message}`,
      hint: 'Add zones (--zones a,b,c), ask for more quota, pick another machine type, or try later.',
      details,
    });
  }
  if (s.succeeded === s.total) return undefined;
  return new UniproveError('E_RUN_FAILED', {
    message: `fleet ${result.fleetId}: ${s.total - s.succeeded} of ${s.total} proofs did not succeed (${s.failed} failed, ${s.preempted} preempted past --retries, ${s.error} errors)`,
    hint: `Each input's record is listed in runs/${result.fleetId}/fleet.json.`,
    details,
  });
}

const secs = (ms: number) => `${Math.round(ms / 1000)} s`;

/** A fleet event as a core progress event: one step per input, one for the fleet. */
export function fleetProgressEvent(event: FleetEvent): ProgressEvent {
  switch (event.kind) {
    case 'instance': {
      const step = `input ${event.index + 1}`;
      const detail = `${event.input} · ${event.zone} · ${event.state}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''} · ${secs(event.elapsedMs)}${event.detail ? ` · ${event.detail}` : ''}`;
      const ended = ['succeeded', 'failed', 'preempted', 'error', 'interrupted'].includes(event.state);
      if (event.state === 'starting') return { kind: 'step-start', step, detail };
      return { kind: ended && event.state !== 'preempted' ? 'step-done' : 'update', step, detail };
    }
    case 'fleet':
      return {
        kind: 'update',
        step: 'fleet',
        detail: `${event.done} done, ${event.running} running, ${event.queued} queued, ${event.retried} retried${event.failed ? `, ${event.failed} failed` : ''} · ${event.zone} · ${secs(event.elapsedMs)}`,
        done: event.done,
        total: event.done + event.running + event.queued,
      };
    case 'backoff':
      return {
        kind: 'note',
        step: 'fleet',
        detail: `${event.reason} in ${event.zone}: waiting ${secs(event.waitMs)}, ${event.concurrency} at once`,
      };
    case 'zone':
      return {
        kind: 'note',
        step: 'fleet',
        detail: `${event.reason} in ${event.from}: moving to ${event.to}`,
      };
  }
}

/** A fleet event as one NDJSON line (for --json on stderr). */
export function fleetEventLine(event: FleetEvent): string {
  return JSON.stringify({ type: `fleet.${event.kind}`, ...event });
}
