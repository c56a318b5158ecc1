/**
 * The Google Cloud API calls a command makes, in order, with their bodies.
 *
 * One planner serves both --dry-run (which prints the plan) and the executor
 * (which performs it call by call), so what a dry run shows is what a real run
 * does. Values not known before the work starts (a digest not yet computed,
 * an operation id) appear as `<placeholders>`.
 */
import { UniproveError } from '../errors.js';
import type { GcpTarget } from './config.js';
import { checkLabels, digestLabel, LABEL, resourceName, slug, uniproveLabels } from './names.js';

/** Every API method uniprove calls, named as in the REST reference. */
export type GcpMethod =
  | 'storage.buckets.get'
  | 'storage.buckets.insert'
  | 'storage.objects.insert'
  | 'storage.objects.list'
  | 'storage.objects.delete'
  | 'images.get'
  | 'images.insert'
  | 'images.list'
  | 'images.delete'
  | 'disks.get'
  | 'disks.insert'
  | 'disks.aggregatedList'
  | 'disks.delete'
  | 'instances.insert'
  | 'instances.get'
  | 'instances.aggregatedList'
  | 'instances.getSerialPortOutput'
  | 'instances.delete'
  | 'globalOperations.get'
  | 'zoneOperations.get';

/** A resource a call creates; the ledger records it the moment the call is accepted. */
export interface GcpResourceRef {
  kind: 'instance' | 'disk' | 'image' | 'object' | 'bucket';
  name: string;
  zone?: string;
  bucket?: string;
  /** When the ledger deletes it: at the end of every run, only when the run failed, or never (kept for reuse). */
  release: 'always' | 'on-failure' | 'never';
}

/** One API call of a plan. */
export interface GcpCall {
  method: GcpMethod;
  /** Path and query parameters: project, zone, resource names. */
  params: Record<string, string | number>;
  /** The request body, as sent (JSON field names of the REST API). */
  body?: Record<string, unknown>;
  /** Why the call is made. */
  purpose: string;
  /** main: made in order; watch: repeated while the prover runs; cleanup: made by the ledger at the end. */
  phase: 'main' | 'watch' | 'cleanup';
  /** A look-up: when it finds the resource, the calls marked `skipIfFound` with the same key are skipped. */
  lookup?: string;
  skipIfFound?: string[];
  /** Labels a found resource must carry to be reused (its content digest). */
  expectLabels?: Record<string, string>;
  /** The resource this call creates. */
  creates?: GcpResourceRef;
  /** When the call is made, in words, for calls that are conditional or repeated. */
  when?: string;
}

/** A disk image to make from a raw disk file. */
export interface GcpImageSource {
  /** What it is, for names and descriptions (recipe name, file name). */
  name: string;
  /** sha256 (hex) of the raw disk, or a `<placeholder>` in a dry run. */
  sha256: string;
  /** The raw disk on this machine (not sent anywhere; the executor packs it). */
  rawPath?: string;
}

/** Compute Engine disk types uniprove offers. */
export const DISK_TYPES = ['pd-balanced', 'pd-ssd', 'pd-standard', 'hyperdisk-balanced'] as const;
export type GcpDiskType = (typeof DISK_TYPES)[number];

/** How to make the machine. */
export interface GcpMachineSpec {
  /** A predefined type (`n2-standard-8`); or give cpus and memoryGb for a custom one. */
  machineType?: string;
  cpus?: number;
  memoryGb?: number;
  /** Family for custom types (default n2). */
  family?: string;
  spot: boolean;
  gpu?: { type: string; count: number };
}

/** What `gcp run` runs: the resolved "what to run" the recipe code hands over. */
export interface GcpRunSpec {
  target: GcpTarget;
  runId: string;
  bucket: string;
  /** The boot image: an existing image name, or a raw disk to upload. */
  image: { existing: string } | GcpImageSource;
  /** An optional parameter volume, attached at creation. */
  volume?: { source: { existing: string } | GcpImageSource; diskType: GcpDiskType; sizeGb: number };
  machine: GcpMachineSpec;
  bootDisk: { type: GcpDiskType; sizeGb?: number };
  network: string;
  labels: Record<string, string>;
  /** Compute Engine deletes the instance after this long even if uniprove is gone (scheduling.maxRunDuration). */
  maxRunSeconds: number;
  /** Keep the instance and the disks it made. */
  keep: boolean;
  /** The service account the instance runs as, with its scopes (the gcp klib's Cloud Logging / Monitoring). */
  serviceAccounts?: { email: string; scopes: string[] }[];
}

