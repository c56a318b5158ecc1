/** uniprove's library API: re-exports only. */

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
export type { ExecOptions, ExecResult } from './core/exec.js';
export { run as runProgram, spawn as spawnProgram, which } from './core/exec.js';
export type { OnProgress, ProgressEvent } from './core/progress.js';
