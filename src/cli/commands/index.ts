/**
 * Every verb of the CLI; each file registers one command that calls one core function.
 * Command modules load lazily: a run of one command imports only that command's code,
 * which keeps start-up short (it sits in front of every proving run).
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';

type Register = (program: Command, ctx: CliContext) => void;

/** Command name -> its module, in the order --help lists them. */
const COMMANDS: Record<string, () => Promise<{ register: Register }>> = {
  discover: () => import('./discover.js'),
  why: () => import('./why.js'),
  package: () => import('./package.js'),
  verify: () => import('./verify.js'),
  run: () => import('./run.js'),
  volume: () => import('./volume.js'),
  debug: () => import('./debug.js'),
  report: () => import('./report.js'),
  gcp: () => import('./gcp/index.js'),
  setup: () => import('./setup.js'),
  doctor: () => import('./doctor.js'),
};

/**
 * Attach the commands to the program: only `only` when it names one, none when it is null
 * (`uniprove --version` needs none), else all (for help).
 */
export async function registerCommands(
  program: Command,
  ctx: CliContext,
  only?: string | null,
): Promise<void> {
  const names = only === null ? [] : only && only in COMMANDS ? [only] : Object.keys(COMMANDS);
  const modules = await Promise.all(
    names.map((name) => (COMMANDS[name] as () => Promise<{ register: Register }>)()),
  );
  for (const m of modules) m.register(program, ctx);
}
