/** ELF reading and glibc-faithful shared-library resolution. */
export type { LdCache, LdCacheEntry } from './ldcache.js';
export { acceptedCacheFlags, lookupLdCache, parseLdSoCache, readLdSoCache } from './ldcache.js';
export type { ElfInfo } from './parse.js';
export { ELF_MACHINES, parseElf, parseElfBuffer } from './parse.js';
export type {
  ClosureFile,
  ClosureReason,
  ClosureResult,
  ClosureWarning,
  FoundLibrary,
  LoadedObject,
  MachineLayout,
  ResolveContext,
  ResolveOptions,
} from './resolve.js';
export { addToClosure, createResolveContext, resolveClosure, resolveLibrary } from './resolve.js';
export type { RootRealpath } from './rootfs.js';
export { realpathInRoot } from './rootfs.js';
