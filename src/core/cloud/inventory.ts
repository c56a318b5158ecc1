/** `gcp ls` and `gcp gc`: what uniprove made in a project (found by its label), and deleting the leftovers. */
import type { GcpClients } from './clients.js';
import { defaultBucket, type GcpCommonOptions, newContext, withClients } from './context.js';
import { type ExecutionContext, performCall } from './execute.js';
import { listFleetResources, sweepFleet } from './fleet-sweep.js';
import { LABEL } from './names.js';

/** Page by page (what async iteration does anyway; saying so keeps google-gax from warning on stderr). */
const PAGED = { autoPaginate: false };

import { gcpError, isNotFound } from './operations.js';
import { releaseCalls } from './plan.js';

/** One resource uniprove made, as listed. */
export interface GcpListedResource {
  kind: 'instance' | 'disk' | 'image' | 'object';
  name: string;
  zone?: string;
  bucket?: string;
  status?: string;
  created?: string;
  labels?: Record<string, string>;
  sizeGb?: number;
  bytes?: number;
}

export interface GcpListOptions extends GcpCommonOptions {
  bucket?: string;
}

export interface GcpListResult {
  project: string;
  resources: GcpListedResource[];
  /** The resources of each fleet (label uniprove-fleet), grouped. */
  fleets: GcpFleetGroup[];
}

/** What is left of one fleet. */
export interface GcpFleetGroup {
  id: string;
  instances: number;
  disks: number;
  zones: string[];
}

/** Group instances and disks by their fleet label, in order of first appearance. */
export function groupByFleet(resources: GcpListedResource[]): GcpFleetGroup[] {
  const groups = new Map<string, GcpFleetGroup>();
  for (const r of resources) {
    const id = r.labels?.[LABEL.fleet];
    // Images keep the label of the fleet that imported them, but they are the cache, not the fleet's.
    if (!id || (r.kind !== 'instance' && r.kind !== 'disk')) continue;
    const g = groups.get(id) ?? { id, instances: 0, disks: 0, zones: [] };
    if (r.kind === 'instance') g.instances++;
    if (r.kind === 'disk') g.disks++;
    if (r.zone && !g.zones.includes(r.zone)) g.zones.push(r.zone);
    groups.set(id, g);
  }
  return [...groups.values()];
}

const OWNER_FILTER = `labels.${LABEL.owner} = "1"`;

/** Everything uniprove created in the project (by label; instances and disks in every zone). */
export async function gcpList(options: GcpListOptions): Promise<GcpListResult> {
  return withClients(options, (clients) => listWith(clients, options));
}

