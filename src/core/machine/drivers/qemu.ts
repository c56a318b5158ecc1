/**
 * The qemu driver: uniprove starts QEMU itself (machine/qemu-process.ts) with the image `ops build` made or the image
 * cache holds, -no-reboot and isa-debug-exit, so the prover's own exit status reaches the host. KVM only when
 * a probe boot shows it works here.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../../errors.js';
import { which } from '../../exec.js';
import { buildLocalImage } from '../../image/local.js';
import type { PreparedTarget } from '../../package/target.js';
import { noProgress } from '../../progress.js';
import { CONSOLE_LOG, type RunRecord } from '../../record/record.js';
import { type AccelDecision, detectAccel } from '../accel.js';
import type { DriverRun, MachineDriver, MachineEnd, MachineReport } from '../driver.js';
import { QemuMachine } from '../qemu-process.js';
import type { MachineStatus } from '../qemu-spec.js';
import { LocalDriver, readsImageAfterRun } from './local.js';

/** Local QEMU, the exit status wired out through debug_exit. */
export class QemuDriver extends LocalDriver implements MachineDriver {
  readonly name = 'qemu' as const;
  readonly exitStatus = 'known' as const;
  private machine: QemuMachine | undefined;
  private image_: { image: string; snapshot: boolean } | undefined;
  private accel: AccelDecision | undefined;
  private bootStartMs = 0;

  override async check(run: DriverRun): Promise<MachineReport> {
    const seen = await super.check(run);
    const qemu = this.options.qemu ?? 'qemu-system-x86_64';
    if (!(await which(qemu, this.options.env?.PATH))) {
      throw new UniproveError('E_TOOL_MISSING', {
        message: `${qemu} is not installed or not on PATH`,
        hint: 'Install QEMU: apt-get install qemu-system-x86.',
        details: { tool: 'qemu-system-x86_64' },
      });
    }
    return seen;
  }

