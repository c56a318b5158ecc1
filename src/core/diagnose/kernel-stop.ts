/**
 * A Nanos kernel that stops: an assertion (`assertion X failed at FILE:LINE (IP 0x…) in FUNC()`), a fault in the
 * kernel (the message, then `cpu: N, context type: N` and the register dump), an exception while handling an
 * interrupt. After such a line the guest does not go on and often does not exit either (its other vCPUs keep
 * spinning), so a run would wait for --timeout. The watch reads the console as it arrives and, once it sees one,
 * signals the driver to stop the machine: at once on the assertion line (the last line Nanos prints), after a
 * short grace for a fault dump (so the dump is on the console too).
 */

/** The kernel's words for a stop, as Nanos prints them (src/runtime/runtime.h, src/unix/unix.c, src/x86_64/interrupt.c). */
const ASSERTION = /^assertion .+ failed at \S+:\d+ \(IP 0x[0-9a-f]+\) in \S+\(\)\s*$/;
const FAULT_HEADER = /^cpu: \d+, context type: \d+\s*$/;
const INTERRUPT_FAULT =
  /^exception (?:during interrupt handling|for invalid interrupt vector)\s*$|^cpu \d+, state \S+, vector \d+\s*$/;
const HALTS =
  /^(?:unhandled demand page failure for context type \d+|cannot get physical page for vaddr 0x[0-9a-f]+, ctx 0x[0-9a-f]+; OOM)\s*$/;

const FIRST_LETTER = /^\s*[aceu]/;

/** How a console line shows the kernel stopping: 'now' (its last words), 'dump' (a dump follows), or no stop. */
export function kernelStopLine(line: string): 'now' | 'dump' | undefined {
  // Most console lines (the program's output, trace lines) are told apart by their first letter alone.
  if (!FIRST_LETTER.test(line)) return undefined;
  const text = line.trim();
  if (ASSERTION.test(text) || HALTS.test(text)) return 'now';
  if (FAULT_HEADER.test(text) || INTERRUPT_FAULT.test(text)) return 'dump';
  return undefined;
}

/** Reads a console as it arrives; `signal` aborts once the kernel has stopped. */
export class KernelStopWatch {
  private readonly controller = new AbortController();
  private partial = '';
  private previous = '';
  private timer: NodeJS.Timeout | undefined;
  /** The line that shows the stop (and the one before a fault header: the fault's message). */
  quote: string | undefined;

  /** @param graceMs how long a fault dump may go on printing before the machine is stopped. */
  constructor(private readonly graceMs = 2000) {}

  /** Aborted when the kernel has stopped. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  /** Feed console output as it arrives (any chunking). */
  push(chunk: string): void {
    if (this.stopped) return;
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = (lines.pop() ?? '').slice(-4096);
    for (const line of lines) this.pushLine(line);
    // Nanos's last words may come without a newline before the guest stops printing.
    if (this.partial && kernelStopLine(this.partial) === 'now') {
      const last = this.partial;
      this.partial = '';
      this.pushLine(last);
    }
  }

  /** Feed one whole line; true when the kernel stopped on it (its last words). */
  pushLine(line: string): boolean {
    if (this.stopped) return true;
    const how = kernelStopLine(line.replace(/\r$/, ''));
    if (how === 'now') {
      this.quote ??= line.trim();
      this.fire();
      return true;
    }
    if (how === 'dump' && !this.timer) {
      this.quote =
        FAULT_HEADER.test(line.trim()) && this.previous ? `${this.previous} (${line.trim()})` : line.trim();
      this.timer = setTimeout(() => this.fire(), this.graceMs);
      this.timer.unref();
    }
    if (line.trim()) this.previous = line.trim();
    return false;
  }

  /** Stop watching (the machine ended by itself). */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    this.dispose();
    if (!this.stopped) this.controller.abort(new Error(`the Nanos kernel stopped: ${this.quote}`));
  }
}
