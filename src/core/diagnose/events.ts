/**
 * What a log reader hands to the diagnosis rules: one event per line that
 * matters, whatever the log's format (a Nanos console, a host strace log).
 *
 * Readers are small state machines fed one line at a time, so a log of any
 * size is read with bounded memory; a new format is a new reader.
 */

/** The formats a log can be in; each has a reader. */
export type LogFormat = 'nanos' | 'strace';

/** Where an event came from: the log's label, 1-based line number, the line. */
export interface LogLine {
  log: string;
  lineNo: number;
  text: string;
}

/**
 * One system call that matters for diagnosis: it names a path (open, execve,
 * stat...) or it failed. `errno` is set when it failed ('ENOENT').
 */
export interface SyscallEvent {
  type: 'syscall';
  at: LogLine;
  pid: number;
  name: string;
  /** The first path argument, as written in the log. */
  path: string | undefined;
  /** The result as the log shows it ('3', '-ENOENT', '-1 ENOENT (No such file...)'). */
  result: string;
  errno: string | undefined;
  /** The argument text between the parentheses (the part kept for rules that need flags). */
  args: string;
}

/** A line that is not a trace line: the program's own output or a kernel message without timestamp. */
export interface OutputEvent {
  type: 'output';
  at: LogLine;
}

/** A Nanos kernel message with its boot-clock timestamp: `[0.472440] NET: ...`. */
export interface KernelEvent {
  type: 'kernel';
  at: LogLine;
  time: number;
  message: string;
}

/** One basename from Nanos's `missing_files_begin` ... `missing_files_end` block. */
export interface MissingListedEvent {
  type: 'missing-listed';
  at: LogLine;
  name: string;
}

/** One row of a syscall summary table (Nanos `syscall_summary`, strace -c). */
export interface SummaryEvent {
  type: 'summary';
  at: LogLine;
  syscall: string;
  calls: number;
  errors: number;
}

/** A process ended (strace `+++ exited with N +++` / `+++ killed by SIG +++`). */
export interface ExitEvent {
  type: 'exit';
  at: LogLine;
  pid: number;
  code: number | undefined;
  signal: string | undefined;
}

/**
 * A Nanos trace ended (its last line read): the last call each numbered thread made, and whether any thread
 * called exit or exit_group. A trace that ends with no exit is a program that was still running.
 */
export interface TraceEndEvent {
  type: 'trace-end';
  at: LogLine;
  exited: boolean;
  /** The last call line of each thread, in thread order (at most a few dozen threads). */
  lastCalls: LogLine[];
  /** Threads whose last line is the kernel's trace of an unmap that never returned (`vmap_remove_intersection`). */
  unmapping: { thread: number; at: LogLine }[];
}

export type LogEvent =
  | SyscallEvent
  | OutputEvent
  | KernelEvent
  | MissingListedEvent
  | SummaryEvent
  | ExitEvent
  | TraceEndEvent;

export type EmitEvent = (event: LogEvent) => void;

/** A reader for one log format, fed line by line (without the newline). */
export interface LogReader {
  readonly format: LogFormat;
  line(text: string, lineNo: number): void;
  /** No more lines: flush what is pending (a call left `<unfinished ...>`). */
  /** The log ended; `cut`: it ended in the middle of a line (the copy or the console was cut off). */
  end(cut?: boolean): void;
}

/** Makes a reader for one log; `log` is the label used in evidence lines. */
export type CreateLogReader = (log: string, emit: EmitEvent) => LogReader;

/** System calls whose first string argument is a path the program wanted. */
export const PATH_SYSCALLS: ReadonlySet<string> = new Set([
  'open',
  'openat',
  'openat2',
  'creat',
  'access',
  'faccessat',
  'faccessat2',
  'stat',
  'lstat',
  'newfstatat',
  'fstatat64',
  'statx',
  'execve',
  'execveat',
  'mkdir',
  'mkdirat',
  'unlink',
  'unlinkat',
  'rename',
  'renameat',
  'renameat2',
  'readlink',
  'readlinkat',
  'truncate',
  'chdir',
  'uselib',
]);

/** The first double-quoted string in `text` after `from`, with strace's escapes undone. */
export function firstQuoted(text: string, from = 0): string | undefined {
  const start = text.indexOf('"', from);
  if (start === -1) return undefined;
  let end = text.indexOf('"', start + 1);
  while (end !== -1 && text.charCodeAt(end - 1) === 92 /* \ */) end = text.indexOf('"', end + 1);
  if (end === -1) return undefined;
  const raw = text.slice(start + 1, end);
  return raw.includes('\\') ? raw.replace(/\\(["\\])/g, '$1') : raw;
}
