/**
 * The host side of the console route for file proofs: native/proof-out.c, preloaded into the prover, writes
 * the proof file to the console at exit as base64 lines between two markers; this reads them back out of
 * console text that arrives in pieces (a line may be cut between two pieces), decodes each line as it comes
 * (the console is never held whole), checks the length and the sha256 the guest computed, and renames the
 * proof into place only when both match.
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UniproveError } from '../errors.js';

/** The marker lines and data-line prefix proof-out.c writes (keep the two in step). */
export const FILE_PROOF_BEGIN = 'UNIPROVE-FILE-PROOF-BEGIN';
export const FILE_PROOF_END = 'UNIPROVE-FILE-PROOF-END';
export const FILE_PROOF_ERROR = 'UNIPROVE-FILE-PROOF-ERROR';
export const FILE_PROOF_DATA = 'UPF:';
/** The line proof-out.c writes before the proof when it knows the prover's exit status (on_exit(3)). */
export const PROVER_EXIT = 'UNIPROVE-PROVER-EXIT';

/** Proof bytes on a full data line (proof-out.c's LINE_BYTES). */
const LINE_BYTES = 768;

/** Console bytes per proof byte: 1024 base64 characters, the prefix and a newline carry 768 bytes. */
export const CONSOLE_BYTES_PER_PROOF_BYTE = ((LINE_BYTES / 3) * 4 + FILE_PROOF_DATA.length + 1) / LINE_BYTES;

/** What came back: the proof in place, or why nothing did (the caller decides whether that is an error). */
export type FileProofStatus =
  | { state: 'received'; path: string; bytes: number; sha256: string; guestPath: string }
  | { state: 'absent' }
  | { state: 'guest-error'; guestPath: string; errno: number; message: string };

const BEGIN_RE = new RegExp(`${FILE_PROOF_BEGIN} bytes=(\\d+) path=(.*)$`);
const END_RE = new RegExp(`${FILE_PROOF_END} bytes=(\\d+) sha256=([0-9a-f]{64})`);
const ERROR_RE = new RegExp(`${FILE_PROOF_ERROR} errno=(\\d+) path=(\\S*) ?(.*)$`);
const EXIT_RE = new RegExp(`${PROVER_EXIT} status=(\\d{1,3})\\s*$`);
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

interface Transfer {
  guestPath: string;
  declared: number;
  bytes: number;
  hash: Hash;
  temp: string;
  out: WriteStream;
  /** A short (padded) line was seen: only the end marker may follow. */
  ended: boolean;
  lines: number;
}

/**
 * Receives one file proof from a console. Feed it console text with `push` (any chunking) or whole lines
 * with `pushLine`; `finish` says what came back. It writes only to `dest` (through a temp file beside it).
 */
export class FileProofReceiver {
  readonly dest: string;
  #partial = '';
  #transfer: Transfer | undefined;
  #status: FileProofStatus = { state: 'absent' };
  #failure: UniproveError | undefined;
  #writeError: Error | undefined;
  #pending: Promise<void>[] = [];
  #exitCode: number | undefined;

  constructor(dest: string) {
    this.dest = dest;
  }

  /** The prover's exit status as the guest reported it before the proof; undefined when no line said it. */
  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /**
   * Take a piece of console text; return the part a person should see live: the proof's data lines left
   * out, and the start of a line held back while it could still become one.
   */
  push(text: string): string {
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop() ?? '';
    let shown = '';
    for (const raw of parts) {
      const data = this.pushLine(raw);
      if (!data) shown += `${raw.slice(this.#shownLen)}\n`;
      this.#shownLen = 0;
    }
    const tail = this.#partial.replace(/^\r/, '');
    if (tail.length > 0 && !tail.startsWith(FILE_PROOF_DATA) && !FILE_PROOF_DATA.startsWith(tail)) {
      shown += this.#partial.slice(this.#shownLen);
      this.#shownLen = this.#partial.length;
    }
    return shown;
  }

  /** Characters of the held line already returned by push (it is not a data line). */
  #shownLen = 0;

  /** Take one whole console line (no newline); true when it was one of the proof's data lines. */
  pushLine(raw: string): boolean {
    const line = raw.replace(/^\r|\r$/g, '');
    if (line.startsWith(FILE_PROOF_DATA)) {
      this.#data(line.slice(FILE_PROOF_DATA.length));
      return true;
    }
    this.#other(line);
    return false;
  }

