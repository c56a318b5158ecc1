/**
 * The calls of a fleet (`gcp run --inputs FILE --parallel N`), for its dry run
 * and for the driver that performs them: one image import, one volume image
 * import, then one instance per input, at most N at once, each a Spot
 * instance (unless --no-spot) carrying `uniprove-fleet=<id>`.
 *
 * Each instance gets its own volume disk, made from the volume image with the
 * instance (`initializeParams`, autoDelete): it goes when the instance goes,
 * also when Compute Engine deletes a preempted Spot instance or one past its
 * maxRunDuration, so a crash of uniprove leaves no disk. A read-only volume is
 * one disk per zone, attached READ_ONLY to every instance there, deleted when
 * the fleet ends or leaves the zone.
 */
import { LABEL } from './names.js';
import {
  type GcpCall,
  type GcpDiskType,
  type GcpImageSource,
  type GcpMachineSpec,
  type GcpPlan,
  type GcpRunSpec,
  imageNameFor,
  instanceBody,
  machineTypeFor,
  planCleanup,
  planImage,
  planVolumeDisk,
} from './plan.js';
import { estimateFleetCost, type FleetCostEstimate } from './prices.js';

/** What a fleet runs: the run spec's parts shared by every instance, and the fleet's shape. */
export interface GcpFleetSpec extends Omit<GcpRunSpec, 'runId' | 'volume' | 'keep'> {
  fleetId: string;
  inputs: number;
  parallel: number;
  /** Zones in order; the plan's disks and instances are shown in the first. */
  zones: string[];
  volume?: {
    source: { existing: string } | GcpImageSource;
    diskType: GcpDiskType;
    sizeGb: number;
    /** One disk per zone, attached read-only to every instance, instead of one disk per instance. */
    readOnly: boolean;
  };
  /** For the cost estimate: how long one input keeps its instance (default the run limit). */
  expectedSecondsPerInput?: number;
}

/** A fleet's plan: the calls, and what the dry run says besides them. */
export interface GcpFleetPlan {
  calls: GcpCall[];
  fleet: {
    id: string;
    inputs: number;
    parallel: number;
    zones: string[];
    spot: boolean;
    machineType: string;
    labels: Record<string, string>;
    cost: FleetCostEstimate;
  };
}

/** The name of the instance of one attempt of one input (attempts > 1 are retries after preemption). */
export function fleetInstanceName(fleetId: string, index: number, attempt = 1): string {
  return `uniprove-${fleetId}-${index}-${attempt}`.slice(0, 63);
}

/** The labels every resource of the fleet carries. */
export function fleetLabels(fleetId: string): Record<string, string> {
  return { [LABEL.fleet]: fleetId };
}

/**
 * The per-zone read-only volume disk of a fleet: the fleet's own (not reused by content across runs), so its
 * label says whose it is and the fleet's sweep may delete it.
 */
export function fleetVolumeDiskName(spec: GcpFleetSpec): string | undefined {
  return spec.volume?.readOnly ? `uniprove-${spec.fleetId}-vol`.slice(0, 63) : undefined;
}

/** The calls that make a fleet's read-only volume disk in one zone (labelled with the fleet). */
export function planFleetVolumeDisk(spec: GcpFleetSpec, zone: string): GcpCall[] {
  const v = spec.volume;
  const diskName = fleetVolumeDiskName(spec);
  if (!v || !diskName) return [];
  const t = { ...spec.target, zone };
  return planVolumeDisk(t, spec.bucket, v, { runId: spec.fleetId, diskName })
    .filter(
      (c) =>
        !c.method.startsWith('images.') &&
        !c.method.startsWith('storage.') &&
        c.method !== 'globalOperations.get',
    )
    .map((c) => labelled(c, spec.fleetId));
}

/** Add the fleet label to a call's body (labels of Compute Engine resources, metadata of objects). */
function labelled(call: GcpCall, fleetId: string): GcpCall {
  if (!call.body) return call;
  const body = { ...call.body };
  if (body.labels) body.labels = { ...(body.labels as Record<string, string>), ...fleetLabels(fleetId) };
  if (call.method === 'storage.objects.insert' && body.metadata) {
    body.metadata = { ...(body.metadata as Record<string, string>), ...fleetLabels(fleetId) };
  }
  return { ...call, body };
}

/** The instances.insert body of one attempt of one input, in a zone. */
export function fleetInstanceBody(
  spec: GcpFleetSpec,
  index: number,
  attempt: number,
  zone: string,
  runId: string,
): Record<string, unknown> {
  const target = { ...spec.target, zone };
  const bootImage = 'existing' in spec.image ? spec.image.existing : imageNameFor(spec.image);
  const shared = fleetVolumeDiskName(spec);
  const runSpec: GcpRunSpec = {
    ...spec,
    target,
    runId,
    keep: false,
    labels: { ...spec.labels, ...fleetLabels(spec.fleetId) },
  };
  const body = instanceBody(runSpec, bootImage, shared) as Record<string, unknown> & {
    disks: Record<string, unknown>[];
  };
  body.name = fleetInstanceName(spec.fleetId, index, attempt);
  const boot = body.disks[0]!;
  const init = boot.initializeParams as Record<string, unknown>;
  boot.initializeParams = { ...init, labels: { ...(init.labels as object), ...fleetLabels(spec.fleetId) } };
  const v = spec.volume;
  if (v?.readOnly) {
    body.disks[1] = { ...body.disks[1], mode: 'READ_ONLY' };
  } else if (v) {
    const volumeImage = 'existing' in v.source ? v.source.existing : imageNameFor(v.source, 'vol');
    body.disks.push({
      boot: false,
      autoDelete: true,
      type: 'PERSISTENT',
      mode: 'READ_WRITE',
      deviceName: 'volume',
      initializeParams: {
        sourceImage: `global/images/${volumeImage}`,
        diskType: `zones/${zone}/diskTypes/${v.diskType}`,
        diskSizeGb: String(v.sizeGb),
        labels: { ...(init.labels as object), ...fleetLabels(spec.fleetId) },
      },
    });
  }
  return body;
}

