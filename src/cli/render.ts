/**
 * Everything the CLI writes: results to stdout (human or --json), errors and
 * warnings to stderr. Core code never prints; it hands results here.
 */
import { inspect } from 'node:util';
import { ExitCode, isUniproveError, summarizeError } from '../core/errors.js';

/** Where output goes; tests swap these for buffers. */
export interface Output {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const processOutput: Output = { stdout: process.stdout, stderr: process.stderr };

/** Write a value as stable, indented JSON followed by a newline. */
export function printJson(out: Output, value: unknown): void {
  out.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Write lines of human output. */
export function printLines(out: Output, lines: Iterable<string>): void {
  for (const line of lines) out.stdout.write(`${line}\n`);
}

/** Warnings are data in results; the CLI shows them on stderr in human mode. */
export function printWarnings(out: Output, warnings: readonly { code?: string; message: string }[]): void {
  for (const w of warnings) out.stderr.write(`warning: ${w.message}${w.code ? ` [${w.code}]` : ''}\n`);
}

/** Render any thrown value and return the exit status to use. */
export function renderError(out: Output, error: unknown, json: boolean): number {
  if (isUniproveError(error)) {
    if (json) {
      out.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
    }
    out.stderr.write(`error[${error.code}]: ${error.message}\n`);
    const tail = error.details.stderrTail ?? error.details.consoleTail;
    if (typeof tail === 'string' && tail.trim()) {
      out.stderr.write(`${tail.replace(/^/gm, '  | ')}\n`);
    }
    if (error.hint) out.stderr.write(`hint: ${error.hint}\n`);
    out.stderr.write(`see: docs/errors.md#${error.code.toLowerCase()}\n`);
    return error.exitCode;
  }
  if (json) {
    out.stdout.write(`${JSON.stringify({ error: summarizeError(error) }, null, 2)}\n`);
  }
  out.stderr.write('internal error: this is a bug in uniprove; please report it with the stack below.\n');
  out.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : inspect(error)}\n`);
  return ExitCode.internal;
}
