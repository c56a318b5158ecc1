/** uniprove's library API: re-exports only. */

export type {
  CreateLogReader,
  DefaultLocateOptions,
  DiagnosedLog,
  DiagnoseOptions,
  DiagnoseResult,
  DiagnoseWarning,
  Finding,
  FindingKind,
  FixEntry,
  FixFolder,
  ImageContents,
  ImageMount,
  Locate,
  LocateContext,
  LocateKind,
  LocateResult,
  LogEvent,
  LogFormat,
  LogReader,
  Severity,
} from './core/diagnose/index.js';
export {
  createDefaultLocate,
  createNanosReader,
  createStraceReader,
  detectLogFormat,
  diagnoseLogs,
  fixEntriesFromFindings,
  fixFoldersFromFindings,
  GUEST_LIBRARY_DIRS,
  guestLibraryPath,
  locateNothing,
  parseNanosManifest,
} from './core/diagnose/index.js';
export type { DoctorCheck, DoctorOptions, DoctorResult } from './core/doctor/index.js';
export { DOCTOR_CHECKS, runDoctor } from './core/doctor/index.js';
export type {
  ClosureFile,
  ClosureReason,
  ClosureResult,
  ClosureWarning,
  ElfInfo,
  FoundLibrary,
  LdCache,
  LdCacheEntry,
  LoadedObject,
  MachineLayout,
  ResolveContext,
  ResolveOptions,
  RootRealpath,
} from './core/elf/index.js';
export {
  addToClosure,
  createResolveContext,
  ELF_MACHINES,
  parseElf,
  parseElfBuffer,
  parseLdSoCache,
  readLdSoCache,
  realpathInRoot,
  resolveClosure,
  resolveLibrary,
} from './core/elf/index.js';
export type { ErrorCode, UniproveErrorOptions } from './core/errors.js';
export { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from './core/errors.js';
export type { ExecOptions, ExecResult, ProcessEnd, RunningProcess } from './core/exec.js';
export { run as runProgram, spawn as spawnProgram, which } from './core/exec.js';
export type { AttemptFailureKind, BackoffOptions } from './core/fleet/capacity.js';
export { backoffDelay, classifyAttemptError, isCapacityKind } from './core/fleet/capacity.js';
export type { FleetRecord } from './core/fleet/record.js';
export {
  buildFleetRecord,
  fleetError,
  fleetEventLine,
  fleetProgressEvent,
  newFleetId,
  writeFleetRecord,
} from './core/fleet/record.js';
export type {
  AttemptContext,
  AttemptOutcome,
  AttemptRecord,
  AttemptState,
  FleetClock,
  FleetEvent,
  FleetInput,
  FleetInputResult,
  FleetOptions,
  FleetResult,
  RunOne,
} from './core/fleet/scheduler.js';
export { runFleet, systemClock } from './core/fleet/scheduler.js';
export type { GcpBuiltImage, GcpRecipePlan, GcpRecipeSource } from './core/gcp/build.js';
export { buildGcpRecipeImage, fitCustomMachine, resolveGcpRecipe } from './core/gcp/build.js';
export type { GcpClientOptions, GcpEndpoints } from './core/gcp/clients.js';
export type { GcpTarget, GcpTargetSources } from './core/gcp/config.js';
export {
  gcloudActiveConfiguration,
  gcloudConfigDir,
  parseGcloudProperties,
  resolveGcpTarget,
} from './core/gcp/config.js';
export type { GcpCommonOptions, GcpDryRunResult, GcpRawDisk } from './core/gcp/context.js';
export { defaultBucket } from './core/gcp/context.js';
export type { GcpFleetImage, GcpFleetPlan, GcpFleetSpec } from './core/gcp/fleet-plan.js';
export {
  argsDigest,
  distinctArgs,
  fleetImageFor,
  fleetInstanceBody,
  fleetInstanceName,
  fleetLabels,
  fleetMachine,
  fleetVolumeDiskName,
  planFleet,
  planFleetAttempt,
  planFleetVolumeDisk,
} from './core/gcp/fleet-plan.js';
export type {
  GceFleetRunOneOptions,
  GcpFleetDryRunResult,
  GcpRunFleetOptions,
  GcpRunFleetResult,
} from './core/gcp/fleet-run.js';
export { fleetSweeper, fleetZoneDisks, gceFleetRunOne, gcpRunFleet } from './core/gcp/fleet-run.js';
export type { FleetSweepOptions, FleetSweepResult } from './core/gcp/fleet-sweep.js';
export { listFleetResources, sweepFleet } from './core/gcp/fleet-sweep.js';
export type {
  GcpImageOptions,
  GcpImageRecipeOptions,
  GcpImageRecipeResult,
  GcpImageResult,
} from './core/gcp/image.js';
export { gcpImage, gcpImageRecipe } from './core/gcp/image.js';
export type { GcpEndDetector, GcpRunOptions, GcpRunResult } from './core/gcp/instance.js';
export { GceInstance, gcpRun, resolveGcpRunSpec } from './core/gcp/instance.js';
export type {
  GcpGcOptions,
  GcpGcResult,
  GcpListedResource,
  GcpListOptions,
  GcpListResult,
} from './core/gcp/inventory.js';
export { gcpGc, gcpList } from './core/gcp/inventory.js';
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
export type {
  FamilyPrice,
  FleetCostEstimate,
  FleetCostSpec,
  MachineShape,
  PriceTable,
} from './core/gcp/prices.js';
export {
  checkMaxCost,
  costOfUsage,
  estimateFleetCost,
  hourlyPrice,
  machineShape,
  PRICE_TABLE,
} from './core/gcp/prices.js';
export type { GcpRunRecipeOptions, GcpRunRecipeResult } from './core/gcp/run.js';
export { gcpRunRecipe } from './core/gcp/run.js';
export { SerialConsoleReader } from './core/gcp/serial.js';
export type { PackImageOptions, PackImageResult } from './core/gcp/tarball.js';
export { packImageTarball, sha256File } from './core/gcp/tarball.js';
export type { AccelChoice, AccelDecision, DetectAccelOptions, HostKey } from './core/machine/accel.js';
export { checkDevKvm, detectAccel, probeKvm, readHostKey } from './core/machine/accel.js';
export type {
  DriverName,
  DriverOptions,
  DriverRun,
  MachineDriver,
  MachineEnd,
} from './core/machine/driver.js';
export { createDriver } from './core/machine/driver.js';
export { buildQemuArgs, decodeQemuExit, QemuMachine } from './core/machine/qemu.js';
export type {
  Accel,
  Machine,
  MachineDisk,
  MachineSpec,
  MachineState,
  MachineStatus,
  WaitOptions,
} from './core/machine/types.js';
export type {
  NanosRelease,
  OpsBuildResult,
  OpsBuildSpec,
  OpsCopyOutSpec,
  OpsLocation,
  OpsVersion,
} from './core/ops/build.js';
export { findNanosRelease, findOps, opsBuild, opsCopyOut, opsHomeDir, opsVersion } from './core/ops/build.js';
export type { OpsOptions, OpsVolume, OpsVolumeCreateSpec } from './core/ops/volume.js';
export { opsVolumeCreate, opsVolumeDelete, opsVolumeList, parseOpsVolumeTable } from './core/ops/volume.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
export type { FileReasons, Reason } from './core/reasons.js';
export type {
  ChartName,
  ReportFigures,
  ReportFilter,
  ReportOptions,
  ReportResult,
} from './core/report/index.js';
export { makeReport } from './core/report/index.js';
export type { PreparedTarget, RunProverOptions, RunResult } from './core/run/index.js';
export {
  extractConsoleBlocks,
  prepareTarget,
  readRunRecord,
  resolveRunConfig,
  runProver,
  TRACE_DEBUG_FLAGS,
} from './core/run/index.js';
export type { RunOnMachineOptions } from './core/run/lifecycle.js';
export { runOnMachine } from './core/run/lifecycle.js';
export type { ParallelEntry, RunParallelOptions, RunParallelResult } from './core/run/parallel.js';
export { parseInputs, runParallel } from './core/run/parallel.js';
export type { RunOutcome, RunProof, RunRecord, RunTimings, RunWarning } from './core/run/record.js';
export { appendReport, isRunId, newRunId, reportLine } from './core/run/record.js';
export type { SetupOptions, SetupResult, SetupStep } from './core/setup/index.js';
export { readSetupRecord, setupToolchain } from './core/setup/index.js';
export type { ParseStraceOptions } from './core/strace/parse.js';
export { failedSearches, parseStraceLog } from './core/strace/parse.js';
export type { ProbeOptions, ProbeResult, ProbeSyscalls } from './core/strace/probe.js';
export { PROBE_SYSCALL_SETS, PROBE_SYSCALLS, runProbe } from './core/strace/probe.js';
export type {
  FailedSearch,
  TraceAccess,
  TraceResult,
  TraceStats,
  TraceWarning,
} from './core/strace/types.js';
export type {
  BuildVolumeOptions,
  BuildVolumeResult,
  EnsureVolumeOptions,
  ListVolumesOptions,
  LoadParameterSetOptions,
  RemoveVolumeOptions,
  VolumeRecord,
  VolumeStatus,
} from './core/volume/build.js';
export {
  buildVolume,
  defaultVolumeSize,
  ensureVolume,
  listVolumes,
  loadParameterSet,
  removeVolume,
} from './core/volume/build.js';
export type { VerifyMode } from './core/volume/cache.js';
export type { DigestAlgorithm } from './core/volume/digest.js';
export { createHasher, hashFile, parseDigest } from './core/volume/digest.js';
export type {
  FetchedFile,
  FetchFailure,
  FetchParameterSetOptions,
  FetchParameterSetResult,
} from './core/volume/fetch.js';
export { fetchParameterSet } from './core/volume/fetch.js';
export type { ImportFilecoinOptions } from './core/volume/filecoin.js';
export {
  DEFAULT_FILECOIN_BASE_URL,
  importFilecoinParameters,
  parseSectorSize,
  toSetFile,
  urlFor,
} from './core/volume/filecoin.js';
export type {
  ParameterFileSpec,
  ParameterSetSpec,
  ResolvedParameterFile,
  ResolvedParameterSet,
} from './core/volume/spec.js';
export { parameterSetSchema, resolveParameterSet } from './core/volume/spec.js';
