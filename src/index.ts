/** uniprove's library API: re-exports only. */

export type { ErrorCode, UniproveErrorOptions } from './core/errors.js';
export { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from './core/errors.js';
export type { ExecOptions, ExecResult } from './core/exec.js';
export { run as runProgram, spawn as spawnProgram, which } from './core/exec.js';
export type { GcpClientOptions, GcpEndpoints } from './core/gcp/clients.js';
export type {
  GcpCommonOptions,
  GcpDryRunResult,
  GcpEndDetector,
  GcpGcOptions,
  GcpGcResult,
  GcpImageOptions,
  GcpImageResult,
  GcpListedResource,
  GcpListOptions,
  GcpListResult,
  GcpRawDisk,
  GcpRunOptions,
  GcpRunResult,
} from './core/gcp/commands.js';
export { defaultBucket, gcpGc, gcpImage, gcpList, gcpRun, resolveGcpRunSpec } from './core/gcp/commands.js';
export type { GcpTarget, GcpTargetSources } from './core/gcp/config.js';
export {
  gcloudActiveConfiguration,
  gcloudConfigDir,
  parseGcloudProperties,
  resolveGcpTarget,
} from './core/gcp/config.js';
export { ResourceLedger } from './core/gcp/ledger.js';
export type {
  GcpCall,
  GcpImageSource,
  GcpMachineSpec,
  GcpPlan,
  GcpResourceRef,
  GcpRunSpec,
} from './core/gcp/plan.js';
export { DISK_TYPES, planImage, planImageCommand, planRun, planVolumeDisk } from './core/gcp/plan.js';
export { SerialConsoleReader } from './core/gcp/serial.js';
export type { PackImageOptions, PackImageResult } from './core/gcp/tarball.js';
export { packImageTarball, sha256File } from './core/gcp/tarball.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
