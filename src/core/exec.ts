/**
 * The one wrapper for every external program uniprove runs.
 *
 * Programs are always started from an argv array (never a shell), with a
 * timeout and an abort signal. Failures come back as UniproveError carrying
 * the command, its exit code and the tail of its stderr.
 *
 * Built on node:child_process rather than execa: loading execa (135 modules)
 * cost 65-70 ms on every command, which `uniprove run` pays before QEMU starts.
 */
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { type ErrorCode, UniproveError } from './errors.js';
import { OWNER_ENV, ownerToken } from './owner.js';

/**
 * How a timeout is told: each caller knows what timed out (a probe, the prover, an ops build) and what to do
 * about it, which exec.ts cannot guess.
 */
export interface TimeoutReport {
  /** Default E_COMMAND_TIMEOUT. */
  code?: ErrorCode;
  /** What timed out, for the message (default the command line). */
  what?: string;
  /** What to do next (default: run the command by hand to see whether it hangs). */
  hint?: string;
}

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
  /**
   * Keep this many bytes of each stream's start at most (default 64 MiB), plus its last 64 KiB: what lies
   * between is replaced by a marker line and the result says the stream was truncated.
   */
  maxBuffer?: number;
  /** How a timeout is reported (its code, what timed out, the hint). */
  timeoutReport?: TimeoutReport;
}

export interface ExecResult {
  command: string[];
  exitCode: number;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
  /** Which streams went over `maxBuffer` and had their middle cut (a marker line says where). */
  truncated: { stdout: boolean; stderr: boolean };
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

/** How a started program ended. */
export interface ProcessEnd {
  /** undefined when it was killed by a signal or never started. */
  exitCode: number | undefined;
  signal: NodeJS.Signals | undefined;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  spawnError?: NodeJS.ErrnoException;
}

/** A program started by `spawn`: its process (streams, pid, kill) and a promise of its end that never rejects. */
export interface RunningProcess {
  readonly child: ChildProcess;
  readonly ended: Promise<ProcessEnd>;
}

/** Grace between SIGTERM and SIGKILL when a timeout or an abort stops a program. */
const KILL_GRACE_MS = 2000;

// Children still running when uniprove itself exits (an uncaught error, a second Ctrl-C) are killed with it:
// no QEMU or strace is ever left behind.
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/**
 * The child's environment, marked with this uniprove (UNIPROVE_OWNER): what it starts in turn inherits the mark,
 * so a process that outlives a uniprove killed hard (a tracee strace let go, QEMU under `ops run`) is found
 * and ended by the next uniprove (core/leftovers.ts).
 */
function environment(options: ExecOptions): NodeJS.ProcessEnv {
  const base = !options.env
    ? process.env
    : (options.extendEnv ?? true)
      ? { ...process.env, ...options.env }
      : options.env;
  return { ...base, [OWNER_ENV]: ownerToken() };
}

/** setpriv from util-linux, found once: undefined where this host has none. */
let setprivPath: string | null | undefined;
function setpriv(): string | undefined {
  if (setprivPath === undefined) setprivPath = findProgramSync('setpriv', process.env.PATH) ?? null;
  return setprivPath ?? undefined;
}

/** As execvp finds a program: the first executable regular file named `name` on PATH. */
function findProgramSync(name: string, pathEnv: string | undefined, cwd?: string): string | undefined {
  const isProgram = (path: string) => {
    try {
      accessSync(path, fsConstants.X_OK);
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return isProgram(resolve(cwd ?? '.', name)) ? name : undefined;
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (dir && isProgram(resolve(cwd ?? '.', dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The argv that makes the program die with uniprove: through `setpriv --pdeathsig KILL`, the kernel sends it
 * SIGKILL when uniprove ends, even by SIGKILL, where no exit hook runs (an orphaned QEMU would run on for
 * hours). Left as it is where setpriv is absent, or the program is not found (its spawn then fails as ENOENT,
 * which is E_TOOL_MISSING, where setpriv would only exit 127).
 */
function dieWithParent(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv | undefined,
  cwd: string | undefined,
) {
  const wrapper = setpriv();
  if (!wrapper || !findProgramSync(file, (env ?? process.env).PATH, cwd)) return { file, args };
  return { file: wrapper, args: ['--pdeathsig', 'KILL', '--', file, ...args] };
}

function start(argv: readonly string[], options: ExecOptions, caller: string): RunningProcess {
  const [first, ...rest] = argv;
  if (!first) throw new UniproveError('E_INTERNAL', { message: `${caller}() called with an empty argv` });
  const env = environment(options);
  const { file, args } = dieWithParent(first, rest, env, options.cwd);
  const child = spawnChild(file, args, {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env,
    stdio: [
      options.input === undefined ? 'ignore' : 'pipe',
      options.stdout ?? 'pipe',
      options.stderr ?? 'pipe',
    ],
  });
  track(child);
  const ended = new Promise<ProcessEnd>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      // 'error' without a pid: the program never started. With one, a kill failed; 'close' still follows.
      if (child.pid === undefined) {
        live.delete(child);
        resolve({ exitCode: undefined, signal: undefined, spawnError: error });
      }
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      resolve({ exitCode: code ?? undefined, signal: signal ?? undefined });
    });
  });
  if (options.input !== undefined && child.stdin) {
    child.stdin.on('error', () => {}); // a program that exits without reading its input
    child.stdin.end(options.input);
  }
  return { child, ended };
}

/**
 * The one way uniprove stops a program: SIGTERM now, SIGKILL if it is still there after the grace period.
 * Takes a child it started, or the pid of one it did not start itself (QEMU under `ops run`).
 */
export function stopProcess(target: ChildProcess | number, graceMs = KILL_GRACE_MS): Promise<void> {
  const alive =
    typeof target === 'number'
      ? () => signalPid(target, 0)
      : () => target.exitCode === null && target.signalCode === null;
  const send = (signal: NodeJS.Signals) =>
    typeof target === 'number' ? signalPid(target, signal) : target.kill(signal);
  if (!alive()) return Promise.resolve();
  send('SIGTERM');
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      if (alive()) send('SIGKILL');
      resolve();
    }, graceMs);
    // A child started here is killed with uniprove anyway (the exit hook); a foreign pid is waited for.
    if (typeof target !== 'number') force.unref();
  });
}

