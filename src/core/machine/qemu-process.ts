/**
 * A local machine: QEMU started by uniprove itself with an argument list
 * modelled on the one Ops uses (qemu/qemu_unix.go), plus what Ops leaves out:
 * -no-reboot (no reboot loops) and the guest's exit status through
 * isa-debug-exit. The console is streamed to <stateDir>/console.log.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import {
  formatCommand,
  type RunningProcess,
  spawn,
  stopOnTimeoutOrAbort,
  stopProcess,
  tailOf,
} from '../exec.js';
import { CONSOLE_LOG } from '../record/record.js';
import type { MachineSpec, MachineStatus, WaitOptions } from './qemu-spec.js';

export { CONSOLE_LOG };

export const QEMU_STDERR_LOG = 'qemu.stderr.log';
export const QEMU_CMDLINE = 'qemu-cmdline.txt';

/** QEMU's argument list for a spec (argv[0] is the QEMU program). */
export function buildQemuArgs(spec: MachineSpec): string[] {
  const args = [spec.qemu ?? 'qemu-system-x86_64', '-machine', 'q35'];
  // The same PCIe layout as Ops: the SCSI controller on pci.2, the NIC on pci.4.
  args.push(
    '-device',
    'pcie-root-port,port=0x10,chassis=1,id=pci.1,bus=pcie.0,multifunction=on,addr=0x3',
    '-device',
    'pcie-root-port,port=0x11,chassis=2,id=pci.2,bus=pcie.0,addr=0x3.0x6',
    '-device',
    'pcie-root-port,port=0x12,chassis=3,id=pci.4,bus=pcie.0,addr=0x3.0x4',
    '-device',
    'virtio-scsi-pci,bus=pci.2,addr=0x0,id=scsi0',
    '-device',
    'scsi-hd,bus=scsi0.0,drive=hd0',
    '-vga',
    'none',
  );
  if (spec.debugExit) args.push('-device', 'isa-debug-exit');
  args.push('-m', spec.memory, '-smp', String(Math.max(1, spec.cpus)));
  args.push('-device', 'virtio-rng-pci', '-device', 'virtio-balloon');
  args.push('-drive', `file=${spec.image},format=raw,if=none,id=hd0${spec.snapshot ? ',snapshot=on' : ''}`);
  // Volumes: Nanos mounts each by its TFS label (the Ops volume name), so their order does not matter.
  spec.disks.forEach((disk, i) => {
    const id = `hd${i + 1}`;
    args.push(
      '-drive',
      `file=${disk.path},format=raw,if=none,id=${id}${disk.readOnly ? ',readonly=on' : ''}`,
    );
    args.push('-device', `scsi-hd,bus=scsi0.0,drive=${id}`);
  });
  if (spec.network ?? true) {
    args.push('-device', 'virtio-net,bus=pci.4,addr=0x0,netdev=n0', '-netdev', 'user,id=n0');
  }
  args.push('-display', 'none', '-serial', 'stdio', '-no-reboot');
  if (spec.accel === 'kvm') args.push('-enable-kvm', '-cpu', 'host');
  else args.push('-accel', 'tcg', '-cpu', 'max');
  return args;
}

/** The prover's status from QEMU's: with isa-debug-exit QEMU exits (code << 1) | 1. */
export function decodeQemuExit(
  qemuExitCode: number,
  debugExit: boolean,
): { exitCode: number | undefined; reason?: string } {
  if (!debugExit) {
    return {
      exitCode: undefined,
      reason: `QEMU exited ${qemuExitCode}, but without debug_exit the guest's exit status does not reach the host`,
    };
  }
  if (qemuExitCode % 2 === 1) return { exitCode: qemuExitCode >> 1 };
  if (qemuExitCode === 0) {
    return {
      exitCode: undefined,
      reason:
        'QEMU exited 0: the guest powered off or rebooted without passing through debug_exit (a kernel panic, or a reboot stopped by -no-reboot)',
    };
  }
  return { exitCode: undefined, reason: `QEMU exited ${qemuExitCode}, which debug_exit never gives` };
}

/** QEMU's own errors start with its program name; a guest's exit through debug_exit never prints one. */
export function isQemuStartFailure(stderr: string, consoleBytes: number): boolean {
  return consoleBytes === 0 && /qemu-system-[\w-]+: /.test(stderr);
}

/** A QEMU process on this host, created, started, waited for, stopped and deleted (the kvm probe boots one too). */
export class QemuMachine {
  readonly spec: MachineSpec;
  readonly argv: string[];
  /** Called with every chunk of console output as it arrives. */
  onConsole: ((chunk: string) => void) | undefined;
  private child: RunningProcess['child'] | undefined;
  private console: WriteStream | undefined;
  /** Why the console log could not be written (a full disk), if it could not: the run lost its evidence. */
  consoleError: Error | undefined;
  private stderr = '';
  private current: MachineStatus = { state: 'created', consoleBytes: 0 };
  private startedPerf = 0;
  private exited: Promise<void> | undefined;
  private stopReason: { state: 'timeout' | 'stopped'; reason: string } | undefined;

