/**
 * Run a program under strace to see which files it touches at run time
 * (dlopen'ed libraries, data files, helpers it executes).
 *
 * Overhead is kept low: strace stops the tracee twice on every traced syscall
 * (ptrace, even with `--seccomp-bpf`, which only spares the untraced ones), so
 * by default only what names a dependency is traced: opens, execs, cwd changes,
 * process creation (for cwd inheritance) and the calls that mark outputs. The
 * stat/access/readlink family, which is what makes `find` or a Python import
 * slow under strace, is traced only with `syscalls: 'full'`. That mode also
 * passes `-y` (strace prints the path of every fd and of the cwd); the minimal
 * one leaves it out, as its /proc look-ups doubled the overhead, and the parser
 * follows cwd and fds from the traced calls: parse its log with the probe's cwd.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UniproveError } from '../errors.js';
import {
  formatCommand,
  killProcess,
  type ProcessEnd,
  run,
  spawn,
  stopOnTimeoutOrAbort,
  type TimeoutReport,
  tailOf,
  which,
} from '../exec.js';
import { makeTempDir } from '../fs.js';
import type { OnProgress } from '../progress.js';

export interface ProbeOptions {
  /** The program and its arguments. */
  argv: string[];
  cwd?: string;
  /** Environment of the program (merged over the parent's); its PATH is also where strace is looked for. */
  env?: Record<string, string | undefined>;
  /** Kill the whole traced tree after this many milliseconds (0 or undefined: no limit). */
  timeoutMs?: number;
  /** How a timeout is reported (default E_PROBE_TIMEOUT, "the probe of ..."): verify runs the prover itself. */
  timeoutReport?: TimeoutReport;
  signal?: AbortSignal;
  /** Where strace writes; default a new temp folder's `strace.log`. The caller owns the file. */
  logPath?: string;
  /** A non-zero exit is returned instead of thrown (the log is still complete). */
  allowFailure?: boolean;
  /** One log per process (`-ff`): files `logPath.PID`. */
  separateLogs?: boolean;
  /** The strace binary (default: `strace` on PATH). */
  strace?: string;
  /**
   * Which syscalls to trace (default `minimal`): see PROBE_SYSCALL_SETS. `full` adds the
   * stat/access/readlink family: files only checked for, never opened, then show too.
   */
  syscalls?: ProbeSyscalls;
  /**
   * Run strace and the program on this one CPU (with taskset). Every traced call wakes strace and
   * then the program again; where waking another CPU is slow (nested virtualisation: measured here
   * ~110 µs a traced call across CPUs, ~20 µs on one) this cuts the probe's overhead several times.
   * But the program sees one CPU: runtimes that size their thread pools from the CPUs they may use
   * (Rust's available_parallelism and rayon, Go, OpenMP) start one worker. benchy's probe took
   * 8.4 s pinned against 4.6 s, which is why this is never the default, nor switched on by itself.
   */
  cpu?: number;
  onProgress?: OnProgress;
}

export type ProbeSyscalls = 'minimal' | 'full';

export interface ProbeResult {
  exitCode: number;
  /** The signal that killed the program, if one did. */
  signal: string | undefined;
  /** Always false on return: a timeout throws E_PROBE_TIMEOUT (kept for callers that log results). */
  timedOut: boolean;
  durationMs: number;
  /** The log (or, with separateLogs, the prefix of the per-pid logs). */
  logPath: string;
  /** Every log file written: one, or one per pid with separateLogs. */
  logFiles: string[];
  straceVersion: string;
  /** Whether `--seccomp-bpf` was used (strace >= 5.3). */
  seccompBpf: boolean;
  /** The syscall set traced. */
  syscalls: ProbeSyscalls;
  /** The folder the program started in (options.cwd, or this process's): pass it to parseStraceLog. */
  cwd: string;
  /** The strace command that ran. */
  command: string[];
  /** Last lines the program (and strace) printed. */
  stdoutTail: string;
  stderrTail: string;
}