  #other(line: string): void {
    const exit = EXIT_RE.exec(line);
    if (exit) {
      // Kept whatever became of the proof: a transfer that failed still ended with the prover's exit.
      this.#exitCode = Number(exit[1]) & 0xff;
      return;
    }
    if (this.#failure) return;
    const t = this.#transfer;
    const begin = BEGIN_RE.exec(line);
    if (begin) {
      if (t) this.#fail(truncated(t, 'a second begin marker came before its end marker'));
      else this.#begin(begin[2] ?? '', Number(begin[1]));
      return;
    }
    const err = ERROR_RE.exec(line);
    if (err) {
      if (t) this.#abandon(t);
      this.#status = {
        state: 'guest-error',
        guestPath: err[2] ?? '',
        errno: Number(err[1]),
        message: err[3] ?? '',
      };
      return;
    }
    const end = END_RE.exec(line);
    if (end && t) this.#end(t, Number(end[1]), end[2] ?? '');
    // Anything else is someone else's line (the kernel, another thread): not part of the proof.
  }

  #begin(guestPath: string, declared: number): void {
    const temp = `${this.dest}.part-${process.pid}-${randomBytes(4).toString('hex')}`;
    const out = createWriteStream(temp);
    out.on('error', (error) => {
      this.#writeError ??= error;
    });
    this.#transfer = {
      guestPath,
      declared,
      bytes: 0,
      hash: createHash('sha256'),
      temp,
      out,
      ended: false,
      lines: 0,
    };
  }

  #data(text: string): void {
    const t = this.#transfer;
    if (this.#failure || !t) return;
    t.lines++;
    if (t.ended || text.length % 4 !== 0 || !BASE64_RE.test(text)) {
      this.#fail(
        corrupt(
          t,
          t.ended
            ? `data line ${t.lines} follows a short (last) line`
            : `data line ${t.lines} is not base64 (${text.length} characters: ${JSON.stringify(text.slice(0, 40))}...)`,
        ),
      );
      return;
    }
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length < LINE_BYTES) t.ended = true;
    t.bytes += bytes.length;
    t.hash.update(bytes);
    t.out.write(bytes);
  }

  #end(t: Transfer, bytes: number, sha256: string): void {
    // Still the current transfer here: a failure below removes its temp file.
    const got = t.hash.digest('hex');
    if (bytes !== t.bytes) {
      this.#fail(
        t.bytes < bytes
          ? truncated(t, `the end marker says ${bytes} bytes, the data lines held ${t.bytes}`)
          : corrupt(t, `the end marker says ${bytes} bytes, the data lines held ${t.bytes}`),
      );
      return;
    }
    if (got !== sha256) {
      this.#fail(corrupt(t, `sha256 ${got} of what arrived is not ${sha256}, the guest's`));
      return;
    }
    this.#transfer = undefined;
    const status: FileProofStatus = {
      state: 'received',
      path: this.dest,
      bytes: t.bytes,
      sha256: got,
      guestPath: t.guestPath,
    };
    this.#pending.push(
      closeStream(t.out).then(async () => {
        if (this.#writeError) throw this.#writeError;
        await rename(t.temp, this.dest);
        this.#status = status;
      }),
    );
    if (t.declared !== bytes) {
      // The file changed size while it was read (the prover still writing it at exit): what came is what
      // the guest hashed, so it is kept, but the record says so through `declaredBytes`.
      this.#declaredMismatch = { declared: t.declared, sent: bytes };
    }
  }

  #declaredMismatch: { declared: number; sent: number } | undefined;

  /** The size the guest saw when it began, when it differs from what it sent. */
  get declaredMismatch(): { declared: number; sent: number } | undefined {
    return this.#declaredMismatch;
  }

  #abandon(t: Transfer): void {
    this.#transfer = undefined;
    this.#pending.push(closeStream(t.out).then(() => rm(t.temp, { force: true })));
  }

  #fail(error: UniproveError): void {
    this.#failure ??= error;
    const t = this.#transfer;
    if (t) this.#abandon(t);
  }

  /**
   * The console has ended: flush what is held, settle the file, and say what came back. Throws
   * E_PROOF_TRUNCATED or E_PROOF_CORRUPT for a transfer that began and did not arrive whole (nothing is
   * left at `dest` then).
   */
  async finish(): Promise<FileProofStatus> {
    if (this.#partial) {
      const rest = this.#partial;
      this.#partial = '';
      this.#shownLen = 0;
      // A data line with no newline was cut by the end of the console: truncation, not damage.
      if (!rest.replace(/^\r/, '').startsWith(FILE_PROOF_DATA)) this.pushLine(rest);
    }
    const t = this.#transfer;
    if (t && !this.#failure) this.#fail(truncated(t, 'the console ended before the end marker'));
    await Promise.all(this.#pending);
    if (this.#writeError) throw this.#writeError;
    if (this.#failure) throw this.#failure;
    return this.#status;
  }
}

function closeStream(out: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (out.closed) resolve();
    else out.end(() => resolve());
  });
}

function truncated(t: Transfer, why: string): UniproveError {
  return new UniproveError('E_PROOF_TRUNCATED', {
    message: `the file proof ${t.guestPath} did not come back whole through the console: ${why} (${t.bytes} of ${t.declared} bytes arrived)`,
    hint: 'The run may have ended (timeout, preemption, a crash) while the proof was being written out, or the console dropped bytes: raise --timeout, or read the end of console.log in the run folder.',
    details: { guestPath: t.guestPath, declaredBytes: t.declared, receivedBytes: t.bytes },
  });
}

function corrupt(t: Transfer, why: string): UniproveError {
  return new UniproveError('E_PROOF_CORRUPT', {
    message: `the file proof ${t.guestPath} came back through the console damaged: ${why}`,
    hint: 'Another writer broke into the proof lines, or the console lost bytes; run again. console.log in the run folder holds what arrived.',
    details: { guestPath: t.guestPath, declaredBytes: t.declared, receivedBytes: t.bytes },
  });
}

/** Make the folder a received proof goes to. */
export async function prepareProofDest(dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
}
