/**
 * Reader for a Nanos serial console, with or without its trace output.
 *
 * One console holds, interleaved: kernel messages (`[0.472440] NET: ...`),
 * debugsyscalls lines (`[2] openat(-100, "/lib/...", 0x80000, 0x0) = -ENOENT`)
 * split into `<unfinished ...>` / `<... resumed>` pairs, indented kernel trace
 * lines (`    2 file fd 3, ...`), the `missing_files_begin` block, the
 * `syscall_summary` table, and whatever the program itself prints, sometimes
 * glued onto a trace line. Every line is classified with a few character
 * checks, so a gigabyte trace reads at disk speed.
 */
import { type EmitEvent, firstQuoted, type LogLine, type LogReader, PATH_SYSCALLS } from './events.js';

const UNFINISHED = ' <unfinished ...>';
const MAX_PENDING = 256;
/** Threads whose last call a trace-end event reports. */
const MAX_THREADS = 32;
/** A syscall trace line glued after the program's own text on one console line. */
const EMBEDDED_SYSCALL = /\[(\d+)\] (?:[a-z_][a-z0-9_]*\(|<\.\.\. )/;
/** The kernel's trace line of an unmap under way (munmap, or a mapping over another): `    8 vmap_remove_intersection: q [...`. */
const UNMAP_MARK = ' vmap_remove_intersection:';
const SUMMARY_ROW = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?([a-z_][a-z0-9_]*)\s*$/;

/** The thread of the kernel's trace line of an unmap under way, or undefined for any other line. */
function unmapThread(text: string): number | undefined {
  const mark = text.indexOf(UNMAP_MARK);
  if (mark <= 0) return undefined;
  const thread = text.slice(0, mark).trim();
  return /^\d+$/.test(thread) ? Number(thread) : undefined;
}

/**
 * An indented kernel trace line ("    2 file fd 3, ..."): true when it is one, which says nothing the rules use but
 * for an unmap under way (noted in `unmapping` by thread: one that never returns is where a thread stopped).
 */
function indentedTraceLine(
  text: string,
  log: LogLine['log'],
  lineNo: number,
  unmapping: Map<number, LogLine>,
): boolean {
  const pid = unmapThread(text);
  if (pid !== undefined) {
    if (unmapping.has(pid) || unmapping.size < MAX_THREADS) unmapping.set(pid, { log, lineNo, text });
    return true;
  }
  if (!text.startsWith('    ')) return false;
  const c = text.charCodeAt(4);
  return c >= 48 && c <= 57;
}

/** A map's entries in thread order. */
function byThread<T>(threads: Map<number, T>): [number, T][] {
  return [...threads.entries()].sort(([a], [b]) => a - b);
}

interface Pending {
  head: string;
  at: LogLine;
}

/** Parse the `[tid] ` prefix: returns the tid and where the rest starts, or -1 when absent. */
function bracketedNumber(
  text: string,
  open: number,
): { value: number; rest: number; dot: boolean } | undefined {
  let i = open + 1;
  let value = 0;
  const start = i;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    value = value * 10 + (c - 48);
    i++;
  }
  if (i === start) return undefined;
  const c = text.charCodeAt(i);
  if (c === 93 /* ] */ && text.charCodeAt(i + 1) === 32) return { value, rest: i + 2, dot: false };
  if (c === 46 /* . */) return { value, rest: i, dot: true };
  return undefined;
}

/** Nanos writes a failed call's result as `-ENOENT`: the errno name, or undefined for a success. */
function nanosErrno(result: string): string | undefined {
  if (result.charCodeAt(0) !== 45 /* - */ || result.charCodeAt(1) !== 69 /* E */) return undefined;
  const space = result.indexOf(' ');
  return result.slice(1, space === -1 ? undefined : space);
}

/**
 * Emit one completed call as a syscall event: calls that name a path, and failed calls of any kind.
 * `errnoOf` reads the failure from the result, whose shape differs between Nanos and strace.
 */
export function emitSyscall(
  emit: EmitEvent,
  pid: number,
  text: string,
  at: LogLine,
  errnoOf: (result: string) => string | undefined,
): void {
  const parts = splitCall(text);
  if (!parts) return;
  const isPath = PATH_SYSCALLS.has(parts.name);
  const errno = errnoOf(parts.result);
  if (!isPath && !errno) return;
  emit({
    type: 'syscall',
    at,
    pid,
    name: parts.name,
    path: isPath ? firstQuoted(parts.args) : undefined,
    result: parts.result,
    errno,
    args: parts.args,
  });
}

/** Split a completed call into its parts; undefined when it does not look like one. */
export function splitCall(call: string): { name: string; args: string; result: string } | undefined {
  const paren = call.indexOf('(');
  if (paren <= 0) return undefined;
  const eq = call.lastIndexOf(' = ');
  if (eq === -1 || eq < paren) return undefined;
  const name = call.slice(0, paren);
  const close = call.lastIndexOf(')', eq);
  return { name, args: call.slice(paren + 1, close > paren ? close : eq), result: call.slice(eq + 3).trim() };
}

/** Where a reader is in the two listings Nanos prints: the missing files, and strace's summary table. */
interface ListingState {
  inMissing: boolean;
  inSummary: boolean;
}

