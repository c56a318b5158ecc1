/**
 * The one wrapper for every external program uniprove runs.
 *
 * Programs are always started from an argv array (never a shell), with a
 * timeout and an abort signal. Failures come back as UniproveError carrying
 * the command, its exit code and the tail of its stderr.
 */
import { execa, type ResultPromise } from 'execa';
import { UniproveError } from './errors.js';

export interface ExecOptions {
  cwd?: string;
  /** Extra environment; merged over the parent's unless `extendEnv` is false. */
  env?: Record<string, string | undefined>;
  extendEnv?: boolean;
  /** Milliseconds; 0 or undefined means no limit. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Data for the child's stdin. */
  input?: string | Uint8Array;
  /** When true a non-zero exit is returned, not thrown. */
  allowFailure?: boolean;
  /** What to tell the user when the program is not installed. */
  installHint?: string;
  /** Where stdout/stderr go; 'pipe' (captured, default), 'inherit' or 'ignore'. */
  stdout?: 'pipe' | 'inherit' | 'ignore';
  stderr?: 'pipe' | 'inherit' | 'ignore';
  /** Keep this many bytes of output at most (default 64 MiB). */
  maxBuffer?: number;
}

export interface ExecResult {
  command: string[];
  exitCode: number;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

const TAIL_LINES = 20;

/** Keep the last lines of a program's output for error messages. */
export function tailOf(text: string, lines = TAIL_LINES): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

/** Quote an argv for display (never for execution). */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

function childOptions(options: ExecOptions) {
  return {
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    timeout: options.timeoutMs && options.timeoutMs > 0 ? options.timeoutMs : undefined,
    cancelSignal: options.signal,
    input: options.input,
    reject: false,
    stdout: options.stdout ?? 'pipe',
    stderr: options.stderr ?? 'pipe',
    stdin: options.input === undefined ? ('ignore' as const) : undefined,
    maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
    forceKillAfterDelay: 2000,
    encoding: 'utf8' as const,
    stripFinalNewline: false,
  };
}

/** Run a program to completion and return its output. */
export async function run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new UniproveError('E_INTERNAL', { message: 'run() called with an empty argv' });
  const started = performance.now();
  const result = await execa(file, args, childOptions(options));
  const durationMs = performance.now() - started;
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const base: ExecResult = {
    command: [...argv],
    exitCode: result.exitCode ?? -1,
    signal: result.signal ?? undefined,
    stdout,
    stderr,
    timedOut: Boolean(result.timedOut),
    durationMs,
  };
  const code = (result as { code?: string }).code;
  if (
    code === 'ENOENT' ||
    (result.failed && /ENOENT/.test(result.message ?? '') && result.exitCode === undefined)
  ) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `${file} is not installed or not on PATH`,
      hint: options.installHint ?? `Install ${file} and run again.`,
      details: { command: [...argv] },
    });
  }
  if (result.isCanceled) {
    throw new UniproveError('E_INTERRUPTED', {
      message: `${formatCommand(argv)} was cancelled`,
      details: { command: [...argv] },
    });
  }
  if (result.timedOut) {
    throw new UniproveError('E_PROBE_TIMEOUT', {
      message: `${formatCommand(argv)} did not finish within ${Math.round((options.timeoutMs ?? 0) / 1000)} s and was killed`,
      hint: 'Raise the timeout, or check that the program ends on its own with these arguments.',
      details: { command: [...argv], stderrTail: tailOf(stderr) },
    });
  }
  if (base.exitCode !== 0 && !options.allowFailure) {
    throw new UniproveError('E_COMMAND_FAILED', {
      message: `${formatCommand(argv)} exited with ${result.signal ? `signal ${result.signal}` : `status ${base.exitCode}`}`,
      hint: 'Read the output below; run the command by hand to reproduce.',
      details: { command: [...argv], exitCode: base.exitCode, stderrTail: tailOf(stderr || stdout) },
    });
  }
  return base;
}

/** Start a long-running program; the caller owns the child and must await or kill it. */
export function spawn(argv: readonly string[], options: ExecOptions = {}): ResultPromise {
  const [file, ...args] = argv;
  if (!file) throw new UniproveError('E_INTERNAL', { message: 'spawn() called with an empty argv' });
  return execa(file, args, { ...childOptions(options), buffer: false }) as unknown as ResultPromise;
}

/** Find a program on PATH without running it; undefined when absent. */
export async function which(name: string, pathEnv?: string): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const { delimiter, join, isAbsolute } = await import('node:path');
  if (isAbsolute(name) || name.includes('/')) {
    try {
      await access(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  for (const dir of (pathEnv ?? process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