/** SIGKILL now, with no grace: for what must not run on a moment longer (a tracee whose strace is going). */
export function killProcess(pid: number): void {
  signalPid(pid, 'SIGKILL');
}

/** Send a signal to a pid; false when it is gone (0 only asks whether it is there). */
/** True when process `pid` exists on this host (signal 0 only checks; EPERM: it exists, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalPid(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Call `stop` when `timeoutMs` passes or `signal` aborts (at once if it already has); returns the function
 * that disarms both. Every runner of a program that must end (run, the strace probe, QEMU, `ops run`)
 * stops it through this.
 */
export function stopOnTimeoutOrAbort(
  options: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined },
  stop: (why: 'timeout' | 'abort') => void,
): () => void {
  const { timeoutMs, signal } = options;
  const timer = timeoutMs && timeoutMs > 0 ? setTimeout(() => stop('timeout'), timeoutMs) : undefined;
  const onAbort = () => stop('abort');
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  return () => {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/** Bytes of a stream's end kept after its start went over the limit: where programs say why they failed. */
const TAIL_KEEP = 64 * 1024;

interface Collected {
  text: string;
  truncated: boolean;
}

/**
 * Collect a stream's first `limit` bytes and its last TAIL_KEEP, with a marker line between them when bytes
 * were dropped; decoded once at the end so multi-byte characters stay whole (except where the cut falls).
 */
function collect(stream: NodeJS.ReadableStream | null, limit: number): () => Collected {
  const head: Buffer[] = [];
  let headSize = 0;
  let tail: Buffer[] = [];
  let tailSize = 0;
  let total = 0;
  stream?.on('data', (chunk: Buffer) => {
    total += chunk.length;
    let rest = chunk;
    if (headSize < limit) {
      const part = rest.length > limit - headSize ? rest.subarray(0, limit - headSize) : rest;
      head.push(part);
      headSize += part.length;
      rest = rest.subarray(part.length);
    }
    if (rest.length === 0) return;
    tail.push(rest);
    tailSize += rest.length;
    if (tailSize > 2 * TAIL_KEEP) {
      const joined = Buffer.concat(tail);
      tail = [joined.subarray(joined.length - TAIL_KEEP)];
      tailSize = TAIL_KEEP;
    }
  });
  return () => {
    const end = Buffer.concat(tail);
    const kept = end.subarray(Math.max(0, end.length - TAIL_KEEP));
    const dropped = total - headSize - kept.length;
    const start = Buffer.concat(head).toString('utf8');
    if (dropped <= 0) return { text: start + kept.toString('utf8'), truncated: false };
    const marker = `\n[uniprove: ${dropped} bytes of output cut here: more than the ${limit} bytes kept]\n`;
    return { text: start + marker + kept.toString('utf8'), truncated: true };
  };
}

/** Run a program to completion and return its output. */
export async function run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const started = performance.now();
  options.signal?.throwIfAborted();
  const { child, ended } = start(argv, options, 'run');
  const limit = options.maxBuffer ?? 64 * 1024 * 1024;
  const stdoutText = collect(child.stdout, limit);
  const stderrText = collect(child.stderr, limit);
  let timedOut = false;
  let canceled = false;
  const disarm = stopOnTimeoutOrAbort(options, (why) => {
    if (why === 'timeout') timedOut = true;
    else canceled = true;
    void stopProcess(child);
  });
  let end: ProcessEnd;
  try {
    end = await ended;
  } finally {
    disarm();
  }
  const durationMs = performance.now() - started;
  const out = stdoutText();
  const err = stderrText();
  const stdout = out.text;
  const stderr = err.text;
  const file = argv[0] as string;
  if (end.spawnError) {
    if (end.spawnError.code === 'ENOENT') {
      throw new UniproveError('E_TOOL_MISSING', {
        message: `${file} is not installed or not on PATH`,
        hint: options.installHint ?? `Install ${file} and run again.`,
        details: { command: [...argv] },
        cause: end.spawnError,
      });
    }
    throw new UniproveError('E_COMMAND_FAILED', {
      message: `${formatCommand(argv)} could not be started: ${end.spawnError.message}`,
      hint: `Check that ${file} is executable and that the folder it runs in exists.`,
      details: { command: [...argv] },
      cause: end.spawnError,
    });
  }
  const base: ExecResult = {
    command: [...argv],
    exitCode: end.exitCode ?? -1,
    signal: end.signal,
    stdout,
    stderr,
    timedOut,
    durationMs,
    truncated: { stdout: out.truncated, stderr: err.truncated },
  };
  if (canceled) {
    throw new UniproveError('E_INTERRUPTED', {
      message: `${formatCommand(argv)} was cancelled`,
      details: { command: [...argv] },
    });
  }
  if (timedOut) {
    const report = options.timeoutReport ?? {};
    const seconds = (options.timeoutMs ?? 0) / 1000;
    const limit = `${seconds < 10 ? Number(seconds.toFixed(1)) : Math.round(seconds)} s`;
    throw new UniproveError(report.code ?? 'E_COMMAND_TIMEOUT', {
      message: `${report.what ?? formatCommand(argv)} did not finish within ${limit} and was killed`,
      hint:
        report.hint ??
        `uniprove gives ${file} ${limit}: run \`${formatCommand(argv)}\` by hand to see whether it hangs or is only slow.`,
      details: { command: [...argv], stderrTail: tailOf(stderr) },
    });
  }
  if (base.exitCode !== 0 && !options.allowFailure) {
    throw new UniproveError('E_COMMAND_FAILED', {
      message: `${formatCommand(argv)} exited with ${end.signal ? `signal ${end.signal}` : `status ${base.exitCode}`}`,
      hint: 'Read the output below; run the command by hand to reproduce.',
      details: { command: [...argv], exitCode: base.exitCode, stderrTail: tailOf(stderr || stdout) },
    });
  }
  return base;
}

/**
 * Start a long-running program; the caller owns it: it reads the streams, and kills it on its own
 * timeout or abort. Whatever is still running when uniprove exits is killed.
 */
export function spawn(argv: readonly string[], options: ExecOptions = {}): RunningProcess {
  return start(argv, options, 'spawn');
}

/** Find a program on PATH without running it; undefined when absent. */
export async function which(name: string, pathEnv?: string): Promise<string | undefined> {
  return findProgramSync(name, pathEnv ?? process.env.PATH);
}
