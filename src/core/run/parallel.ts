/**
 * `uniprove run --parallel N --inputs FILE`: many proofs at once, each in its
 * own VM with its own image, volume copy and record; a summary at the end.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { mapLimit } from '../concurrency.js';
import { type ErrorSummary, isUniproveError, summarizeError, UniproveError } from '../errors.js';
import { requireRegularFile } from '../fs.js';
import type { RunOutcome } from '../record/record.js';
import {
  kernelVcpuPolicy,
  prepareTarget,
  type RunProverOptions,
  type RunResult,
  runProver,
} from './index.js';

/**
 * An inputs file: one run a line, its prover arguments either as a JSON array
 * (`["prove", "--seed", "3"]`) or split on spaces. Blank lines and # comments are skipped.
 */
export function parseInputs(text: string, source = 'inputs file'): string[][] {
  const runs: string[][] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new UniproveError('E_USAGE', {
          message: `${source} line ${i + 1}: not a JSON array: ${(error as Error).message}`,
          hint: 'Write one run a line: a JSON array of arguments, or arguments separated by spaces.',
        });
      }
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
        throw new UniproveError('E_USAGE', {
          message: `${source} line ${i + 1}: a JSON line must be an array of strings`,
        });
      }
      runs.push(value);
    } else runs.push(line.split(/\s+/));
  }
  if (runs.length === 0) {
    throw new UniproveError('E_USAGE', {
      message: `${source} has no runs in it`,
      hint: 'Write one run a line.',
    });
  }
  return runs;
}

/** Read and parse an inputs file (`--inputs FILE`), relative to `cwd`. */
export async function readInputs(path: string, cwd = process.cwd()): Promise<string[][]> {
  const file = resolve(cwd, path);
  await requireRegularFile(file, '--inputs', 'Give a file with one line of prover arguments per run.');
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new UniproveError('E_NOT_FOUND', {
      message: `--inputs ${file} cannot be read: ${(error as Error).message}`,
      cause: error,
    });
  });
  return parseInputs(text, file);
}

export interface RunParallelOptions extends Omit<RunProverOptions, 'args' | 'out'> {
  /** The inputs file (one run's arguments a line). */
  inputs: string;
  /** VMs at once. */
  parallel: number;
  /** Called as each run starts (metrics: running inputs). */
  onRunStart?: (index: number) => void;
  /** Called as each run ends. */
  onRunDone?: (entry: ParallelEntry) => void;
}

export interface ParallelEntry {
  index: number;
  args: string[];
  id?: string;
  dir?: string;
  outcome: RunOutcome;
  exitCode: number | null;
  error?: ErrorSummary;
  result?: RunResult;
}

export interface RunParallelResult {
  runs: ParallelEntry[];
  summary: Record<RunOutcome, number> & { total: number };
  /** True when every run succeeded. */
  ok: boolean;
}

/** Run the prover once per input line, N VMs at a time. */
export async function runParallel(options: RunParallelOptions): Promise<RunParallelResult> {
  const inputs = await readInputs(options.inputs, options.cwd);
  // Package once: parallel packaging into one folder would race.
  const prepared = await prepareTarget(options);
  const runs: ParallelEntry[] = inputs.map((args, index) => ({
    index,
    args,
    outcome: 'error',
    exitCode: null,
  }));
  // One kernel probe for every run of the batch.
  const vcpuPolicy = options.vcpuPolicy ?? kernelVcpuPolicy(options);
  // A run's failure is its entry's, never the batch's: every input gets its turn unless Ctrl-C stops the batch.
  const runOne = async (entry: ParallelEntry): Promise<void> => {
    options.onRunStart?.(entry.index);
    try {
      const result = await runProver(
        { ...options, args: entry.args, volumeCopies: true, vcpuPolicy },
        prepared,
      );
      Object.assign(entry, {
        id: result.id,
        dir: result.dir,
        outcome: result.outcome,
        exitCode: result.exitCode,
        result,
      });
    } catch (error) {
      entry.outcome = isUniproveError(error) && error.code === 'E_INTERRUPTED' ? 'interrupted' : 'error';
      entry.error = summarizeError(error);
      const runDir = isUniproveError(error) ? error.details.runDir : undefined;
      if (typeof runDir === 'string') entry.dir = runDir;
    }
    options.onRunDone?.(entry);
  };
  await mapLimit(runs, options.parallel, runOne, { signal: options.signal });
  for (const entry of runs) {
    if (entry.id === undefined && entry.error === undefined && options.signal?.aborted)
      entry.outcome = 'interrupted';
  }
  const summary = {
    total: runs.length,
    succeeded: 0,
    failed: 0,
    timeout: 0,
    unknown: 0,
    error: 0,
    interrupted: 0,
  };
  for (const r of runs) summary[r.outcome]++;
  return { runs, summary, ok: summary.succeeded === runs.length };
}
