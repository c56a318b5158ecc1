/** Shapes of what a traced run touched, as read from an strace log. */

/** One path a traced program touched, deduplicated over the whole log. */
export interface TraceAccess {
  /** Absolute, lexically normalised path. */
  path: string;
  /** The first system call that touched it (`openat`, `execve`, `newfstatat`...). */
  syscall: string;
  /** Distinct pids that touched it, ascending (at most 64 are kept; `count` is exact). */
  pids: number[];
  /** How many calls touched it (for `missing`: failed attempts). */
  count: number;
  /** Line of the first call (counted over all inputs, from 1). */
  firstLine: number;
  /** What the first call returned: `0`, `3`, `ENOENT`... */
  result?: string;
  /** True when the call showed a directory (O_DIRECTORY, S_IFDIR, chdir). */
  isDirectory?: boolean;
  /** True when the file existed and was opened for writing without O_CREAT/O_TRUNC (also in `written`). */
  forWrite?: boolean;
  /**
   * True when every access came from a program the traced program ran (an exec in a child process, and what it
   * loaded and read), none from the traced program itself.
   */
  onlyHelpers?: boolean;
}

/**
 * Another program the traced program started: one it executed after its own exec (`execve`, `execveat`: a
 * helper run in a child, or the program replacing itself), or a copy of itself it forked that ran nothing else
 * (`fork`, `clone` without CLONE_VM). Counted by program, call and parent over the whole log.
 */
export interface TraceSpawn {
  /** The call: execve/execveat for a program run; fork/clone/clone3 for a copy of the process that ran nothing else. */
  syscall: string;
  /** The program run (for a fork: the program that forked). */
  path: string;
  /** Its command line as the log shows it (execve's argv, first time seen); absent for a fork. */
  argv?: string[];
  /** The program that ran it: what the process ran before (for a fork: the program that forked). */
  parent: string;
  /** The process that made the first such call (for a fork: the new process). */
  pid: number;
  /** Line of the first such call. */
  line: number;
  /** How many times. */
  count: number;
  /** For a fork: the last program the copy tried to run and could not (an exec that failed, e.g. ENOENT). */
  tried?: string;
}

/** A finding that did not stop the parse: how often it happened and the first few lines. */
export interface TraceWarning {
  kind:
    | 'garbled-line'
    | 'truncated-string'
    | 'unresolved-relative-path'
    | 'orphan-resume'
    | 'never-resumed'
    | 'line-too-long'
    | 'path-too-long'
    | 'cut-off-at-end'
    | 'strace-message';
  message: string;
  count: number;
  samples: { line: number; text: string }[];
}

export interface TraceStats {
  /** Lines read (all inputs). */
  lines: number;
  /** Bytes read (all inputs). */
  bytes: number;
  /** Distinct pids seen. */
  pids: number;
  /** Lines that looked like system calls (including unfinished/resumed halves). */
  syscallLines: number;
  /** Accesses under /proc, /sys and /dev left out of the lists. */
  pseudoDropped: number;
}

/** Everything a traced run touched, for file discovery. */
export interface TraceResult {
  /** Files and directories the program found (opens, execs, stats, readlinks, chdirs), by path. */
  opened: TraceAccess[];
  /** Paths probed and not there (ENOENT, ENOTDIR), by path, `count` = failed attempts. */
  missing: TraceAccess[];
  /** Programs executed successfully (also in `opened`). */
  execs: TraceAccess[];
  /** Folders the program listed (getdents64 on a folder it opened), by path. */
  listed: TraceAccess[];
  /**
   * Programs the traced program started, in the order first seen: its own first exec (the program itself, or
   * the one `ParseStraceOptions.program` names) is not one.
   */
  spawns: TraceSpawn[];
  /** Paths the program created or wrote: outputs, not dependencies. Sorted. */
  written: string[];
  warnings: TraceWarning[];
  stats: TraceStats;
}

/** A file name that was looked for and never found (a dlopen or exec search that failed). */
export interface FailedSearch {
  basename: string;
  /** Every path probed for it, in path order. */
  probed: string[];
  /** Failed attempts over all those paths. */
  attempts: number;
}
