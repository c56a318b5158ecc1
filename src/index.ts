/** uniprove's library API: re-exports only. */

export type { ErrorCode, UniproveErrorOptions } from './core/errors.js';
export { ERROR_CODES, ExitCode, isUniproveError, UniproveError } from './core/errors.js';
export type { ExecOptions, ExecResult } from './core/exec.js';
export { run as runProgram, spawn as spawnProgram, which } from './core/exec.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
export type { ParseStraceOptions } from './core/trace/parse.js';
export { failedSearches, parseStraceLog } from './core/trace/parse.js';
export type { ProbeOptions, ProbeResult } from './core/trace/probe.js';
export { PROBE_SYSCALLS, runProbe } from './core/trace/probe.js';
export type { FailedSearch, TraceAccess, TraceResult, TraceStats, TraceWarning } from './core/trace/types.js';
