/**
 * The uniprove command-line program: one commander program, one top-level
 * catch that renders the error and picks the exit status.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, UniproveError } from '../core/errors.js';
import { toWriteError } from '../core/fs.js';
import { VERSION } from '../core/version.js';
import { registerCommands } from './commands/index.js';
import type { CliContext } from './context.js';
import { type Output, processOutput, renderError } from './render.js';

/** Build the commander program; exported for tests and docs generation. */
export async function createProgram(ctx: CliContext, only?: string | null): Promise<Command> {
  const program = new Command('uniprove')
    .description(
      'Turn a zero-knowledge prover binary into a Nanos unikernel, run it under QEMU or on Google Compute Engine, and bring back its logs and proofs. Wraps the Ops CLI (nanovms/ops).',
    )
    .version(VERSION, '-V, --version')
    .configureOutput({
      writeOut: (s) => ctx.out.stdout.write(s),
      writeErr: (s) => ctx.out.stderr.write(s),
      // Commander's own complaints (unknown option, missing argument) come back as a UniproveError, which main
      // renders like any other: on stderr, and as the `{ error }` object on stdout under --json.
      outputError: () => {},
    })
    .exitOverride();
  program.addHelpText(
    'after',
    `
Typical flow:
  $ uniprove discover ./benchy -- winning-post --size 2KiB --fake   what files does it need?
  $ uniprove package benchy                                         stage them with an Ops config
  $ uniprove run benchy                                             prove inside Nanos, keep the evidence

Every command takes --json for machine-readable output. Exit status: 0 ok, 1 the work failed,
2 bad input or config, 3 a tool is missing, 4 download/digest, 5 cloud, 6 timeout, 70 internal bug, 130 Ctrl-C.
Errors are explained in docs/errors.md.`,
  );
  await registerCommands(program, ctx, only);
  for (const command of commandTree(program)) {
    command.exitOverride((error) => {
      throw usageError(error, command);
    });
  }
  return program;
}

function* commandTree(command: Command): Generator<Command> {
  yield command;
  for (const sub of command.commands) yield* commandTree(sub);
}

/** `uniprove volume fetch`: the words that name a command, for hints. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * A commander exit as uniprove reports it: --help and --version stay commander's (they exit 0), every complaint
 * about the command line becomes E_USAGE naming the command whose --help says what it takes.
 */
function usageError(error: CommanderError, command: Command): Error {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return error;
  if (error.code === 'commander.help' && error.exitCode === 0) return error;
  const path = commandPath(command);
  // commander.help with a non-zero status: a command with sub-verbs (or uniprove itself) was given none; the
  // help is already on stderr.
  const message =
    error.code === 'commander.help'
      ? `${path} needs a command: ${command.commands.map((c) => c.name()).join(', ')}`
      : error.message.replace(/^error: /, '');
  return new UniproveError('E_USAGE', {
    message,
    hint: `Run \`${path} --help\` for what it takes.`,
    cause: error,
  });
}

/** Whether the command line asks for --json: before a `--`, after which words belong to the prover. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

function ignoreClosedPipe(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
}

/**
 * The signals that stop uniprove cleanly (machines stopped, records closed): Ctrl-C, SIGTERM, and SIGHUP, which a
 * closed terminal or a dropped ssh session sends and which would otherwise end uniprove with nothing cleaned up.
 */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * The second Ctrl-C (or SIGTERM, SIGHUP): end now, whatever is pending. process.exit() is no way out: it waits for
 * Node's worker threads, and one blocked in a system call (an open() of a FIFO nobody writes) never returns.
 * Dying of the signal itself cannot wait on anything, and tells the shell and any calling script what happened:
 * the shell shows exit status 128 + signal (130 for Ctrl-C), as for any program Ctrl-C stops.
 */
function quitAtOnce(signal: NodeJS.Signals): never {
  for (const name of STOP_SIGNALS) process.removeAllListeners(name);
  process.kill(process.pid, signal);
  // Only reached if the signal could not end the process (it cannot be delivered to ourselves).
  process.exit(ExitCode.interrupted);
}

/**
 * A full or read-only disk is the host's state, never a bug: a refusal that a writer did not type itself
 * (with the file it was writing) still becomes E_DISK_FULL or E_READ_ONLY here, naming the path the system gave.
 */
async function typeStrayDiskError(error: unknown): Promise<unknown> {
  const errno = error as NodeJS.ErrnoException;
  if (!['ENOSPC', 'EDQUOT', 'EROFS'].includes(errno?.code ?? '')) return error;
  return toWriteError(error, { what: 'a file', path: errno.path ?? process.cwd() });
}

/** Run the CLI with the given argv (without node and script); returns the exit status. */
export async function main(argv: string[], out: Output = processOutput): Promise<number> {
  const controller = new AbortController();
  const force = new AbortController();
  let interrupts = 0;
  let holdSecond = false;
  const onSigint = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 2 && holdSecond) {
      process.stderr.write('\ninterrupted again: deleting everything now (Ctrl-C again to quit at once)\n');
      force.abort(new UniproveError('E_INTERRUPTED', { message: 'interrupted by Ctrl-C twice' }));
      return;
    }
    if (interrupts > 1) quitAtOnce(signal);
    process.stderr.write('\ninterrupted: cleaning up (Ctrl-C again to quit at once)\n');
    controller.abort(new UniproveError('E_INTERRUPTED', { message: 'interrupted by Ctrl-C' }));
  };
  for (const name of STOP_SIGNALS) process.on(name, onSigint);
  // A reader that goes away (`uniprove --help | head`, a closed pager) is no reason to crash or to abandon a
  // run half-recorded: what it would have read is dropped and the work goes on to its end.
  for (const stream of [out.stdout, out.stderr]) {
    if (stream.listenerCount('error') === 0) stream.on('error', ignoreClosedPipe);
  }
  const ctx: CliContext = {
    out,
    signal: controller.signal,
    force: force.signal,
    holdSecondInterrupt: () => {
      holdSecond = true;
    },
    env: process.env,
    cwd: process.cwd(),
  };
  const json = wantsJson(argv);
  try {
    // The first word that is not a flag names the command; only its module is loaded (none for --version).
    const command = argv.find((a) => !a.startsWith('-'));
    const versionOnly = !command && argv.some((a) => a === '-V' || a === '--version');
    const program = await createProgram(ctx, versionOnly ? null : command);
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return ExitCode.ok; // --help, --version, `uniprove help`
      // One that no command's exit hook turned into E_USAGE (an InvalidArgumentError thrown by an action).
      return renderError(
        out,
        new UniproveError('E_USAGE', { message: error.message.replace(/^error: /, ''), cause: error }),
        json,
      );
    }
    if (controller.signal.aborted && !(error instanceof UniproveError)) {
      return renderError(out, controller.signal.reason, json);
    }
    return renderError(out, await typeStrayDiskError(error), json);
  } finally {
    for (const name of STOP_SIGNALS) process.off(name, onSigint);
  }
}
