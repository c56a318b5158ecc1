/** What a fuzzed CLI run may end as: a result or a uniprove error, never exit 70, a stack trace or a hang. */
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, ExitCode } from '../../src/core/errors.js';
import type { CliRun } from '../helpers/cli.js';

const EXIT_STATUSES = new Set<number>(Object.values(ExitCode).filter((c) => c !== ExitCode.internal));

/** One fuzzed command line, and what kind of case it is. */
export interface Case {
  what: string;
  argv: string[];
}

/**
 * A PATH folder with the tools uniprove may start for these commands and nothing else: no cargo (a recipe
 * naming `cargo build` would build in the repository), ops, QEMU or gcloud.
 */
export function toolsOnly(bin: string): string {
  mkdirSync(bin);
  for (const tool of ['strace', 'bwrap', 'taskset', 'cp', 'tar', 'sh']) {
    const found = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']
      .map((d) => join(d, tool))
      .find((p) => existsSync(p));
    if (found) symlinkSync(found, join(bin, tool));
  }
  return bin;
}

/** What is wrong with one run, or undefined. */
export function problem(c: Case, run: CliRun): string | undefined {
  if (run.exitCode === -1) return 'it hung (killed at the time limit) or died of a signal';
  // A stack frame is `at NAME (FILE:LINE:COL)` or `at FILE:LINE:COL`; a help text's wrapped line that starts
  // with "at the proof's end marker (or ..." is not one.
  if (
    run.exitCode === ExitCode.internal ||
    /internal error|Unhandled|^\s+at (?:.*\()?(?:file:\/\/|node:|\/)[^\s()]*:\d+:\d+\)?$/m.test(run.stderr)
  ) {
    return 'an internal error (exit 70 or a stack trace)';
  }
  if (!EXIT_STATUSES.has(run.exitCode)) return `exit status ${run.exitCode} is not one of docs/errors.md`;
  const end = c.argv.indexOf('--');
  const own = end === -1 ? c.argv : c.argv.slice(0, end);
  // With --help (or a word commander reads as help) the output is the help text.
  if (!own.includes('--json') || own.includes('--help') || own.includes('-h') || own[0] === 'help') return;
  if (run.exitCode === 0 && run.stdout === '') return;
  let value: unknown;
  try {
    value = JSON.parse(run.stdout);
  } catch {
    return '--json was given but stdout is not one JSON value';
  }
  if (run.exitCode > 1) {
    const error = (value as { error?: { code?: string; message?: string } }).error;
    if (!error || typeof error.message !== 'string' || !(String(error.code) in ERROR_CODES)) {
      return `--json was given and it failed (exit ${run.exitCode}) without an { error: { code, message } } object`;
    }
  }
  return undefined;
}