  async image(target: PreparedTarget, run: DriverRun): Promise<MachineReport> {
    const { options } = this;
    const { record } = run;
    const seen: MachineReport = { warnings: [] };
    const config = await this.writeConfig(target, run, seen);
    // The accelerator is decided while the image builds (it may ask QEMU its version): neither waits on the other.
    const accelPending = detectAccel({
      choice: options.accel ?? 'auto',
      cacheDir: options.cacheDir,
      ...(options.qemu ? { qemu: options.qemu } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    accelPending.catch(() => {});
    const image = await buildLocalImage({
      options,
      opsPath: this.opsPath,
      release: this.release!,
      target,
      config,
      configPath: this.configPath,
      program: config.Program ?? '',
      imageName: this.imageName(run),
      opsOpts: this.opsOpts,
      imageAfterRun: Boolean(options.keepImage) || readsImageAfterRun(target, options.copyOut ?? []),
    });
    this.built = true;
    this.image_ = image;
    seen.warnings!.push(...image.warnings);
    await writeFile(join(record.dir, 'manifest.txt'), `${image.manifest}\n`);
    options.signal?.throwIfAborted();
    this.accel = await this.probeKvm(await accelPending, image.image, record);
    if (this.accel.accel === 'tcg') seen.warnings!.push({ code: 'accel-tcg', message: this.accel.reason });
    return {
      ...seen,
      image: image.image,
      imageCache: image.cache,
      timings: { imageBuildMs: Math.round(image.durationMs) },
      files: { ...seen.files, manifest: 'manifest.txt' },
      accel: this.accel.accel,
      accelReason: this.accel.reason,
    };
  }

  /** /dev/kvm is there and may work: probe with this image once; the verdict is cached for the host. */
  private async probeKvm(
    decision: AccelDecision,
    image: string,
    record: Readonly<RunRecord>,
  ): Promise<AccelDecision> {
    const { options } = this;
    if (
      decision.kvmUsable !== undefined ||
      !decision.kvmPresent ||
      options.accel === 'tcg' ||
      options.accel === 'kvm'
    ) {
      return decision;
    }
    const onProgress = options.onProgress ?? noProgress;
    onProgress({
      kind: 'step-start',
      step: 'kvm probe',
      detail: 'booting once with KVM to see if it works here',
    });
    const probed = await detectAccel({
      choice: 'auto',
      cacheDir: options.cacheDir,
      probeImage: image,
      probeDir: join(record.dir, 'kvm-probe'),
      ...(options.qemu ? { qemu: options.qemu } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    onProgress({ kind: 'step-done', step: 'kvm probe', detail: probed.accel });
    return probed;
  }

  async start(run: DriverRun): Promise<MachineReport> {
    const { options } = this;
    const { record } = run;
    const config = this.config!;
    const accel = this.accel!.accel;
    this.machine = new QemuMachine({
      name: record.id,
      image: this.image_!.image,
      disks: (this.volumes ?? record.volumes).map((v) => ({
        path: v.path,
        readOnly: v.readOnly,
        label: v.label,
      })),
      memory: config.RunConfig?.Memory ?? '2G',
      cpus: config.RunConfig?.CPUs ?? 1,
      accel,
      debugExit: true,
      stateDir: record.dir,
      ...(this.image_!.snapshot ? { snapshot: true } : {}),
      ...(options.qemu ? { qemu: options.qemu } : {}),
    });
    await this.machine.create();
    const tap = run.consoleProof;
    const show = options.onConsole;
    const watch = run.kernelStop;
    // A file proof's base64 lines go to the tap (and console.log), not to the live console.
    this.machine.onConsole = (chunk) => {
      watch?.push(chunk);
      const shown = tap ? tap.push(chunk) : chunk;
      if (shown) show?.(shown);
    };
    this.bootStartMs = performance.now() - run.startedMs;
    (options.onProgress ?? noProgress)({
      kind: 'step-start',
      step: 'boot',
      detail: `${accel}, timeout ${options.timeoutMs ? `${options.timeoutMs / 1000} s` : 'none'}`,
    });
    await this.machine.start();
    return {
      qemu: { argv: this.machine.argv },
      files: { console: CONSOLE_LOG, qemuCmdline: 'qemu-cmdline.txt' },
    };
  }

  async wait(run: DriverRun): Promise<MachineEnd> {
    const machine = this.machine!;
    const signals = [this.options.signal, run.kernelStop?.signal].filter((s) => s !== undefined);
    const status = await machine.wait({
      ...(this.options.timeoutMs ? { timeoutMs: this.options.timeoutMs } : {}),
      ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
    });
    (this.options.onProgress ?? noProgress)({ kind: 'step-done', step: 'boot', detail: status.state });
    const report = statusReport(machine.argv, status, this.bootStartMs);
    // The console is the run's evidence: a log the disk could not take fails the run (as a typed error).
    if (machine.consoleError) throw machine.consoleError;
    const state = status.state === 'running' || status.state === 'created' ? 'failed' : status.state;
    return {
      report,
      state: state === 'exited' ? 'exited' : state,
      ...(status.exitCode !== undefined ? { exitCode: status.exitCode } : {}),
      ...(status.reason ? { reason: status.reason } : {}),
      ...(state === 'failed'
        ? {
            hint: 'Read qemu.stderr.log in the run folder; `uniprove doctor` checks QEMU and KVM.',
            details: { stderrTail: status.qemuStderrTail ?? '' },
          }
        : {}),
    };
  }

  async destroy(run: DriverRun): Promise<undefined> {
    await this.machine?.stop('interrupted');
    await this.removeImage(run);
  }
}

/** What QEMU's status says for the record: QEMU's own exit, and the boot and prover times. */
function statusReport(argv: string[], status: MachineStatus, bootStartMs: number): MachineReport {
  const qemu = {
    argv,
    ...(status.qemuExitCode !== undefined ? { exitCode: status.qemuExitCode } : {}),
    ...(status.signal ? { signal: status.signal } : {}),
    ...(status.qemuStderrTail ? { stderrTail: status.qemuStderrTail } : {}),
  };
  if (status.firstConsoleLineMs === undefined) return { qemu };
  const timings: MachineReport['timings'] = {
    bootMs: Math.round(status.firstConsoleLineMs),
    firstConsoleLineMs: Math.round(bootStartMs + status.firstConsoleLineMs),
  };
  if (status.startedAt && status.endedAt) {
    timings.proverMs = Math.max(0, Math.round(status.endedAt - status.startedAt - status.firstConsoleLineMs));
  }
  return { qemu, timings };
}