/**
 * The syscalls each probe mode traces (strace `-e trace=` lists; `?` = may not exist on this arch).
 * - minimal: every file a program opens (libraries it dlopens, the search-path probes of dlopen,
 *   which are failed openat calls, data files), every program it executes, cwd changes and process
 *   creation (children inherit the cwd; `-y` also prints it), folder listings (getdents64: a folder
 *   whose files a program reads by listing it), and the calls that create outputs (so files a run
 *   wrote are not taken for dependencies). These calls are rare next to stat.
 * - full: all of strace's `%file` class (adds stat, access, readlink, statfs...) plus the same
 *   process calls: also files that were only checked for, at several times the overhead on
 *   programs that stat a lot.
 */
export const PROBE_SYSCALL_SETS: Record<ProbeSyscalls, string> = {
  minimal: [
    '?open',
    'openat',
    '?openat2',
    '?creat',
    'execve',
    '?execveat',
    'chdir',
    'fchdir',
    'getdents64',
    'clone',
    '?clone3',
    '?fork',
    '?vfork',
    '?mkdir',
    '?mkdirat',
    '?rename',
    '?renameat',
    '?renameat2',
    '?link',
    '?linkat',
    '?symlink',
    '?symlinkat',
    '?truncate',
  ].join(','),
  full: '%file,fchdir,getdents64,clone,?clone3,?fork,?vfork',
};

/** The default probe syscall set (`minimal`). */
export const PROBE_SYSCALLS = PROBE_SYSCALL_SETS.minimal;

const INSTALL_HINT = 'Install strace: `apt-get install strace` (Debian/Ubuntu) or `dnf install strace`.';
const TAIL_BYTES = 64 * 1024;

/** Keep the last bytes of a stream, for error messages. */
class Tail {
  private text = '';
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > TAIL_BYTES * 2) this.text = this.text.slice(-TAIL_BYTES);
  }
  get value(): string {
    return tailOf(this.text.slice(-TAIL_BYTES));
  }
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map((x) => Number.parseInt(x, 10) || 0);
  return a > major || (a === major && b >= minor);
}

/** The argv strace runs with. */
export function buildStraceArgs(options: {
  strace: string;
  logPath: string;
  argv: string[];
  seccompBpf: boolean;
  separateLogs?: boolean;
  syscalls?: ProbeSyscalls;
}): string[] {
  return [
    options.strace,
    options.separateLogs ? '-ff' : '-f',
    ...(options.seccompBpf ? ['--seccomp-bpf'] : []),
    '-qq',
    // -y (the path of every fd and of the cwd) costs strace a /proc readlink per fd printed: half the
    // overhead of the minimal probe. The minimal set traces chdir, fchdir and process creation, so
    // the parser follows the cwd and the fds from the opens itself (given the probe's cwd).
    ...((options.syscalls ?? 'minimal') === 'full' ? ['-y'] : []),
    '-s',
    '4096',
    '-e',
    'signal=none',
    '-e',
    `trace=${PROBE_SYSCALL_SETS[options.syscalls ?? 'minimal']}`,
    '-o',
    options.logPath,
    '--',
    ...options.argv,
  ];
}

/** Pids traced by `tracer` (TracerPid in /proc/PID/status), or children of it. */
async function tracees(tracer: number): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      try {
        const status = await readFile(`/proc/${name}/status`, 'utf8');
        const tracerPid = /\nTracerPid:\s*(\d+)/.exec(status)?.[1];
        const ppid = /\nPPid:\s*(\d+)/.exec(status)?.[1];
        if (Number(tracerPid) === tracer || Number(ppid) === tracer) out.push(Number(name));
      } catch {
        // gone already
      }
    }),
  );
  return out;
}

/**
 * Kill strace and everything it traces. The tracees go first: once strace is
 * dead they would run on untraced (and with --seccomp-bpf, see ENOSYS).
 */
async function killTree(stracePid: number): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await tracees(stracePid);
    if (pids.length === 0) break;
    for (const pid of pids) killProcess(pid);
    await new Promise((r) => setTimeout(r, 20));
  }
  killProcess(stracePid);
}

