/** Options several commands share: recipe overrides and where recipes are found. */
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { parseDuration } from '../../core/duration.js';
import { ExitCode, UniproveError } from '../../core/errors.js';
import { opsHomeDir } from '../../core/ops/build.js';
import type { LoadRecipeOptions } from '../../core/recipe/load.js';
import type { RunOutcome } from '../../core/record/record.js';
import type { CliContext } from '../context.js';

/** Flags that replace recipe fields, the same on package, verify, run and gcp run. */
export function addRecipeOverrides(cmd: Command): Command {
  return cmd
    .option('--binary <path>', "use this prover binary instead of the recipe's")
    .option('--arg <value>', "replace the recipe's arguments (repeat for each)", collect, undefined)
    .option('--env <KEY=VALUE>', 'add or replace an environment variable (repeat)', collect, undefined)
    .addOption(new Option('--memory <size>', 'guest memory, e.g. 4G'))
    .addOption(
      new Option('--cpus <n>', 'guest vCPUs: a number, or "all" (this host\'s cores)').argParser(cpusFlag),
    );
}

/** --cpus: a positive number, or "all". */
function cpusFlag(value: string): number | 'all' {
  return value.trim().toLowerCase() === 'all' ? 'all' : positiveInt('--cpus')(value);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A commander parser for a duration flag (90, 90s, 15m, 6h) into milliseconds. */
export function durationFlag(flag: string) {
  return (value: string): number => parseDuration(value, flag);
}

/** A commander parser for whole numbers from `min` on, whose error names the flag and says what it wants. */
function wholeNumber(flag: string, min: number, wanted: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) {
      throw new UniproveError('E_USAGE', {
        message: `${flag} must be ${wanted}, got "${value}"`,
        hint: `Give digits only, e.g. \`${flag} ${Math.max(min, 1) * 2}\`.`,
      });
    }
    return n;
  };
}

/** A commander parser for positive integers that names the flag in its error. */
export function positiveInt(flag: string) {
  return wholeNumber(flag, 1, 'a positive integer');
}

/** A commander parser for integers >= 0 (a CPU number) that names the flag in its error. */
export function nonNegativeInt(flag: string) {
  return wholeNumber(flag, 0, 'a whole number >= 0');
}

/** Recipe-loading options from the environment and the override flags. */
export function recipeLoadOptions(
  ctx: CliContext,
  opts: { binary?: string; arg?: string[]; env?: string[]; memory?: string; cpus?: number | 'all' },
): LoadRecipeOptions {
  const env: Record<string, string> = {};
  for (const pair of opts.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UniproveError('E_USAGE', { message: `--env takes KEY=VALUE, got "${pair}"` });
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    cwd: ctx.cwd,
    ...(ctx.env.PATH ? { pathEnv: ctx.env.PATH } : {}),
    proversDirs: [
      join(ctx.cwd, 'provers'),
      ...(ctx.env.UNIPROVE_PROVERS ? ctx.env.UNIPROVE_PROVERS.split(':') : []),
    ],
    overrides: {
      ...(opts.binary ? { binary: opts.binary } : {}),
      ...(opts.arg ? { args: opts.arg } : {}),
      ...(Object.keys(env).length ? { env } : {}),
      ...(opts.memory ? { memory: opts.memory } : {}),
      ...(opts.cpus ? { cpus: opts.cpus } : {}),
    },
  };
}

/** uniprove's exit status for a run's outcome, whatever machine ran it: 0 succeeded, 6 timeout, 130 Ctrl-C, else 1. */
export function exitForOutcome(outcome: RunOutcome): number {
  if (outcome === 'succeeded') return ExitCode.ok;
  if (outcome === 'timeout') return ExitCode.timeout;
  if (outcome === 'interrupted') return ExitCode.interrupted;
  return ExitCode.failure;
}

/**
 * Before work that starts machines or programs: sweep what a uniprove killed hard left behind (run records still
 * `running` in `runsDir` and their images; processes that outlived it; its temporary folders), and say on stderr
 * what was swept, so nothing is swept silently.
 */
export async function sweepLeftBehind(ctx: CliContext, runsDir?: string): Promise<void> {
  // Processes first: `ops run`'s orphaned QEMU is ended and named here, before its record is closed.
  const { sweepLeftovers } = await import('../../core/leftovers.js');
  const left = await sweepLeftovers();
  const runs =
    runsDir === undefined
      ? []
      : await import('../../core/run/sweep.js').then(({ sweepAbandonedRuns }) =>
          sweepAbandonedRuns({ runsDir, opsHome: opsHomeDir(ctx.env) }),
        );
  const lines = [
    ...runs.map(
      (run) =>
        `swept run ${run.id}: its uniprove (pid ${run.pid}) is gone; marked abandoned in ${run.dir}/record.json${run.removed.length ? `, removed ${run.removed.join(', ')}` : ''}${run.cloud ? `; ${run.cloud}` : ''}`,
    ),
    ...left.processes.map(
      (p) =>
        `swept process ${p.pid} (${p.command.slice(0, 120)}): the uniprove that started it is gone; killed`,
    ),
    ...left.folders.map((f) => `swept temporary folder ${f}: the uniprove that made it is gone; removed`),
  ];
  for (const line of lines) ctx.out.stderr.write(`${line}\n`);
}
