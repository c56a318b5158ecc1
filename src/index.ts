/**
 * uniprove's library API: one front end per step of the flow (recipe → closure → package → image → machine →
 * record), each what a `uniprove` verb calls, with its options and result types, and the shapes they return.
 * Everything else under src/core is the house's own and may change; docs/architecture.md shows a library call.
 */

// Compute Engine (`uniprove gcp`): a recipe, an image, a fleet; images; what is left, and its removal.
export type { GcpCommonOptions, GcpDryRunResult } from './core/cloud/context.js';
export type { GcpRunOptions, GcpRunResult } from './core/cloud/instance.js';
export type { GcpGcOptions, GcpGcResult, GcpListOptions, GcpListResult } from './core/cloud/inventory.js';
export { gcpGc, gcpList } from './core/cloud/inventory.js';
// debugging a run from its logs (`uniprove debug`).
export type { DiagnoseOptions, DiagnoseResult } from './core/diagnose/index.js';
export { diagnoseLogs } from './core/diagnose/index.js';
// closure: every file the binary needs, with reasons (`uniprove discover`, `uniprove why`).
export type {
  DiscoveredFile,
  DiscoverOptions,
  DiscoverResult,
  DiscoverWarning,
} from './core/discover/index.js';
export { discover } from './core/discover/index.js';
export type { WhyResult, WhyStep } from './core/discover/why.js';
export { explain } from './core/discover/why.js';
// the toolchain (`uniprove setup`, `uniprove doctor`).
export type { DoctorCheck, DoctorOptions, DoctorResult } from './core/doctor/index.js';
export { runDoctor } from './core/doctor/index.js';
// Errors: every failure is a UniproveError with a code, a hint and an exit code.
export type { ErrorCode, UniproveErrorOptions } from './core/errors.js';
export { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from './core/errors.js';
export type { FleetRecord } from './core/gcp/fleet/record.js';
export type { GcpFleetDryRunResult, GcpRunFleetOptions, GcpRunFleetResult } from './core/gcp/fleet/run.js';
export { gcpRunFleet } from './core/gcp/fleet/run.js';
export type { GcpRunRecipeOptions, GcpRunRecipeResult } from './core/gcp/run.js';
export { gcpRunRecipe } from './core/gcp/run.js';
export { gcpRun } from './core/gcp/run-image.js';
export type {
  GcpImageOptions,
  GcpImageRecipeOptions,
  GcpImageRecipeResult,
  GcpImageResult,
} from './core/image/gce.js';
export { gcpImage, gcpImageRecipe } from './core/image/gce.js';
// package: the image tree, the Ops configs and the lock (`uniprove package`, `uniprove verify`).
export type { PackageOptions, PackageResult } from './core/package/index.js';
export { packageRecipe } from './core/package/index.js';
export type { VerifyOptions, VerifyResult } from './core/package/verify.js';
export { verifyPackage } from './core/package/verify.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
export type { FileReasons, Reason } from './core/reasons.js';
// recipe: what to prove.
export type { LoadRecipeOptions, RecipeOverrides, ResolvedRecipe } from './core/recipe/load.js';
export { listRecipeNames, loadRecipe } from './core/recipe/load.js';
export type { Recipe } from './core/recipe/schema.js';
export type { Finding, FindingKind, Severity } from './core/record/findings.js';
export type { RunOutcome, RunProof, RunRecord, RunTimings, RunWarning } from './core/record/record.js';
// what the runs show: one HTML page with charts, one chart as SVG, or the figures as data (`uniprove report`).
export type {
  ChartName,
  ReportFigures,
  ReportFilter,
  ReportOptions,
  ReportResult,
} from './core/report/index.js';
export { makeReport } from './core/report/index.js';
// image, machine and record: a run on this host (`uniprove run`).
export type { RunProverOptions, RunResult } from './core/run/index.js';
export { readRunRecord, runProver } from './core/run/index.js';
export type { ParallelEntry, RunParallelOptions, RunParallelResult } from './core/run/parallel.js';
export { runParallel } from './core/run/parallel.js';
export type { SetupOptions, SetupResult } from './core/setup/index.js';
export { setupToolchain } from './core/setup/index.js';
export { VERSION } from './core/version.js';
// parameter sets as Ops volumes (`uniprove volume`).
export type {
  BuildVolumeOptions,
  BuildVolumeResult,
  ListVolumesOptions,
  RemoveVolumeOptions,
  VolumeStatus,
} from './core/volume/build.js';
export { buildVolume, listVolumes, removeVolume } from './core/volume/build.js';
export type { FetchParameterSetOptions, FetchParameterSetResult } from './core/volume/fetch.js';
export { fetchParameterSet } from './core/volume/fetch.js';