/** The CPUs this process may run on (Cpus_allowed_list), or undefined where /proc does not say. */
async function allowedCpus(): Promise<Set<number> | undefined> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const list = /\nCpus_allowed_list:\s*(\S+)/.exec(status)?.[1];
  if (!list) return undefined;
  const cpus = new Set<number>();
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) cpus.add(c);
  }
  return cpus;
}

function formatCpus(cpus: Set<number>): string {
  const sorted = [...cpus].sort((x, y) => x - y);
  return sorted.length > 8
    ? `${sorted[0]}-${sorted[sorted.length - 1]} (${sorted.length} CPUs)`
    : sorted.join(', ');
}

/** strace on PATH, its version, and whether it filters with seccomp-bpf (5.3 and later). */
async function findStrace(options: ProbeOptions) {
  const strace = await which(options.strace ?? 'strace', options.env?.PATH);
  if (!strace) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `${options.strace ?? 'strace'} is not installed or not on PATH; it is needed to see which files the program opens`,
      hint: INSTALL_HINT,
    });
  }
  const versionRun = await run([strace, '-V'], { installHint: INSTALL_HINT, timeoutMs: 10_000 });
  const straceVersion = /version\s+(\S+)/.exec(versionRun.stdout)?.[1] ?? 'unknown';
  return { strace, straceVersion, seccompBpf: versionAtLeast(straceVersion, 5, 3) };
}

/** The taskset prefix that runs the probe on `options.cpu` (none when no CPU is asked for). */
async function cpuPin(options: ProbeOptions): Promise<string[]> {
  if (options.cpu === undefined) return [];
  if (!Number.isInteger(options.cpu) || options.cpu < 0) {
    throw new UniproveError('E_USAGE', {
      message: `probe CPU ${JSON.stringify(options.cpu)} is not a CPU number`,
      hint: 'Give a CPU number this process may use, e.g. 0 (see `taskset -cp $$`).',
    });
  }
  const allowed = await allowedCpus();
  if (allowed && !allowed.has(options.cpu)) {
    throw new UniproveError('E_USAGE', {
      message: `CPU ${options.cpu} is not one this process may run on (allowed: ${formatCpus(allowed)})`,
      hint: `Pick one of ${formatCpus(allowed)}.`,
    });
  }
  const taskset = await which('taskset', options.env?.PATH);
  if (!taskset) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: 'taskset is not installed or not on PATH; it is needed to run the probe on one CPU',
      hint: 'Install util-linux (apt-get install util-linux), or probe without a CPU.',
    });
  }
  return [taskset, '-c', String(options.cpu)];
}

/** strace's own failures, told apart from the program's by strace's prefix on stderr. */
function throwStraceFailure(errTail: string, details: Record<string, unknown>): void {
  if (/^(?:\S*\/)?strace: .*(PTRACE_|ptrace).*Operation not permitted/m.test(errTail)) {
    throw new UniproveError('E_PTRACE_DENIED', {
      message: 'strace may not trace processes here (ptrace: Operation not permitted)',
      hint:
        'In a container, run it with `--cap-add=SYS_PTRACE` (Docker/Podman) and a seccomp profile that allows ptrace; ' +
        'on a host, check `sysctl kernel.yama.ptrace_scope` (0 or 1 works) and that uniprove is not itself being traced.',
      details,
    });
  }
  const cantRun = /^(?:\S*\/)?strace: (?:Can't stat|exec:|Cannot find executable) .*$/m.exec(errTail);
  if (cantRun) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `the program to probe could not be started: ${cantRun[0]}`,
      hint: 'Check the program path (absolute, or on PATH) and that it is executable.',
      details,
    });
  }
}