async function listWith(clients: GcpClients, options: GcpListOptions): Promise<GcpListResult> {
  const project = options.target.project;
  const bucket = options.bucket ?? defaultBucket(options.target);
  const resources: GcpListedResource[] = [];
  const zoneOf = (key: string) => key.replace(/^zones\//, '');
  try {
    for await (const [key, scoped] of clients.instances.aggregatedListAsync(
      { project, filter: OWNER_FILTER },
      PAGED,
    )) {
      for (const i of scoped.instances ?? []) {
        resources.push({
          kind: 'instance',
          name: i.name ?? '',
          zone: zoneOf(key),
          status: i.status ?? undefined,
          created: i.creationTimestamp ?? undefined,
          labels: (i.labels as Record<string, string>) ?? {},
        });
      }
    }
  } catch (error) {
    throw gcpError(error, 'instances.aggregatedList', project);
  }
  try {
    for await (const [key, scoped] of clients.disks.aggregatedListAsync(
      { project, filter: OWNER_FILTER },
      PAGED,
    )) {
      for (const d of scoped.disks ?? []) {
        resources.push({
          kind: 'disk',
          name: d.name ?? '',
          zone: zoneOf(key),
          status: d.status ?? undefined,
          created: d.creationTimestamp ?? undefined,
          labels: (d.labels as Record<string, string>) ?? {},
          sizeGb: Number(d.sizeGb ?? 0),
        });
      }
    }
  } catch (error) {
    throw gcpError(error, 'disks.aggregatedList', project);
  }
  try {
    for await (const i of clients.images.listAsync({ project, filter: OWNER_FILTER }, PAGED)) {
      resources.push({
        kind: 'image',
        name: i.name ?? '',
        status: i.status ?? undefined,
        created: i.creationTimestamp ?? undefined,
        labels: (i.labels as Record<string, string>) ?? {},
        sizeGb: Number(i.diskSizeGb ?? 0),
      });
    }
  } catch (error) {
    throw gcpError(error, 'images.list', project);
  }
  try {
    const [files] = await clients.storage.bucket(bucket).getFiles({ prefix: 'uniprove/' });
    for (const f of files) {
      resources.push({
        kind: 'object',
        name: f.name,
        bucket,
        created: f.metadata.timeCreated,
        bytes: Number(f.metadata.size ?? 0),
      });
    }
  } catch (error) {
    if (!isNotFound(error)) throw gcpError(error, 'storage.objects.list', `gs://${bucket}`);
  }
  return { project, resources, fleets: groupByFleet(resources) };
}

export interface GcpGcOptions extends GcpListOptions {
  /** Only what was created longer ago than this (ms). */
  olderThanMs?: number;
  /** Only what belongs to this run. */
  runId?: string;
  /** Only the instances and disks of this fleet (label uniprove-fleet), through the fleet's sweep. */
  fleetId?: string;
  dryRun?: boolean;
  now?: Date;
}

export interface GcpGcResult {
  project: string;
  dryRun: boolean;
  /** Deleted (or, in a dry run, to delete), in the order of deletion. */
  deleted: GcpListedResource[];
  failed: { resource: GcpListedResource; message: string }[];
}

/** Delete what uniprove left behind: instances first, then disks, images and staging objects. */
export async function gcpGc(options: GcpGcOptions): Promise<GcpGcResult> {
  if (options.fleetId) return gcFleet(options, options.fleetId);
  return withClients(options, async (clients) => {
    const { resources } = await listWith(clients, options);
    const now = (options.now ?? new Date()).getTime();
    const order = ['instance', 'disk', 'image', 'object'];
    const doomed = resources
      .filter((r) => !options.runId || r.labels?.[LABEL.run] === options.runId)
      .filter((r) => {
        if (!options.olderThanMs) return true;
        const t = r.created ? Date.parse(r.created) : Number.NaN;
        return Number.isFinite(t) && now - t >= options.olderThanMs;
      })
      .sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    const result: GcpGcResult = {
      project: options.target.project,
      dryRun: Boolean(options.dryRun),
      deleted: [],
      failed: [],
    };
    if (options.dryRun) return { ...result, deleted: doomed };
    const ctx = newContext({ ...options, signal: undefined }, clients, '.', []);
    for (const r of doomed) {
      const target = { ...options.target, zone: r.zone ?? options.target.zone };
      const resource = {
        kind: r.kind,
        name: r.name,
        zone: r.zone,
        bucket: r.bucket,
        release: 'always' as const,
      };
      try {
        const resourceCtx: ExecutionContext = { ...ctx, target };
        for (const call of releaseCalls(target, resource)) await performCall(resourceCtx, call);
        result.deleted.push(r);
        options.onProgress?.({ kind: 'note', step: 'gc', detail: `deleted ${r.kind} ${r.name}` });
      } catch (error) {
        result.failed.push({ resource: r, message: error instanceof Error ? error.message : String(error) });
      }
    }
    return result;
  });
}

/** `gcp gc --fleet ID`: the fleet's instances, then its disks (an auto-delete disk gone with its instance is fine). */
async function gcFleet(options: GcpGcOptions, fleetId: string): Promise<GcpGcResult> {
  return withClients(options, async (clients) => {
    const project = options.target.project;
    const result: GcpGcResult = { project, dryRun: Boolean(options.dryRun), deleted: [], failed: [] };
    if (options.dryRun) {
      const found = await listFleetResources(clients, project, fleetId);
      return {
        ...result,
        deleted: found.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'instance' ? -1 : 1)),
      };
    }
    const swept = await sweepFleet({
      clients,
      target: options.target,
      fleetId,
      ...(options.poll ? { poll: options.poll } : {}),
    });
    for (const r of swept.deleted) {
      options.onProgress?.({ kind: 'note', step: 'gc', detail: `deleted ${r.kind} ${r.name}` });
    }
    return {
      ...result,
      deleted: swept.deleted,
      failed: swept.failed.map(({ message, ...resource }) => ({ resource, message })),
    };
  });
}