  constructor(spec: MachineSpec, options: { onConsole?: (chunk: string) => void } = {}) {
    this.spec = spec;
    this.argv = buildQemuArgs(spec);
    this.onConsole = options.onConsole;
  }

  get consolePath(): string {
    return join(this.spec.stateDir, CONSOLE_LOG);
  }

  async create(): Promise<void> {
    await mkdir(this.spec.stateDir, { recursive: true });
    await writeFile(join(this.spec.stateDir, QEMU_CMDLINE), `${formatCommand(this.argv)}\n`);
  }

  async start(): Promise<void> {
    if (this.child)
      throw new UniproveError('E_INTERNAL', { message: `machine ${this.spec.name} started twice` });
    this.console = createWriteStream(this.consolePath);
    // A full disk is no reason to crash mid-run: the error is kept, the run goes on, and the caller decides.
    this.console.on('error', (error) => {
      this.consoleError ??= error;
    });
    this.startedPerf = performance.now();
    this.current = { ...this.current, state: 'running', startedAt: Date.now() };
    const { child, ended } = spawn(this.argv, {
      installHint:
        'Install QEMU: apt-get install qemu-system-x86 (or your distribution’s qemu-system-x86_64).',
    });
    this.child = child;
    if (child.pid !== undefined) this.current.pid = child.pid;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.current.firstConsoleLineMs === undefined && chunk.includes(10)) {
        this.current.firstConsoleLineMs = performance.now() - this.startedPerf;
      }
      this.current.consoleBytes += chunk.length;
      this.console?.write(chunk);
      this.onConsole?.(chunk.toString('utf8'));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-64 * 1024);
    });
    this.exited = ended.then((end) => this.finish(end.exitCode, end.signal, end.spawnError?.code));
  }

  private async finish(exitCode: number | undefined, signal: string | undefined, code?: string) {
    await new Promise<void>((resolve) => (this.console ? this.console.end(resolve) : resolve()));
    await writeFile(join(this.spec.stateDir, QEMU_STDERR_LOG), this.stderr).catch(() => {});
    const status: MachineStatus = {
      ...this.current,
      endedAt: Date.now(),
      qemuStderrTail: tailOf(this.stderr),
    };
    if (exitCode !== undefined) status.qemuExitCode = exitCode;
    if (signal) status.signal = signal;
    if (code === 'ENOENT') {
      status.state = 'failed';
      status.reason = `${this.argv[0]} is not installed or not on PATH`;
    } else if (this.stopReason) {
      status.state = this.stopReason.state;
      status.reason = this.stopReason.reason;
    } else if (exitCode === undefined || signal) {
      status.state = 'failed';
      status.reason = `QEMU was killed${signal ? ` by ${signal}` : ''}`;
    } else if (isQemuStartFailure(this.stderr, status.consoleBytes)) {
      status.state = 'failed';
      status.reason = `QEMU failed: ${tailOf(this.stderr, 3)}`;
    } else {
      status.state = 'exited';
      const decoded = decodeQemuExit(exitCode, this.spec.debugExit);
      if (decoded.exitCode !== undefined) status.exitCode = decoded.exitCode;
      if (decoded.reason) status.reason = decoded.reason;
    }
    this.current = status;
  }

  async wait(options: WaitOptions = {}): Promise<MachineStatus> {
    if (!this.exited) throw new UniproveError('E_INTERNAL', { message: 'wait() before start()' });
    const disarm = stopOnTimeoutOrAbort(options, (why) => {
      if (why === 'abort') {
        void this.stop('interrupted');
        return;
      }
      this.stopReason = {
        state: 'timeout',
        reason: `killed after the ${Math.round((options.timeoutMs ?? 0) / 1000)} s timeout`,
      };
      this.kill();
    });
    try {
      await this.exited;
    } finally {
      disarm();
    }
    return this.status();
  }

  async logs(): Promise<string> {
    return readFile(this.consolePath, 'utf8').catch(() => '');
  }

  private kill(): void {
    // QEMU ends on SIGTERM; SIGKILL if it does not within the grace period.
    if (this.child) void stopProcess(this.child);
  }

  async stop(reason = 'stopped'): Promise<void> {
    if (!this.child) return;
    this.stopReason ??= { state: 'stopped', reason };
    this.kill();
    await this.exited;
  }

  async delete(): Promise<void> {
    await this.stop();
  }

  status(): MachineStatus {
    return { ...this.current };
  }
}