/** A plan: the ordered calls. */
export interface GcpPlan {
  calls: GcpCall[];
}

/** The staging object that holds an image's tarball. */
export function stagingObject(source: GcpImageSource): string {
  return `uniprove/${slug(source.name, 40) || 'disk'}-${digestLabel(source.sha256)}.tar.gz`;
}

/** The image name for a raw disk: its kind, name and digest. */
export function imageNameFor(source: GcpImageSource, kind: 'img' | 'vol' = 'img'): string {
  return resourceName(kind, source.name, source.sha256);
}

/** Calls that make sure the staging bucket exists (it is kept: it holds nothing for long, and empty buckets cost nothing). */
export function planBucket(target: GcpTarget, bucket: string): GcpCall[] {
  return [
    {
      method: 'storage.buckets.get',
      params: { bucket },
      purpose: `find the staging bucket ${bucket}`,
      phase: 'main',
      lookup: `bucket:${bucket}`,
    },
    {
      method: 'storage.buckets.insert',
      params: { project: target.project },
      body: {
        name: bucket,
        location: target.region,
        labels: uniproveLabels({}),
        iamConfiguration: { uniformBucketLevelAccess: { enabled: true } },
        // Tarballs are deleted once imported; this rule catches any that a crash left behind.
        lifecycle: { rule: [{ action: { type: 'Delete' }, condition: { age: 1 } }] },
      },
      purpose: `create the staging bucket ${bucket} in ${target.region}`,
      phase: 'main',
      skipIfFound: [`bucket:${bucket}`],
      when: 'only if the bucket does not exist',
      creates: { kind: 'bucket', name: bucket, release: 'never' },
    },
  ];
}

/** Calls that turn a raw disk into a Compute Engine image, reusing one with the same digest. */
export function planImage(
  target: GcpTarget,
  bucket: string,
  source: GcpImageSource,
  options: { kind?: 'img' | 'vol'; runId?: string } = {},
): GcpCall[] {
  const name = imageNameFor(source, options.kind ?? 'img');
  const object = stagingObject(source);
  const key = `image:${name}`;
  const skip = { skipIfFound: [key], when: 'only if no image with this digest exists' };
  return [
    {
      method: 'images.get',
      params: { project: target.project, image: name },
      purpose: `reuse image ${name} if one with digest ${digestLabel(source.sha256)} exists`,
      phase: 'main',
      lookup: key,
      expectLabels: { [LABEL.digest]: digestLabel(source.sha256) },
    },
    ...planBucket(target, bucket).map((c) => ({
      ...c,
      skipIfFound: [key, ...(c.skipIfFound ?? [])],
      when: c.when ? `${skip.when} and ${c.when.replace(/^only /, '')}` : skip.when,
    })),
    {
      method: 'storage.objects.insert',
      params: { bucket, name: object, uploadType: 'resumable' },
      body: {
        name: object,
        contentType: 'application/gzip',
        metadata: uniproveLabels({ digest: source.sha256, runId: options.runId }),
      },
      purpose: `upload ${source.name} packed as a gzip'd tar holding disk.raw`,
      phase: 'main',
      creates: { kind: 'object', name: object, bucket, release: 'always' },
      ...skip,
    },
    {
      method: 'images.insert',
      params: { project: target.project },
      body: {
        name,
        description: `uniprove ${options.kind === 'vol' ? 'volume' : 'image'} of ${source.name}`,
        labels: uniproveLabels({ digest: source.sha256, runId: options.runId }),
        rawDisk: { source: `https://storage.googleapis.com/${bucket}/${object}` },
        architecture: 'X86_64',
      },
      purpose: `import image ${name}`,
      phase: 'main',
      creates: { kind: 'image', name, release: 'on-failure' },
      ...skip,
    },
    waitCall(target, 'global', `images.insert ${name}`, skip),
    {
      method: 'storage.objects.delete',
      params: { bucket, object },
      purpose: 'delete the uploaded tarball once imported',
      phase: 'main',
      ...skip,
    },
  ];
}

