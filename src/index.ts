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
  GUEST_LIBRARY_DIRS,
  guestLibraryPath,
  locateNothing,
  parseNanosManifest,
} from './core/diagnose/index.js';
export type { ErrorCode, UniproveErrorOptions } from './core/errors.js';
export { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from './core/errors.js';
export type { ExecOptions, ExecResult } from './core/exec.js';
export { run as runProgram, spawn as spawnProgram, which } from './core/exec.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
