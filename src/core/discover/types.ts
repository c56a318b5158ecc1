/** What discovery reports: every file a program needs, each with the reasons it is there. */

import type { FileReasons } from '../reasons.js';

export type { Reason } from '../reasons.js';

/**
 * One file of the closure: `path` is the path the program uses (the guest path in the image), e.g.
 * /lib/x86_64-linux-gnu/libc.so.6; parents are what pulled it in (DT_NEEDED, PT_INTERP, the program
 * that dlopened it, a family config).
 */
export interface DiscoveredFile extends FileReasons {
  /** Every symlink from `path` on, then the real file: [path, next, ..., realPath]. */
  chain: string[];
  /** The library family that added it, for config-family. */
  family?: string;
  /** true for ELF shared objects and executables. */
  isElf: boolean;
}

/** A finding that does not stop discovery. */
export interface DiscoverWarning {
  code: string;
  message: string;
  path?: string;
}

export interface DiscoverResult {
  binary: string;
  /** Resolution root ('/' for the host). */
  root: string;
  files: DiscoveredFile[];
  warnings: DiscoverWarning[];
  /** Facts about the probe run, when there was one; `lingerMs` when it lingered after exit (probe.lingerMs). */
  probe?: { argv: string[]; exitCode: number; durationMs: number; lingerMs?: number; log?: string };
}
