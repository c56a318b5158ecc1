/**
 * Stream a log file line by line with bounded memory: a fixed read buffer,
 * lines longer than a limit cut, and a binary check on the first block so a
 * core dump or disk image given by mistake is refused with a clear error.
 */
import { isAscii } from 'node:buffer';
import type { Stats } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { UniproveError } from '../errors.js';
import { describeFileType, pipeBlocks } from '../fs.js';

export interface ReadLogOptions {
  /** Bytes read at a time (default 1 MiB). */
  chunkBytes?: number;
  /** Longer lines are cut to this many characters (default 64 KiB). */
  maxLineChars?: number;
  signal?: AbortSignal;
}

export interface ReadLogStatus {
  bytes: number;
  lines: number;
  /** The last line had no newline: the log was probably cut off. */
  endsMidLine: boolean;
  /** How many lines were longer than the limit and cut. */
  longLines: number;
}

/** True when a block of bytes does not look like text: NUL bytes, or many control bytes. */
export function looksBinary(block: Uint8Array): boolean {
  let control = 0;
  for (let i = 0; i < block.length; i++) {
    const b = block[i]!;
    if (b === 0) return true;
    // Tab, newline, carriage return, form feed and ESC (terminal colours) are text.
    if (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12 && b !== 27) control++;
  }
  return block.length > 0 && control / block.length > 0.1;
}

/** The bytes of a regular file, `chunkBytes` at a time into one reused buffer. */
async function* fileBlocks(handle: FileHandle, chunkBytes: number): AsyncGenerator<Buffer> {
  const buffer = Buffer.allocUnsafe(chunkBytes);
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, chunkBytes, null);
    if (bytesRead === 0) return;
    yield buffer.subarray(0, bytesRead);
  }
}

/**
 * Read `path` (a file, or a FIFO such as `<(ops run ...)`), calling `start(sample)` with the first block's
 * text (to pick a reader) and then `onLine` for each line, without its newline. What the path is, is
 * checked with stat before it is opened: a socket or a device is refused, a FIFO is read without blocking.
 */
export async function readLogLines(
  path: string,
  start: (sample: string) => (text: string, lineNo: number) => void,
  options: ReadLogOptions = {},
): Promise<ReadLogStatus> {
  const chunkBytes = options.chunkBytes ?? 1024 * 1024;
  const maxLine = options.maxLineChars ?? 64 * 1024;
  const hint = 'Give the path of a console log (ops run output, a run record) or an strace log.';
  let info: Stats;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UniproveError(code === 'ENOENT' ? 'E_NOT_FOUND' : 'E_LOG_INPUT', {
      message: code === 'ENOENT' ? `log ${path} does not exist` : `cannot read log ${path}: ${code ?? error}`,
      hint,
      cause: error,
      details: { path },
    });
  }
  if (info.isDirectory()) {
    throw new UniproveError('E_IS_DIRECTORY', {
      message: `${path} is a folder, not a log`,
      hint: 'Give the console log file inside it (a run record keeps it as console.log).',
      details: { path },
    });
  }
  if (!info.isFile() && !info.isFIFO()) {
    throw new UniproveError('E_NOT_REGULAR_FILE', {
      message: `${path} is ${describeFileType(info)}, not a log file`,
      hint: `${hint} A pipe works too: uniprove debug <(ops run ...).`,
      details: { path, type: describeFileType(info) },
    });
  }
  let handle: FileHandle | undefined;
  let blocks: AsyncGenerator<Buffer>;
  try {
    if (info.isFIFO()) blocks = pipeBlocks(path, options.signal);
    else {
      handle = await open(path, 'r');
      blocks = fileBlocks(handle, chunkBytes);
    }
  } catch (error) {
    throw new UniproveError('E_LOG_INPUT', {
      message: `cannot read log ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      hint,
      cause: error,
      details: { path },
    });
  }
  try {
    const decoder = new StringDecoder('utf8');
    const status: ReadLogStatus = { bytes: 0, lines: 0, endsMidLine: false, longLines: 0 };
    let onLine: ((text: string, lineNo: number) => void) | undefined;
    let carry = '';
    let skipping = false;
    let sawText = false;
    let sawNonAscii = false;
    for await (const block of blocks) {
      options.signal?.throwIfAborted();
      if (status.bytes === 0 && looksBinary(block.subarray(0, 64 * 1024))) {
        throw new UniproveError('E_LOG_INPUT', {
          message: `${path} is not a text log (it holds NUL or control bytes): is it an image, a core dump or a compressed file?`,
          hint: 'Give the console log as text: `ops run` output saved to a file, or the console.log of a run record. Uncompress .gz logs first.',
          details: { path },
        });
      }
      status.bytes += block.length;
      // Trace logs are ASCII: copying bytes is faster than decoding UTF-8 (no partial character can be pending then).
      // Once a non-ASCII byte was seen the decoder may hold part of a character: stay with it.
      if (!sawNonAscii && !isAscii(block)) sawNonAscii = true;
      const decoded = sawNonAscii ? decoder.write(block) : block.toString('latin1');
      const text = carry + decoded;
      if (!onLine) onLine = start(text.slice(0, 256 * 1024));
      let from = 0;
      for (;;) {
        const nl = text.indexOf('\n', from);
        if (nl === -1) break;
        if (skipping) {
          skipping = false;
        } else {
          let end = nl;
          if (end > from && text.charCodeAt(end - 1) === 13) end--;
          if (!sawText && end > from && text.slice(from, end).trim()) sawText = true;
          onLine(text.slice(from, end), ++status.lines);
        }
        from = nl + 1;
      }
      carry = from === 0 ? text : text.slice(from);
      if (skipping) carry = '';
      else if (carry.length > maxLine) {
        // A line longer than any trace line: keep its start, drop the rest up to the next newline.
        status.longLines++;
        sawText = true;
        onLine(carry.slice(0, maxLine), ++status.lines);
        carry = '';
        skipping = true;
      }
    }
    carry += decoder.end();
    // A long line already passed on (cut) and never ended: the log stops mid-line just as a short one would.
    if (skipping) status.endsMidLine = true;
    else if (carry.length > 0) {
      status.endsMidLine = true;
      if (carry.trim()) sawText = true;
      onLine?.(carry.endsWith('\r') ? carry.slice(0, -1) : carry, ++status.lines);
    }
    if (!sawText) {
      throw new UniproveError('E_LOG_INPUT', {
        message: `no evidence: the log ${path} is empty`,
        hint: 'Capture the console again: `ops run` prints it on stdout; save it with `ops run ... 2>&1 | tee console.log`. With --trace Nanos prints every system call.',
        details: { path, bytes: status.bytes },
      });
    }
    return status;
  } finally {
    await blocks.return(undefined);
    await handle?.close();
  }
}
