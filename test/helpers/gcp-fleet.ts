/**
 * A fleet against the local Compute Engine server until the run lifecycle's
 * Compute Engine driver exists: runOne is one gcpRun (the official clients:
 * images.get, instances.insert, operation polls, serial reads, instances.get,
 * instances.delete) of an image already imported, as a Spot instance carrying
 * the fleet label, in the attempt's zone; the sweep is sweepFleet.
 */

import type { AttemptOutcome, FleetInput, RunOne } from '../../src/core/fleet/scheduler.js';
import type { GcpClients } from '../../src/core/gcp/clients.js';
import { sweepFleet } from '../../src/core/gcp/fleet-sweep.js';
import { type GcpRunOptions, gcpRun } from '../../src/core/gcp/instance.js';
import { LABEL } from '../../src/core/gcp/names.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { TARGET } from './gcp.js';

export interface ServerFleetOptions {
  clients: GcpClients;
  image: string;
  fleetId: string;
  /** gcpRun's console and operation polling (ms). */
  watchMs?: number;
  pollMs?: number;
}

/** runOne over gcpRun: succeeded when the console ends with `exit status 0`, failed on another status. */
export function gcpRunOne(options: ServerFleetOptions): RunOne {
  return async (input: FleetInput, ctx): Promise<AttemptOutcome> => {
    const runId = `${options.fleetId}-${input.index}-${ctx.attempt}`;
    const onProgress = (e: ProgressEvent) => {
      if (e.kind === 'step-start' && e.step.startsWith('start instance')) ctx.onState('inserting');
      else if (e.kind === 'step-start' && e.step.startsWith('run on')) ctx.onState('booting');
      else if (e.kind === 'step-start' && e.step === 'clean up') ctx.onState('deleting');
    };
    let proving = false;
    const run: GcpRunOptions = {
      target: { ...TARGET, zone: ctx.zone },
      clients: options.clients,
      signal: ctx.signal,
      onProgress,
      poll: { initialMs: options.pollMs ?? 2, maxMs: (options.pollMs ?? 2) * 5, timeoutMs: 60_000 },
      image: { existing: options.image },
      machine: { machineType: 'n2-standard-2', spot: true },
      labels: { [LABEL.fleet]: options.fleetId },
      runId,
      watch: { intervalMs: options.watchMs ?? 1, statusEvery: 2 },
      timeoutMs: 60_000,
      onConsoleLine: () => {
        if (!proving) ctx.onState('proving');
        proving = true;
      },
      isEnd: (line) => /^exit status (\d+)$/.exec(line)?.[1],
    };
    const result = await gcpRun(run);
    if (result.dryRun) throw new Error('unexpected dry run');
    return {
      kind: result.endMatch === '0' ? 'succeeded' : 'failed',
      runId,
      instanceSeconds: (result.durationMs.setup + result.durationMs.run + result.durationMs.cleanup) / 1000,
    };
  };
}

/** The fleet's sweep and zone leaving, over sweepFleet. */
export function gcpFleetCleanup(options: ServerFleetOptions) {
  const poll = { initialMs: options.pollMs ?? 2, maxMs: (options.pollMs ?? 2) * 5, timeoutMs: 60_000 };
  const base = { clients: options.clients, target: TARGET, fleetId: options.fleetId, poll };
  return {
    sweep: async () => {
      const r = await sweepFleet(base);
      if (r.failed.length > 0)
        throw new Error(r.failed.map((f) => `${f.kind} ${f.name}: ${f.message}`).join('; '));
    },
    leaveZone: async (zone: string) => {
      const r = await sweepFleet({ ...base, zone });
      if (r.failed.length > 0)
        throw new Error(r.failed.map((f) => `${f.kind} ${f.name}: ${f.message}`).join('; '));
    },
  };
}
