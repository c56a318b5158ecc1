/**
 * The serial console of an instance, read with getSerialPortOutput's start and
 * next offsets so that no byte is read twice or skipped, and cut into whole
 * lines (a line split between two reads is held until its end arrives).
 */

/** One read of the serial port: what getSerialPortOutput returns. */
export interface SerialChunk {
  contents: string;
  /** Offset of the first byte returned (later than asked when the 1 MiB buffer dropped older bytes). */
  start: number;
  /** Offset to ask for next time. */
  next: number;
}

export interface SerialReadResult {
  /** Whole lines completed by this read. */
  lines: string[];
  /** Raw text of this read, for the console log. */
  text: string;
  /** Bytes lost because the instance's buffer had dropped them before this read. */
  lostBytes: number;
}

/** Offsets and partial-line state of one console; feed it each read in order. */
export class SerialConsoleReader {
  #next = 0;
  #partial = '';
  #lost = 0;
  #lines = 0;

  /** The offset to pass as `start` on the next read. */
  get next(): number {
    return this.#next;
  }

  /** Total bytes the buffer dropped before they could be read. */
  get lostBytes(): number {
    return this.#lost;
  }

  get lineCount(): number {
    return this.#lines;
  }

  /** Take one read (its `start` must answer a request for `this.next`). */
  accept(chunk: SerialChunk): SerialReadResult {
    const lost = Math.max(0, chunk.start - this.#next);
    // A start before ours would repeat bytes: skip what we have already.
    const skip = Math.max(0, this.#next - chunk.start);
    const text = skip > 0 ? chunk.contents.slice(skip) : chunk.contents;
    if (lost > 0) {
      this.#lost += lost;
      this.#partial = '';
    }
    this.#next = Math.max(this.#next, chunk.next);
    const all = this.#partial + text;
    const parts = all.split('\n');
    this.#partial = parts.pop() ?? '';
    const lines = parts.map((l) => l.replace(/\r$/, ''));
    this.#lines += lines.length;
    return { lines, text, lostBytes: lost };
  }

  /** The unfinished last line, returned as a line at the very end of a run. */
  flush(): string[] {
    if (!this.#partial) return [];
    const line = this.#partial.replace(/\r$/, '');
    this.#partial = '';
    this.#lines++;
    return [line];
  }
}
