/**
 * Delete every instance and disk of a fleet, found by its label
 * (`uniprove-fleet=<id>`): the fleet's last step, what the second Ctrl-C
 * does at once, what leaving a zone does there, and `gcp gc --fleet ID`.
 * Images stay (they are the cache, reused by digest); `gcp gc` deletes them.
 *
 * It reuses the ledger's release calls (delete, then wait for the
 * operation), instances first: their auto-delete disks go with them.
 */

import type { GcpClients } from './clients.js';
import type { GcpTarget } from './config.js';
import { type ExecutionContext, performCall } from './execute.js';
import { ResourceLedger } from './ledger.js';
import { LABEL } from './names.js';

/** Page by page (what async iteration does anyway; saying so keeps google-gax from warning on stderr). */
const PAGED = { autoPaginate: false };

import { gcpError, isNotFound, type PollOptions } from './operations.js';
import { type GcpResourceRef, releaseCalls } from './plan.js';

export interface FleetSweepOptions {
  clients: GcpClients;
  target: GcpTarget;
  fleetId: string;
  /** Only this zone (leaving a zone); default every zone. */
  zone?: string;
  poll?: PollOptions;
}

export interface FleetSweepResult {
  deleted: { kind: 'instance' | 'disk'; name: string; zone: string }[];
  failed: { kind: 'instance' | 'disk'; name: string; zone: string; message: string }[];
}

/** What of the fleet exists now: instances and disks carrying its label, per zone. */
export async function listFleetResources(
  clients: GcpClients,
  project: string,
  fleetId: string,
): Promise<{ kind: 'instance' | 'disk'; name: string; zone: string }[]> {
  const filter = `labels.${LABEL.fleet} = "${fleetId}"`;
  const found: { kind: 'instance' | 'disk'; name: string; zone: string }[] = [];
  const zoneOf = (key: string) => key.replace(/^zones\//, '');
  try {
    for await (const [key, scoped] of clients.instances.aggregatedListAsync({ project, filter }, PAGED)) {
      for (const i of scoped.instances ?? [])
        found.push({ kind: 'instance', name: i.name ?? '', zone: zoneOf(key) });
    }
    for await (const [key, scoped] of clients.disks.aggregatedListAsync({ project, filter }, PAGED)) {
      for (const d of scoped.disks ?? []) found.push({ kind: 'disk', name: d.name ?? '', zone: zoneOf(key) });
    }
  } catch (error) {
    throw gcpError(error, 'aggregatedList', `fleet ${fleetId}`);
  }
  return found;
}

/** Delete the fleet's instances, then its disks (in one zone or all); every delete is tried. */
export async function sweepFleet(options: FleetSweepOptions): Promise<FleetSweepResult> {
  const { clients, target, fleetId } = options;
  const result: FleetSweepResult = { deleted: [], failed: [] };
  const ctx: ExecutionContext = {
    clients,
    target,
    ledger: new ResourceLedger(),
    sources: new Map(),
    workDir: '.',
    ...(options.poll ? { poll: options.poll } : {}),
    found: new Set(),
    performed: [],
    retries: 0,
  };
  const all = await listFleetResources(clients, target.project, fleetId);
  const doomed = all.filter((r) => !options.zone || r.zone === options.zone);
  for (const kind of ['instance', 'disk'] as const) {
    await Promise.all(
      doomed
        .filter((r) => r.kind === kind)
        .map(async (r) => {
          const ref: GcpResourceRef = { kind, name: r.name, zone: r.zone, release: 'always' };
          const zoned = { ...ctx, target: { ...target, zone: r.zone } };
          try {
            for (const call of releaseCalls(zoned.target, ref)) await performCall(zoned, call);
            result.deleted.push(r);
          } catch (error) {
            // An auto-delete disk may be gone with its instance between the list and its delete.
            if (isNotFound(error) || /was not found/.test(String((error as Error).message))) return;
            result.failed.push({ ...r, message: error instanceof Error ? error.message : String(error) });
          }
        }),
    );
  }
  return result;
}
