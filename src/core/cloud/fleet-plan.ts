/**
 * The calls of a fleet (`gcp run --inputs FILE --parallel N`), for its dry run
 * and for the driver that performs them: one image import per distinct
 * argument list of the inputs (Nanos reads the program's arguments from the
 * image's manifest, not from instance metadata, so an input's arguments must be
 * baked into the image it boots), one volume image import, then one instance
 * per input booting the image of its arguments, at most N at once, each a Spot
 * instance (unless --no-spot) carrying `uniprove-fleet=<id>`.
 *
 * Each instance gets its own volume disk, made from the volume image with the
 * instance (`initializeParams`, autoDelete): it goes when the instance goes,
 * also when Compute Engine deletes a preempted Spot instance or one past its
 * maxRunDuration, so a crash of uniprove leaves no disk. A read-only volume is
 * one disk per zone, attached READ_ONLY to every instance there, deleted when
 * the fleet ends or leaves the zone.
 */
import { createHash } from 'node:crypto';
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
  machineTypeName,
  planBucket,
  planCleanup,
  planImage,
  planVolumeDisk,
} from './plan.js';
import { estimateFleetCost, type FleetCostEstimate } from './prices.js';

/** The boot image of one distinct argument list: imported already, or a raw disk to import. */
export interface GcpFleetImage {
  args: string[];
  source: { existing: string } | GcpImageSource;
}

/** What a fleet runs: the run spec's parts shared by every instance, and the fleet's shape. */
export interface GcpFleetSpec extends Omit<GcpRunSpec, 'runId' | 'volume' | 'keep'> {
  fleetId: string;
  /**
   * One boot image per distinct argument list of the inputs (its arguments baked in); an input boots the one of
   * its arguments. Absent: every instance boots `image`.
   */
  images?: GcpFleetImage[];
  /** Each input's arguments, in order (the first wave of the plan shows each input's image). */
  inputArgs?: string[][];
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
    /** Boot images the fleet imports (or reuses by digest): one per distinct argument list of the inputs. */
    images: number;
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

/** The short digest (12 hex) of an argument list: the label `uniprove-args` of the image that has them baked in. */
export function argsDigest(args: string[]): string {
  return createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 12);
}

/** The distinct argument lists of the inputs, in their first order. */
export function distinctArgs(inputs: string[][]): string[][] {
  const seen = new Map<string, string[]>();
  for (const args of inputs) if (!seen.has(argsDigest(args))) seen.set(argsDigest(args), args);
  return [...seen.values()];
}