/** Run `options.argv` under strace, writing a log for parseStraceLog. */
export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  if (options.argv.length === 0 || !options.argv[0]) {
    throw new UniproveError('E_USAGE', { message: 'runProbe needs a program to run (argv is empty)' });
  }
  const { strace, straceVersion, seccompBpf } = await findStrace(options);
  const syscalls = options.syscalls ?? 'minimal';
  if (syscalls !== 'minimal' && syscalls !== 'full') {
    throw new UniproveError('E_USAGE', {
      message: `unknown probe syscall set ${JSON.stringify(syscalls)}`,
      hint: "Use 'minimal' (the default) or 'full'.",
    });
  }
  const pin = await cpuPin(options);
  const logPath = options.logPath ?? join(await makeTempDir('uniprove-probe-'), 'strace.log');
  const straceCommand = buildStraceArgs({
    strace,
    logPath,
    argv: options.argv,
    seccompBpf,
    separateLogs: options.separateLogs,
    syscalls,
  });
  const command = [...pin, ...straceCommand];
  if (options.signal?.aborted) {
    throw new UniproveError('E_INTERRUPTED', { message: 'the probe was cancelled before it started' });
  }

  options.onProgress?.({ kind: 'step-start', step: 'probe', detail: formatCommand(options.argv) });
  const started = performance.now();
  const { child, ended } = spawn(command, { cwd: options.cwd, env: options.env });
  const stdout = new Tail();
  const stderr = new Tail();
  child.stdout?.on('data', (c: Buffer) => stdout.push(c));
  child.stderr?.on('data', (c: Buffer) => stderr.push(c));

  let timedOut = false;
  let aborted = false;
  let killing: Promise<void> | undefined;
  const kill = () => {
    if (child.pid !== undefined && !killing) killing = killTree(child.pid);
  };
  const disarm = stopOnTimeoutOrAbort(options, (why) => {
    if (why === 'timeout') timedOut = true;
    else aborted = true;
    kill();
  });

  let result: ProcessEnd;
  try {
    result = await ended;
  } finally {
    disarm();
    if (killing) await killing;
  }
  const durationMs = performance.now() - started;
  const exitCode = result.exitCode ?? -1;
  const signal = result.signal ?? undefined;
  const errTail = stderr.value;
  const details = { command, logPath, exitCode, signal, stderrTail: errTail };

  if (result.spawnError?.code === 'ENOENT') {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `${strace} could not be started`,
      hint: INSTALL_HINT,
      details,
    });
  }
  if (aborted) {
    throw new UniproveError('E_INTERRUPTED', {
      message: `the probe of ${formatCommand(options.argv)} was cancelled; it and its children were killed`,
      details,
    });
  }
  if (timedOut) {
    const report = options.timeoutReport ?? {};
    throw new UniproveError(report.code ?? 'E_PROBE_TIMEOUT', {
      message: `${report.what ?? `the probe of ${formatCommand(options.argv)}`} did not end within ${(options.timeoutMs! / 1000).toFixed(1)} s; it and its children were killed`,
      hint:
        report.hint ??
        'Give arguments that make the program end on its own (a small input), or raise the timeout. The partial log is kept.',
      details,
    });
  }
  throwStraceFailure(errTail, details);
  const logFiles = options.separateLogs ? await perPidLogs(logPath) : [logPath];
  if (exitCode !== 0 && !options.allowFailure) {
    throw new UniproveError('E_PROBE_FAILED', {
      message: `the probe of ${formatCommand(options.argv)} exited with ${signal ? `signal ${signal}` : `status ${exitCode}`}`,
      hint: 'Fix the program arguments so it succeeds, or allow failure when failing is expected. The log is kept.',
      details: { ...details, logFiles },
    });
  }
  options.onProgress?.({ kind: 'step-done', step: 'probe', detail: `exit ${exitCode}` });
  return {
    exitCode,
    signal,
    timedOut: false,
    durationMs,
    logPath,
    logFiles,
    straceVersion,
    seccompBpf,
    syscalls,
    cwd: options.cwd ?? process.cwd(),
    command,
    stdoutTail: stdout.value,
    stderrTail: errTail,
  };
}

async function perPidLogs(prefix: string): Promise<string[]> {
  const dir = dirname(prefix);
  const base = `${basename(prefix)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => n.startsWith(base) && /^\d+$/.test(n.slice(base.length)))
    .sort((a, b) => Number(a.slice(base.length)) - Number(b.slice(base.length)))
    .map((n) => join(dir, n));
}
