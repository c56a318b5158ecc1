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

/**
 * A finding that does not stop discovery. `runs-programs`: the program ran `path` (a program, or for a fork
 * itself) from `parent`, which fails inside Nanos; `listed-partly-packaged`: `parent` listed the folder `path`
 * and read some of its files, and `leftOut` are the others.
 */
export interface DiscoverWarning {
  code: string;
  message: string;
  path?: string;
  /** The program that ran `path`, listed it, or pulled it in. */
  parent?: string;
  /**
   * runs-programs: the call (execve, execveat, fork, clone), the command line it ran, how many times, and for a
   * fork the program its copy tried to run in vain.
   */
  syscall?: string;
  argv?: string[];
  count?: number;
  tried?: string;
  /** listed-partly-packaged: the folder's files the program never opened (the first 100), how many, their size. */
  leftOut?: { files: string[]; count: number; bytes: number };
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