/** All calls of a fleet, with its cost estimate; the instance inserts shown are the first N (the first wave). */
export function planFleet(spec: GcpFleetSpec): GcpFleetPlan {
  const zone = spec.zones[0] ?? spec.target.zone;
  const t = { ...spec.target, zone };
  const runId = spec.fleetId;
  const calls: GcpCall[] = [];
  const bootImage = 'existing' in spec.image ? spec.image.existing : imageNameFor(spec.image);
  if ('existing' in spec.image) {
    calls.push({
      method: 'images.get',
      params: { project: t.project, image: bootImage },
      purpose: `check that image ${bootImage} exists`,
      phase: 'main',
    });
  } else {
    calls.push(...planImage(t, spec.bucket, spec.image, { runId }));
  }
  const v = spec.volume;
  if (v?.readOnly) {
    calls.push(
      ...planVolumeDisk(t, spec.bucket, v, { runId, diskName: fleetVolumeDiskName(spec) }).map((c) =>
        c.method === 'disks.insert' || c.method === 'disks.get'
          ? { ...c, when: `${c.when ?? 'once'}; in each zone the fleet uses, once` }
          : c,
      ),
    );
  } else if (v && !('existing' in v.source)) {
    calls.push(...planImage(t, spec.bucket, v.source, { kind: 'vol', runId }));
  }
  const first = Math.min(spec.parallel, spec.inputs);
  for (let i = 0; i < first; i++) {
    const name = fleetInstanceName(spec.fleetId, i, 1);
    calls.push({
      method: 'instances.insert',
      params: { project: t.project, zone },
      body: fleetInstanceBody(spec, i, 1, zone, `${spec.fleetId}-${i}`),
      purpose: `start instance ${name} for input ${i + 1}${v && !v.readOnly ? ' with its own volume disk made from the volume image' : ''}`,
      phase: 'main',
      when: `at most ${spec.parallel} at once: ${spec.inputs} inputs, one instance each (${spec.inputs - first} more as these end, and one per retry of a preempted input), named ${spec.fleetId}-INPUT-ATTEMPT`,
      creates: { kind: 'instance', name, zone, release: 'always' },
    });
  }
  const main = calls.map((c) => labelled(c, spec.fleetId));
  const machineType = machineTypeFor(t, spec.machine).replace(/^.*\//, '');
  const disks = [
    { type: spec.bootDisk.type, sizeGb: spec.bootDisk.sizeGb ?? 10 },
    ...(v && !v.readOnly ? [{ type: v.diskType, sizeGb: v.sizeGb }] : []),
  ];
  return {
    calls: [...main, ...planCleanup(t, main, false)],
    fleet: {
      id: spec.fleetId,
      inputs: spec.inputs,
      parallel: spec.parallel,
      zones: spec.zones,
      spot: spec.machine.spot,
      machineType,
      labels: fleetLabels(spec.fleetId),
      cost: estimateFleetCost({
        machineType,
        spot: spec.machine.spot,
        inputs: spec.inputs,
        secondsPerInput: spec.expectedSecondsPerInput ?? spec.maxRunSeconds,
        disks,
        ...(spec.machine.gpu ? { gpu: spec.machine.gpu } : {}),
      }),
    },
  };
}

/** The machine of a fleet: Spot unless asked otherwise (`--no-spot`). */
export function fleetMachine(machine: Omit<GcpMachineSpec, 'spot'> & { spot?: boolean }): GcpMachineSpec {
  return { ...machine, spot: machine.spot ?? true };
}

/** The instance metadata key that carries an input's arguments (a JSON array) to its instance. */
export const ARGS_METADATA_KEY = 'uniprove-args';

/**
 * The calls of one attempt of one input: its instance (the images are made once for the fleet), the wait for
 * it, and the watch of its console and status; the instance is released by the attempt's ledger.
 */
export function planFleetAttempt(
  spec: GcpFleetSpec,
  attempt: { index: number; attempt: number; zone: string; runId: string; args: string[] },
): GcpPlan {
  const { zone } = attempt;
  const project = spec.target.project;
  const body = fleetInstanceBody(spec, attempt.index, attempt.attempt, zone, attempt.runId);
  const metadata = body.metadata as { items: { key: string; value: string }[] };
  body.metadata = {
    items: [...metadata.items, { key: ARGS_METADATA_KEY, value: JSON.stringify(attempt.args) }],
  };
  const instance = String(body.name);
  const watch = 'repeated until the prover ends';
  return {
    calls: [
      {
        method: 'instances.insert',
        params: { project, zone },
        body,
        purpose: `start instance ${instance} for input ${attempt.index + 1}`,
        phase: 'main',
        creates: { kind: 'instance', name: instance, zone, release: 'always' },
      },
      {
        method: 'zoneOperations.get',
        params: { project, zone, operation: `<operation of instances.insert ${instance}>` },
        purpose: `wait for instances.insert ${instance} (PENDING, RUNNING, DONE), with backoff`,
        phase: 'main',
        when: 'repeated until DONE',
      },
      {
        method: 'instances.getSerialPortOutput',
        params: { project, zone, instance, port: 1, start: '<next offset>' },
        purpose: 'stream the serial console into the run record',
        phase: 'watch',
        when: watch,
      },
      {
        method: 'instances.get',
        params: { project, zone, instance },
        purpose: 'notice an instance that stopped or was preempted',
        phase: 'watch',
        when: watch,
      },
    ],
  };
}