/** The boot image of an input: the fleet's image of its arguments, or the fleet's one image. */
export function fleetImageFor(spec: GcpFleetSpec, args: string[] | undefined): string {
  const digest = args ? argsDigest(args) : undefined;
  const mine = digest ? spec.images?.find((i) => argsDigest(i.args) === digest) : undefined;
  const source = mine?.source ?? spec.image;
  return 'existing' in source ? source.existing : imageNameFor(source);
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
export function labelled(call: GcpCall, fleetId: string): GcpCall {
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
  args?: string[],
): Record<string, unknown> {
  const target = { ...spec.target, zone };
  const bootImage = fleetImageFor(spec, args);
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

/** A plan's calls less the staging bucket's (a fleet checks its bucket once, before all its imports). */
export function withoutBucket(calls: GcpCall[]): GcpCall[] {
  return calls.filter((c) => !c.method.startsWith('storage.buckets.'));
}

/** The staging bucket, checked (and made if missing) once before the fleet's imports, which run in parallel. */
export function fleetBucketCalls(spec: GcpFleetSpec, t: GcpRunSpec['target']): GcpCall[] {
  return planBucket(t, spec.bucket).map((c) =>
    c.method === 'storage.buckets.get' ? { ...c, when: 'once for the fleet, before its imports' } : c,
  );
}

/**
 * The boot image calls of a fleet: one import (reused by digest) per distinct argument list, each image labelled
 * `uniprove-args=<argsDigest>`, or a check of an image imported already; without `images`, the one `image`.
 */
export function planFleetBootImages(spec: GcpFleetSpec, t: GcpRunSpec['target']): GcpCall[] {
  const images: { args?: string[]; source: GcpFleetImage['source'] }[] = spec.images ?? [
    { source: spec.image },
  ];
  const calls: GcpCall[] = [];
  for (const { args, source } of images) {
    if ('existing' in source) {
      calls.push({
        method: 'images.get',
        params: { project: t.project, image: source.existing },
        purpose: `check that image ${source.existing} exists`,
        phase: 'main',
      });
      continue;
    }
    const planned = withoutBucket(planImage(t, spec.bucket, source, { runId: spec.fleetId }));
    calls.push(...(args ? planned.map((c) => withArgs(c, args, spec.images!.length)) : planned));
  }
  return calls;
}

/** An image call of one argument list: the arguments said, and the image labelled with their digest. */
function withArgs(call: GcpCall, args: string[], count: number): GcpCall {
  const said = `arguments ${JSON.stringify(args)}`;
  if (call.method !== 'images.insert' && call.method !== 'images.get') return call;
  const purpose = `${call.purpose} (${said}; one image per distinct argument list, ${count} in all: Nanos reads the arguments from the image)`;
  if (call.method === 'images.get') return { ...call, purpose };
  const body = call.body as Record<string, unknown>;
  const labels = { ...(body.labels as Record<string, string>), [LABEL.args]: argsDigest(args) };
  return { ...call, purpose, body: { ...body, labels } };
}

/** All calls of a fleet, with its cost estimate; the instance inserts shown are the first N (the first wave). */
export function planFleet(spec: GcpFleetSpec): GcpFleetPlan {
  const zone = spec.zones[0] ?? spec.target.zone;
  const t = { ...spec.target, zone };
  const runId = spec.fleetId;
  const calls: GcpCall[] = planFleetBootImages(spec, t);
  const v = spec.volume;
  if (v?.readOnly) {
    calls.push(
      ...withoutBucket(planVolumeDisk(t, spec.bucket, v, { runId, diskName: fleetVolumeDiskName(spec) })).map(
        (c) =>
          c.method === 'disks.insert' || c.method === 'disks.get'
            ? { ...c, when: `${c.when ?? 'once'}; in each zone the fleet uses, once` }
            : c,
      ),
    );
  } else if (v && !('existing' in v.source)) {
    calls.push(...withoutBucket(planImage(t, spec.bucket, v.source, { kind: 'vol', runId })));
  }
  if (calls.some((c) => c.method === 'storage.objects.insert')) calls.unshift(...fleetBucketCalls(spec, t));
  const first = Math.min(spec.parallel, spec.inputs);
  for (let i = 0; i < first; i++) {
    const name = fleetInstanceName(spec.fleetId, i, 1);
    calls.push({
      method: 'instances.insert',
      params: { project: t.project, zone },
      body: fleetInstanceBody(spec, i, 1, zone, `${spec.fleetId}-${i}`, spec.inputArgs?.[i]),
      purpose: `start instance ${name} for input ${i + 1}${v && !v.readOnly ? ' with its own volume disk made from the volume image' : ''}`,
      phase: 'main',
      when: `at most ${spec.parallel} at once: ${spec.inputs} inputs, one instance each (${spec.inputs - first} more as these end, and one per retry of a preempted input), named ${spec.fleetId}-INPUT-ATTEMPT`,
      creates: { kind: 'instance', name, zone, release: 'always' },
    });
  }
  const main = calls.map((c) => labelled(c, spec.fleetId));
  const machineType = machineTypeName(t, spec.machine);
  const disks = [
    { type: spec.bootDisk.type, sizeGb: spec.bootDisk.sizeGb ?? 10 },
    ...(v && !v.readOnly ? [{ type: v.diskType, sizeGb: v.sizeGb }] : []),
  ];
  return {
    calls: [...main, ...planCleanup(t, main, false)],
    fleet: {
      id: spec.fleetId,
      inputs: spec.inputs,
      images: spec.images?.length ?? 1,
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

/**
 * The calls of one attempt of one input: its instance, booting the image of the input's arguments (the images are
 * made once for the fleet), the wait for
 * it, and the watch of its console and status; the instance is released by the attempt's ledger.
 */
export function planFleetAttempt(
  spec: GcpFleetSpec,
  attempt: { index: number; attempt: number; zone: string; runId: string; args: string[] },
): GcpPlan {
  const { zone } = attempt;
  const project = spec.target.project;
  // The instance boots the image of the input's arguments (baked into its manifest, where Nanos reads them).
  const body = fleetInstanceBody(spec, attempt.index, attempt.attempt, zone, attempt.runId, attempt.args);
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

/** States of one attempt, as shown per instance. */
export type AttemptState =
  | 'starting'
  | 'inserting'
  | 'booting'
  | 'proving'
  | 'deleting'
  | 'succeeded'
  | 'failed'
  | 'preempted'
  | 'capacity'
  | 'error'
  | 'interrupted';