function waitCall(
  target: GcpTarget,
  scope: 'global' | 'zone',
  what: string,
  extra: Partial<GcpCall> = {},
): GcpCall {
  return {
    method: scope === 'global' ? 'globalOperations.get' : 'zoneOperations.get',
    params: {
      project: target.project,
      ...(scope === 'zone' ? { zone: target.zone } : {}),
      operation: `<operation of ${what}>`,
    },
    purpose: `wait for ${what} (PENDING, RUNNING, DONE), with backoff`,
    phase: 'main',
    ...extra,
    when: extra.when ? `${extra.when}; repeated until DONE` : 'repeated until DONE',
  };
}

const zoneUrl = (t: GcpTarget, kind: string, name: string) => `zones/${t.zone}/${kind}/${name}`;

/** The disk name for a volume: digest, type and size, so a disk made from the same content and shape is reused. */
export function volumeDiskName(
  source: GcpImageSource | { existing: string },
  type: GcpDiskType,
  sizeGb: number,
) {
  const base =
    'existing' in source
      ? source.existing.replace(/^uniprove-/, '')
      : `vol-${source.sha256.startsWith('<') ? '<digest>' : digestLabel(source.sha256).slice(0, 12)}`;
  return (
    `uniprove-d-${base}`.slice(0, 63 - `-${type}-${sizeGb}g`.length).replace(/-$/, '') + `-${type}-${sizeGb}g`
  );
}

/** Calls that make a parameter volume into a disk of the chosen type and size, through an image, reused by digest. */
export function planVolumeDisk(
  target: GcpTarget,
  bucket: string,
  volume: NonNullable<GcpRunSpec['volume']>,
  options: { runId?: string; keep?: boolean; diskName?: string } = {},
): GcpCall[] {
  const imageName = 'existing' in volume.source ? volume.source.existing : imageNameFor(volume.source, 'vol');
  // A fleet names its own (one owner, deleted by its label); a run's is reused by content.
  const diskName = options.diskName ?? volumeDiskName(volume.source, volume.diskType, volume.sizeGb);
  const key = `disk:${diskName}`;
  const digest = 'existing' in volume.source ? undefined : volume.source.sha256;
  return [
    ...('existing' in volume.source
      ? []
      : planImage(target, bucket, volume.source, { kind: 'vol', runId: options.runId })),
    {
      method: 'disks.get',
      params: { project: target.project, zone: target.zone, disk: diskName },
      purpose: `reuse disk ${diskName} if it exists`,
      phase: 'main',
      lookup: key,
      ...(digest ? { expectLabels: { [LABEL.digest]: digestLabel(digest) } } : {}),
    },
    {
      method: 'disks.insert',
      params: { project: target.project, zone: target.zone },
      body: {
        name: diskName,
        sizeGb: String(volume.sizeGb),
        type: zoneUrl(target, 'diskTypes', volume.diskType),
        sourceImage: `global/images/${imageName}`,
        labels: uniproveLabels({ digest, runId: options.runId }),
      },
      purpose: `make the volume disk ${diskName} (${volume.diskType}, ${volume.sizeGb} GB)`,
      phase: 'main',
      skipIfFound: [key],
      when: 'only if the disk does not exist',
      creates: {
        kind: 'disk',
        name: diskName,
        zone: target.zone,
        release: options.keep ? 'never' : 'always',
      },
    },
    waitCall(target, 'zone', `disks.insert ${diskName}`, {
      skipIfFound: [key],
      when: 'only if the disk was made',
    }),
  ];
}

