/**
 * The ops driver: plain `ops run` in the package folder, for parity with what Ops users run. Ops builds the
 * image itself and ignores QEMU's exit status, so the prover's is lost: the outcome is "unknown" at best.
 * The console is captured; the timeout and Ctrl-C stop ops and the QEMU it started.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import {
  type ProcessEnd,
  type RunningProcess,
  spawn,
  stopOnTimeoutOrAbort,
  stopProcess,
} from '../../exec.js';
import { OPS_INSTALL_HINT, opsProgram } from '../../ops/build.js';
import type { PreparedTarget } from '../../package/target.js';
import { CONSOLE_LOG } from '../../record/record.js';
import { type AccelDecision, detectAccel } from '../accel.js';
import type { DriverRun, MachineDriver, MachineEnd, MachineReport } from '../driver.js';
import { LocalDriver } from './local.js';

/** Plain `ops run`: console captured, exit status unknown. */
export class OpsDriver extends LocalDriver implements MachineDriver {
  readonly name = 'ops' as const;
  readonly exitStatus = 'unknown' as const;
  private accel: AccelDecision | undefined;
  private process: RunningProcess | undefined;
  private out: WriteStream | undefined;
  private consoleError: Error | undefined;
  private firstLine: number | undefined;
  private t0 = 0;
  private stopped: 'timeout' | 'abort' | undefined;
  private argv: string[] = [];

  async image(target: PreparedTarget, run: DriverRun): Promise<MachineReport> {
    const seen: MachineReport = { warnings: [] };
    await this.writeConfig(target, run, seen);
    seen.warnings!.push({
      code: 'via-ops',
      message:
        '--via ops: plain `ops run` loses the prover\'s exit status (Ops ignores QEMU\'s), reboots forever with RebootOnExit, and has no timeout of its own; the outcome can only be "unknown".',
    });
    this.accel = await detectAccel({
      choice: this.options.accel ?? 'auto',
      cacheDir: this.options.cacheDir,
      ...(this.options.qemu ? { qemu: this.options.qemu } : {}),
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
    return seen;
  }

  async start(run: DriverRun): Promise<MachineReport> {
    const { options } = this;
    const { record } = run;
    const accel = this.accel!;
    const argv = [
      await opsProgram(options),
      'run',
      this.config?.Program ?? '',
      '-c',
      this.configPath,
      '-i',
      this.imageName(run),
    ];
    if (accel.accel === 'tcg') argv.push('--accel=false');
    if (options.nanosVersion) argv.push('--nanos-version', options.nanosVersion);
    this.argv = argv;
    const out = createWriteStream(join(record.dir, CONSOLE_LOG));
    out.on('error', (error) => {
      this.consoleError ??= error;
    });
    this.out = out;
    // ops run builds the image under this run's name: it is the run's to remove.
    this.built = true;
    this.process = spawn(argv, {
      cwd: run.record.package ?? '.',
      installHint: OPS_INSTALL_HINT,
      ...(options.env ? { env: options.env } : {}),
    });
    this.t0 = performance.now();
    const onData = (chunk: Buffer) => {
      if (this.firstLine === undefined && chunk.includes(10)) this.firstLine = performance.now();
      out.write(chunk);
      const text = stripVTControlCharacters(chunk.toString('utf8'));
      run.kernelStop?.push(text);
      options.onConsole?.(text);
    };
    this.process.child.stdout?.on('data', onData);
    this.process.child.stderr?.on('data', onData);
    return { accel: accel.accel, accelReason: accel.reason, qemu: { argv }, files: { console: CONSOLE_LOG } };
  }

  async wait(run: DriverRun): Promise<MachineEnd> {
    const { child, ended } = this.process!;
    const signals = [this.options.signal, run.kernelStop?.signal].filter((s) => s !== undefined);
    const watched = {
      ...this.options,
      ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
    };
    const disarm = stopOnTimeoutOrAbort(watched, (why) => {
      this.stopped = why;
      void stopProcess(child);
    });
    const result: ProcessEnd = await ended;
    disarm();
    await new Promise<void>((r) => this.out!.end(r));
    if (this.consoleError) throw this.consoleError;
    const end = performance.now();
    const report: MachineReport = {
      qemu: { argv: this.argv, exitCode: result.exitCode ?? -1 },
      ...(this.firstLine !== undefined
        ? {
            timings: {
              bootMs: Math.round(this.firstLine - this.t0),
              firstConsoleLineMs: Math.round(this.firstLine - run.startedMs),
              proverMs: Math.round(end - this.firstLine),
            },
          }
        : {}),
    };
    // `ops run` starts QEMU as its child: make sure none survives a kill of ops.
    if (this.stopped) await stopQemuFor(this.imageName(run));
    if (this.options.signal?.aborted) return { state: 'stopped', report };
    if (this.stopped === 'timeout') return { state: 'timeout', report };
    return {
      report,
      state: 'exited',
      reason: `ops run exited ${result.exitCode}; Ops ignores QEMU's status, so the prover's exit status is unknown`,
    };
  }

  async destroy(run: DriverRun): Promise<undefined> {
    if (this.process) void stopProcess(this.process.child);
    await this.removeImage(run);
  }
}

/** Stop QEMU processes whose command line names this run's image (ops run's children). */
async function stopQemuFor(imageName: string): Promise<void> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('qemu-system') && cmdline.includes(`/images/${imageName}`)) {
      await stopProcess(Number(pid), 500);
    }
  }
}
