/**
 * The Ops config.json schema, key for key as Ops decodes it.
 *
 * Read from nanovms/ops `types/config.go` (Config, ProviderConfig, RunConfig,
 * Nic, Tag, TagAttribute, CloudVolume) and `cmd/flags_config.go`, which
 * decodes with `DisallowUnknownFields`: an unknown key is an error in Ops, so
 * it is one here. Go's encoding/json matches keys case-insensitively, so we
 * accept any case and normalise to the canonical spelling.
 */
import { z } from 'zod';
import { UniproveError } from '../errors.js';
import { formatZodIssues } from '../zod-issues.js';

const str = z.string();
const bool = z.boolean();
const int = z.number().int();
const strList = z.array(z.string());
const strMap = z.record(z.string(), z.string());

const TagAttribute = z.strictObject({
  image_label: bool.optional(),
  instance_label: bool.optional(),
  instance_network: bool.optional(),
  instance_metadata: bool.optional(),
});

const Tag = z.strictObject({ key: str, value: str, attribute: TagAttribute.optional() });

const CloudVolume = z.strictObject({
  name: str.optional(),
  iops: int.optional(),
  size: int.optional(),
  throughput: int.optional(),
  typeof: str.optional(),
});

const ProviderConfig = z.strictObject({
  BucketName: str.optional(),
  BucketNamespace: str.optional(),
  ConfidentialVM: bool.optional(),
  DedicatedHostID: str.optional(),
  DomainName: str.optional(),
  StaticIP: str.optional(),
  EnableIPv6: bool.optional(),
  Flavor: str.optional(),
  ImageType: str.optional(),
  ImageName: str.optional(),
  InstanceProfile: str.optional(),
  KMS: str.optional(),
  Platform: str.optional(),
  ProjectID: str.optional(),
  RootVolume: CloudVolume.optional(),
  SecurityGroup: str.optional(),
  SkipImportVerify: bool.optional(),
  Spot: bool.optional(),
  Subnet: str.optional(),
  Tags: z.array(Tag).optional(),
  UserData: str.optional(),
  VPC: str.optional(),
  Zone: str.optional(),
});

const Nic = z.strictObject({
  IPAddress: str.optional(),
  IPv6Address: str.optional(),
  NetMask: str.optional(),
  Gateway: str.optional(),
  BridgeName: str.optional(),
});

const RunConfig = z.strictObject({
  Accel: bool.optional(),
  AtExit: str.optional(),
  Bridged: bool.optional(),
  BridgeIPAddress: str.optional(),
  BridgeName: str.optional(),
  CanIPForward: bool.optional(),
  CPUs: int.optional(),
  GPUs: int.optional(),
  GPUType: str.optional(),
  Debug: bool.optional(),
  Gateway: str.optional(),
  GdbPort: int.optional(),
  ImageName: str.optional(),
  InstanceGroup: str.optional(),
  InstanceName: str.optional(),
  IPAddress: str.optional(),
  IPv6Address: str.optional(),
  Kernel: str.optional(),
  Memory: str.optional(),
  Mgmt: str.optional(),
  Vga: bool.optional(),
  Mounts: strList.optional(),
  AttachVolumeOnInstanceCreate: bool.optional(),
  NetMask: str.optional(),
  Nics: z.array(Nic).optional(),
  Background: bool.optional(),
  BackgroundDetach: bool.optional(),
  Ports: strList.optional(),
  QMP: bool.optional(),
  ShowDebug: bool.optional(),
  ShowErrors: bool.optional(),
  ShowWarnings: bool.optional(),
  JSON: bool.optional(),
  TapName: str.optional(),
  UDPPorts: strList.optional(),
  Verbose: bool.optional(),
  VolumeSizeInGb: int.optional(),
  ThreadsPerCore: int.optional(),
});

/** Ops's top-level config.json. */
export const OpsConfigSchema = z.strictObject({
  Args: strList.optional(),
  DisableArgsCopy: bool.optional(),
  BaseVolumeSz: str.optional(),
  Boot: str.optional(),
  UefiBoot: str.optional(),
  Uefi: bool.optional(),
  BuildDir: str.optional(),
  CloudConfig: ProviderConfig.optional(),
  TargetConfig: strMap.optional(),
  Debugflags: strList.optional(),
  Dirs: strList.optional(),
  Env: strMap.optional(),
  Files: strList.optional(),
  Force: bool.optional(),
  home: str.optional(),
  Kernel: str.optional(),
  KlibDir: str.optional(),
  Klibs: strList.optional(),
  MapDirs: strMap.optional(),
  Mounts: strMap.optional(),
  NameServers: strList.optional(),
  NanosVersion: str.optional(),
  NightlyBuild: bool.optional(),
  NoTrace: strList.optional(),
  ManifestPassthrough: z.record(z.string(), z.unknown()).optional(),
  Program: str.optional(),
  ProgramPath: str.optional(),
  RebootOnExit: bool.optional(),
  RunConfig: RunConfig.optional(),
  LocalFilesParentDirectory: str.optional(),
  TargetRoot: str.optional(),
  TFSv4: bool.optional(),
  Version: str.optional(),
  Language: str.optional(),
  Description: str.optional(),
  VolumesDir: str.optional(),
  PackageBaseURL: str.optional(),
  PackageManifestURL: str.optional(),
});

export type OpsConfig = z.infer<typeof OpsConfigSchema>;

// Objects whose keys are free-form (maps), so their keys are never renamed.
const MAP_KEYS = new Set(['TargetConfig', 'Env', 'MapDirs', 'Mounts', 'ManifestPassthrough']);

type Shape = Record<string, z.ZodType>;

function shapeOf(schema: z.ZodType): Shape | undefined {
  let s: unknown = schema;
  // unwrap optional/array wrappers to reach an object schema
  for (let i = 0; i < 4 && s; i++) {
    const def = (s as { def?: { type?: string; innerType?: unknown; element?: unknown; shape?: Shape } }).def;
    if (!def) return undefined;
    if (def.type === 'object') return def.shape;
    s = def.innerType ?? def.element;
  }
  return undefined;
}

/** Rename keys to Ops's canonical spelling, the way Go's json matches them (case-insensitively). */
function canonicaliseKeys(value: unknown, shape: Shape | undefined): unknown {
  if (Array.isArray(value)) return value.map((v) => canonicaliseKeys(v, shape));
  if (!shape || value === null || typeof value !== 'object') return value;
  const byLower = new Map(Object.keys(shape).map((k) => [k.toLowerCase(), k]));
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const canonical = key in shape ? key : (byLower.get(key.toLowerCase()) ?? key);
    const childSchema = shape[canonical];
    out[canonical] =
      MAP_KEYS.has(canonical) || !childSchema ? child : canonicaliseKeys(child, shapeOf(childSchema));
  }
  return out;
}

/** Validate and normalise an Ops config; throws E_CONFIG naming every bad field. */
export function parseOpsConfig(value: unknown, source = 'Ops config'): OpsConfig {
  const normalised = canonicaliseKeys(value, shapeOf(OpsConfigSchema));
  const result = OpsConfigSchema.safeParse(normalised);
  if (result.success) return result.data;
  const issues = formatZodIssues(result.error);
  throw new UniproveError('E_CONFIG', {
    message: `${source} is not a valid Ops config:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
    hint: "Ops rejects unknown keys (it decodes with DisallowUnknownFields). Check the spelling against Ops's types/config.go.",
    details: { issues },
  });
}