/** The machine type's name (n2-standard-8, n2-custom-8-32768) for a machine spec: what records and prices use. */
export function machineTypeName(target: GcpTarget, machine: GcpMachineSpec): string {
  return machineTypeFor(target, machine).replace(/^.*\//, '');
}

/** The machine type URL for a machine spec; custom types when cpus and memory are given. */
export function machineTypeFor(target: GcpTarget, machine: GcpMachineSpec): string {
  if (machine.machineType) return zoneUrl(target, 'machineTypes', machine.machineType);
  if (!machine.cpus || !machine.memoryGb) {
    throw new UniproveError('E_USAGE', {
      message: 'no machine type: give --machine-type, or both --cpus and --memory',
      hint: 'For example --machine-type n2-standard-8, or --cpus 8 --memory 32 (GB) for a custom type.',
    });
  }
  const mb = Math.round(machine.memoryGb * 1024);
  if (mb % 256 !== 0) {
    throw new UniproveError('E_USAGE', {
      message: `--memory ${machine.memoryGb} is not a multiple of 0.25 GB, which custom machine types need`,
      hint: 'Round the memory to a multiple of 0.25 GB (256 MB).',
    });
  }
  const family = machine.family ?? 'n2';
  const prefix = family === 'n1' ? 'custom' : `${family}-custom`;
  return zoneUrl(target, 'machineTypes', `${prefix}-${machine.cpus}-${mb}`);
}

/** The instance name of a run. */
export function instanceNameFor(runId: string): string {
  return `uniprove-run-${runId}`.slice(0, 63);
}

/** The instances.insert body of a run. */
export function instanceBody(spec: GcpRunSpec, bootImage: string, volumeDisk: string | undefined) {
  const t = spec.target;
  const labels = uniproveLabels({ runId: spec.runId }, spec.labels);
  checkLabels(labels);
  const gpu = spec.machine.gpu;
  const scheduling: Record<string, unknown> = {
    provisioningModel: spec.machine.spot ? 'SPOT' : 'STANDARD',
    // GPUs cannot live-migrate, Spot instances cannot either; both must stop on host maintenance.
    onHostMaintenance: spec.machine.spot || gpu ? 'TERMINATE' : 'MIGRATE',
    automaticRestart: false,
    // A safety net against forgotten instances: Compute Engine deletes it after this long, with its disks.
    instanceTerminationAction: 'DELETE',
    maxRunDuration: { seconds: String(spec.maxRunSeconds) },
  };
  const disks: Record<string, unknown>[] = [
    {
      boot: true,
      autoDelete: true,
      type: 'PERSISTENT',
      mode: 'READ_WRITE',
      deviceName: 'boot',
      initializeParams: {
        sourceImage: `global/images/${bootImage}`,
        diskType: zoneUrl(t, 'diskTypes', spec.bootDisk.type),
        ...(spec.bootDisk.sizeGb ? { diskSizeGb: String(spec.bootDisk.sizeGb) } : {}),
        labels: uniproveLabels({ runId: spec.runId }),
      },
    },
  ];
  if (volumeDisk) {
    disks.push({
      boot: false,
      autoDelete: false,
      type: 'PERSISTENT',
      mode: 'READ_WRITE',
      deviceName: 'volume',
      source: zoneUrl(t, 'disks', volumeDisk),
    });
  }
  return {
    name: instanceNameFor(spec.runId),
    machineType: machineTypeFor(t, spec.machine),
    labels,
    disks,
    networkInterfaces: [{ network: `global/networks/${spec.network}` }],
    metadata: { items: [{ key: 'serial-port-logging-enable', value: 'true' }] },
    ...(spec.serviceAccounts?.length ? { serviceAccounts: spec.serviceAccounts } : {}),
    scheduling,
    ...(gpu
      ? {
          guestAccelerators: [
            { acceleratorType: zoneUrl(t, 'acceleratorTypes', gpu.type), acceleratorCount: gpu.count },
          ],
        }
      : {}),
  };
}

/** The delete (and wait) calls that release a resource; the ledger makes exactly these. */
export function releaseCalls(target: GcpTarget, resource: GcpResourceRef): GcpCall[] {
  const base = { phase: 'cleanup' as const, when: releaseWhen(resource) };
  switch (resource.kind) {
    case 'instance':
      return [
        {
          method: 'instances.delete',
          params: { project: target.project, zone: resource.zone ?? target.zone, instance: resource.name },
          purpose: `delete instance ${resource.name} (its boot disk goes with it)`,
          ...base,
        },
        { ...waitCall(target, 'zone', `instances.delete ${resource.name}`), ...base },
      ];
    case 'disk':
      return [
        {
          method: 'disks.delete',
          params: { project: target.project, zone: resource.zone ?? target.zone, disk: resource.name },
          purpose: `delete disk ${resource.name}`,
          ...base,
        },
        { ...waitCall(target, 'zone', `disks.delete ${resource.name}`), ...base },
      ];
    case 'image':
      return [
        {
          method: 'images.delete',
          params: { project: target.project, image: resource.name },
          purpose: `delete image ${resource.name}`,
          ...base,
        },
        { ...waitCall(target, 'global', `images.delete ${resource.name}`), ...base },
      ];
    case 'object':
      return [
        {
          method: 'storage.objects.delete',
          params: { bucket: resource.bucket ?? '', object: resource.name },
          purpose: `delete staging object gs://${resource.bucket}/${resource.name}`,
          ...base,
        },
      ];
    case 'bucket':
      return [];
  }
}

function releaseWhen(resource: GcpResourceRef): string {
  if (resource.kind === 'object') return 'only if the run fails before the tarball is deleted';
  return resource.release === 'on-failure' ? 'only if the run fails' : 'at the end, unless --keep';
}

/** Order in which the ledger releases resources: what uses others goes first. */
export const RELEASE_ORDER: GcpResourceRef['kind'][] = ['instance', 'disk', 'image', 'object', 'bucket'];

/** The cleanup calls for everything a list of calls creates, in release order. */
export function planCleanup(target: GcpTarget, calls: GcpCall[], keep: boolean): GcpCall[] {
  const created = calls.flatMap((c) => (c.creates ? [c.creates] : []));
  const order = (r: GcpResourceRef) => RELEASE_ORDER.indexOf(r.kind);
  return created
    .filter((r) => r.release !== 'never' && !(keep && r.release === 'always' && r.kind !== 'object'))
    .map((r, i) => ({ r, i }))
    .sort((a, b) => order(a.r) - order(b.r) || b.i - a.i)
    .flatMap(({ r }) => releaseCalls(target, r));
}

/** All calls of `gcp image`. */
export function planImageCommand(target: GcpTarget, bucket: string, source: GcpImageSource): GcpPlan {
  const main = planImage(target, bucket, source);
  return { calls: [...main, ...planCleanup(target, main, false)] };
}

/** All calls of `gcp run`: images, volume disk, instance, the watch loop, cleanup. */
export function planRun(spec: GcpRunSpec): GcpPlan {
  const t = spec.target;
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
    calls.push(...planImage(t, spec.bucket, spec.image, { runId: spec.runId }));
  }
  let volumeDisk: string | undefined;
  if (spec.volume) {
    volumeDisk = volumeDiskName(spec.volume.source, spec.volume.diskType, spec.volume.sizeGb);
    calls.push(...planVolumeDisk(t, spec.bucket, spec.volume, { runId: spec.runId, keep: spec.keep }));
  }
  const instance = instanceNameFor(spec.runId);
  calls.push(
    {
      method: 'instances.insert',
      params: { project: t.project, zone: t.zone },
      body: instanceBody(spec, bootImage, volumeDisk),
      purpose: `start instance ${instance} with the image${volumeDisk ? ' and the volume' : ''} attached`,
      phase: 'main',
      creates: { kind: 'instance', name: instance, zone: t.zone, release: spec.keep ? 'never' : 'always' },
    },
    waitCall(t, 'zone', `instances.insert ${instance}`),
    {
      method: 'instances.getSerialPortOutput',
      params: { project: t.project, zone: t.zone, instance, port: 1, start: '<next offset>' },
      purpose: 'stream the serial console into the run record',
      phase: 'watch',
      when: 'repeated until the prover ends',
    },
    {
      method: 'instances.get',
      params: { project: t.project, zone: t.zone, instance },
      purpose: 'notice an instance that stopped or was preempted',
      phase: 'watch',
      when: 'repeated until the prover ends',
    },
  );
  const main = calls.filter((c) => c.phase === 'main');
  return { calls: [...calls, ...planCleanup(t, main, spec.keep)] };
}
