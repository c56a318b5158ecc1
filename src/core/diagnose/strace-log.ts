/**
 * A small reader for host strace logs, enough for diagnosis: the three line
 * shapes `openat(...) = 3`, `[pid 12] openat(...)` (strace -f on stderr) and
 * `12 openat(...)` (strace -f -o FILE), optional -t/-tt/-ttt timestamps,
 * `<unfinished ...>`/`<... resumed>` pairs and `+++ exited with N +++`.
 *
 * It sits beside the parser in src/core/strace/ on purpose: that one folds a
 * whole log into sets of files (what discovery needs), this one emits every
 * call with the log line it came from (the evidence a finding quotes), as the
 * Nanos reader does, so one set of rules reads both kinds of log. What they
 * share is the line shapes, not the output.
 */
import { type EmitEvent, type LogLine, type LogReader, PATH_SYSCALLS } from './events.js';
import { emitSyscall } from './nanos-log.js';

/** strace writes a failed call's result as `-1 ENOENT (No such file or directory)`. */
function straceErrno(result: string): string | undefined {
  return /^-1 (E[A-Z0-9]+)/.exec(result)?.[1];
}

const PREFIX = /^(?:\[pid\s+(\d+)\] |(\d+)\s+)?(?:(?:\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) )?/;
const EXITED = /^\+\+\+ (?:exited with (\d+)|killed by (SIG[A-Z0-9]+)(?: \(core dumped\))?) \+\+\+$/;

/** Make a reader for one strace log. */
export function createStraceReader(log: string, emit: EmitEvent): LogReader {
  const pending = new Map<number, { head: string; at: LogLine }>();

  const call = (pid: number, text: string, at: LogLine) => emitSyscall(emit, pid, text, at, straceErrno);

  return {
    format: 'strace',
    line(text, lineNo) {
      if (!text) return;
      const prefix = PREFIX.exec(text);
      const pid = Number(prefix?.[1] ?? prefix?.[2] ?? 0);
      const rest = prefix ? text.slice(prefix[0].length) : text;
      const at: LogLine = { log, lineNo, text };
      if (rest.startsWith('+++ ')) {
        const exit = EXITED.exec(rest);
        if (exit)
          emit({
            type: 'exit',
            at,
            pid,
            code: exit[1] === undefined ? undefined : Number(exit[1]),
            signal: exit[2],
          });
        return;
      }
      if (rest.startsWith('--- ')) {
        // "--- SIGSEGV {si_signo=SIGSEGV, ...} ---": the program's own output carries the story.
        emit({ type: 'output', at });
        return;
      }
      if (rest.startsWith('<... ')) {
        const end = rest.indexOf(' resumed>');
        const head = pending.get(pid);
        if (end === -1 || !head) return;
        pending.delete(pid);
        call(pid, head.head + rest.slice(end + 9), head.at);
        return;
      }
      if (rest.endsWith(' <unfinished ...>')) {
        const paren = rest.indexOf('(');
        if (paren > 0 && PATH_SYSCALLS.has(rest.slice(0, paren))) {
          if (pending.size > 256) pending.clear();
          pending.set(pid, { head: rest.slice(0, -' <unfinished ...>'.length), at });
        }
        return;
      }
      const paren = rest.indexOf('(');
      if (paren > 0 && /^[a-z_][a-z0-9_]*$/.test(rest.slice(0, paren)) && rest.lastIndexOf(') = ') > paren) {
        call(pid, rest, at);
        return;
      }
      emit({ type: 'output', at });
    },
    end() {
      pending.clear();
    },
  };
}

/**
 * Which reader a log needs, from a sample of its first lines: strace's
 * `-1 ENOENT (...)` results and `[pid N]` prefixes against Nanos's `[N] `
 * prefixes, `-ENOENT` results and `[seconds] ` kernel lines. A console with
 * neither (program output only) is read as a Nanos console.
 */
export function detectLogFormat(sample: string): 'nanos' | 'strace' {
  let nanos = 0;
  let strace = 0;
  let n = 0;
  for (const line of sample.split('\n')) {
    if (++n > 400) break;
    if (/^\[\d+\] [a-z_][a-z0-9_]*\(/.test(line) || /^\[\d+\.\d+\] /.test(line)) nanos++;
    else if (/^ {4}\d+ /.test(line) || line === 'missing_files_begin') nanos++;
    else if (
      /^(?:\[pid\s+\d+\] |\d+\s+)?(?:[\d:.]+ )?[a-z_][a-z0-9_]*\(.*\) += (?:-1 E[A-Z]+|\d|0x|\?)/.test(line)
    )
      strace++;
    else if (/^(?:\[pid\s+\d+\] |\d+\s+)?\+\+\+ (?:exited|killed)/.test(line)) strace++;
  }
  return strace > nanos ? 'strace' : 'nanos';
}