/** A line of the missing-files listing or the summary table (emitted as such); false for any other line. */
function readListing(
  state: ListingState,
  text: string,
  log: string,
  lineNo: number,
  emit: EmitEvent,
): boolean {
  const at = (): LogLine => ({ log, lineNo, text });
  if (state.inMissing) {
    if (text === 'missing_files_end') state.inMissing = false;
    else if (text.trim()) emit({ type: 'missing-listed', at: at(), name: text.trim() });
    return true;
  }
  if (text === 'missing_files_begin') {
    state.inMissing = true;
    return true;
  }
  if (text.startsWith('% time') && text.includes('syscall')) {
    state.inSummary = true;
    return true;
  }
  if (!state.inSummary) return false;
  if (text.startsWith('------')) return true;
  const row = SUMMARY_ROW.exec(text);
  if (!row) {
    state.inSummary = false;
    return false;
  }
  const syscall = row[3] ?? '';
  if (syscall === 'total') state.inSummary = false;
  else
    emit({ type: 'summary', at: at(), syscall, calls: Number(row[1]), errors: row[2] ? Number(row[2]) : 0 });
  return true;
}

/** Make a reader for one Nanos console log. */
export function createNanosReader(log: string, emit: EmitEvent): LogReader {
  const pending = new Map<number, Pending>();
  // The last call line of each thread, kept as line numbers and text already read (no copy per line).
  const lastLine = new Map<number, number>();
  const lastText = new Map<number, string>();
  // Threads whose last trace line is an unmap under way: a call line from the thread (the unmap returning) ends it.
  const unmapping = new Map<number, LogLine>();
  let exited = false;
  let lastLineNo = 0;
  const listing: ListingState = { inMissing: false, inSummary: false };

  const call = (pid: number, text: string, at: LogLine) => emitSyscall(emit, pid, text, at, nanosErrno);

  function syscallLine(pid: number, rest: string, text: string, lineNo: number): void {
    if (unmapping.size > 0) unmapping.delete(pid);
    if (lastLine.has(pid) || lastLine.size < MAX_THREADS) {
      lastLine.set(pid, lineNo);
      lastText.set(pid, text);
    }
    if (!exited && rest.charCodeAt(0) === 101 /* e */ && /^exit(?:_group)?\(/.test(rest)) exited = true;
    if (rest.startsWith('<... ')) {
      const end = rest.indexOf(' resumed>');
      if (end === -1) return;
      const name = rest.slice(5, end);
      const head = pending.get(pid);
      if (!head) return;
      pending.delete(pid);
      if (!head.head.startsWith(`${name}(`)) return;
      call(pid, head.head + rest.slice(end + 9), head.at);
      return;
    }
    if (rest.endsWith(UNFINISHED)) {
      const paren = rest.indexOf('(');
      const name = paren > 0 ? rest.slice(0, paren) : '';
      if (!PATH_SYSCALLS.has(name)) return;
      if (pending.size >= MAX_PENDING) pending.clear();
      pending.set(pid, { head: rest.slice(0, -UNFINISHED.length), at: { log, lineNo, text } });
      return;
    }
    // Cheap filter before building the event: only path calls (they always quote a path) and failures matter.
    const eq = rest.lastIndexOf(' = ');
    if (eq === -1) return;
    const paren = rest.indexOf('(');
    if (paren <= 0 || paren > eq) return;
    if (rest.charCodeAt(eq + 3) !== 45) {
      const quote = rest.indexOf('"', paren);
      if (quote === -1 || quote > eq || !PATH_SYSCALLS.has(rest.slice(0, paren))) return;
    }
    call(pid, rest, { log, lineNo, text });
  }

  function other(text: string, lineNo: number): void {
    if (text.charCodeAt(0) === 32 && indentedTraceLine(text, log, lineNo, unmapping)) return;
    if (readListing(listing, text, log, lineNo, emit)) return;
    // Program output glued to a trace line: "prog: [2] writev(...) <unfinished ...>".
    const embedded = text.includes('] ') ? EMBEDDED_SYSCALL.exec(text) : null;
    if (embedded && embedded.index > 0) {
      const prefix = text.slice(0, embedded.index);
      if (prefix.trim()) emit({ type: 'output', at: { log, lineNo, text } });
      syscallLine(Number(embedded[1]), text.slice(embedded.index + embedded[1]!.length + 3), text, lineNo);
      return;
    }
    emit({ type: 'output', at: { log, lineNo, text } });
  }

  return {
    format: 'nanos',
    line(text, lineNo) {
      lastLineNo = lineNo;
      if (text.length === 0) return;
      if (text.charCodeAt(0) === 91 /* [ */) {
        const n = bracketedNumber(text, 0);
        if (n && !n.dot) {
          syscallLine(n.value, text.slice(n.rest), text, lineNo);
          return;
        }
        if (n?.dot) {
          const close = text.indexOf('] ');
          if (close > 0) {
            const time = Number(text.slice(1, close));
            if (!Number.isNaN(time)) {
              emit({ type: 'kernel', at: { log, lineNo, text }, time, message: text.slice(close + 2) });
              return;
            }
          }
        }
      }
      other(text, lineNo);
    },
    end(cut) {
      pending.clear();
      // A log cut mid-line says nothing of whether the program was still running (the cut warning says why).
      if (lastLine.size > 0 && !cut) {
        const lastCalls = byThread(lastLine).map(([pid, lineNo]) => ({
          log,
          lineNo,
          text: lastText.get(pid) ?? '',
        }));
        const unmaps = byThread(unmapping).map(([thread, at]) => ({ thread, at }));
        emit({
          type: 'trace-end',
          at: { log, lineNo: lastLineNo, text: '' },
          exited,
          lastCalls,
          unmapping: unmaps,
        });
      }
    },
  };
}
