/**
 * A finding as a run record keeps it: what the logs show went wrong, with its proof and a fix. The rules that
 * make findings live in diagnose/; every step that records or shows one reads this shape.
 */

export type FindingKind =
  | 'missing-library'
  | 'missing-file'
  | 'missing-program'
  | 'missing-cwd'
  | 'startup-failed'
  | 'library-mismatch'
  | 'kvm-failure'
  | 'exec-protection'
  | 'empty-mount'
  | 'readonly-volume'
  | 'reboot-loop'
  | 'out-of-memory'
  | 'crash'
  | 'empty-input'
  | 'still-running'
  | 'unmap-stall'
  | 'kernel-stop'
  | 'exit-status-lost'
  | 'optional-probe'
  | 'fork-exec-unsupported';

export type Severity = 'error' | 'warning' | 'info';

/** One thing the logs show went wrong (or will), with proof and a concrete fix. */
export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** What is concerned: a library's basename, a path, a signal, a mount point. */
  name: string;
  /** The host file that would satisfy a miss. */
  hostPath?: string;
  /** Where that file must go in the image. */
  guestPath?: string;
  /** Guest paths where the image already holds a file of that name (for a library: not where the loader looks). */
  presentAt?: string[];
  /** The recipe field to change (a dot-path: dirs, files, program, manifestPassthrough.cwd), when one is. */
  field?: string;
  message: string;
  fix: string;
  /** The log lines that show it, as `log:line: text`; at most a few. */
  evidence: string[];
}

/** An image file entry that would fix a finding: what `--fix` adds to a recipe. */
export interface FixEntry {
  hostPath: string;
  guestPath: string;
  reason: string;
}

/** An empty image folder that would fix a finding: what `--fix` adds to a recipe's `dirs`. */
export interface FixFolder {
  guestPath: string;
  reason: string;
}
