/**
 * A local QEMU machine's lifecycle: create, start, wait, logs, stop, delete, with what was asked for
 * (MachineSpec) kept apart from what was observed (MachineStatus). QemuMachine (qemu.ts) implements it and the
 * qemu driver (drivers/qemu.ts) drives it; the interface every platform implements, Compute Engine included,
 * is MachineDriver (driver.ts).
 */

/** A disk attached to the machine after the boot image. */
export interface MachineDisk {
  /** Raw image file (an Ops volume: ~/.ops/volumes/NAME:UUID.raw). */
  path: string;
  /** Attach read-only (several machines may then share it). */
  readOnly?: boolean;
  /** The Ops volume name (the TFS label Nanos mounts it by), for the record. */
  label?: string;
}

import type { Accel } from '../record/record.js';

/** What a machine should be. */
export interface MachineSpec {
  name: string;
  /** The bootable image (ops build output). */
  image: string;
  /** Boot with the image as a throwaway snapshot (writes are dropped). */
  snapshot?: boolean;
  disks: MachineDisk[];
  /** QEMU memory size, e.g. 2G or 512M. */
  memory: string;
  cpus: number;
  accel: Accel;
  /** The guest reports its exit status through isa-debug-exit (manifest debug_exit). */
  debugExit: boolean;
  /** User-mode networking as Ops gives it (default true). */
  network?: boolean;
  /** Folder holding this machine's console log, command line and status. */
  stateDir: string;
  /** The QEMU program (default qemu-system-x86_64). */
  qemu?: string;
}

export type MachineState = 'created' | 'running' | 'exited' | 'timeout' | 'stopped' | 'failed';

/** What was observed of a machine. */
export interface MachineStatus {
  state: MachineState;
  pid?: number;
  /** QEMU's own exit status (undefined when killed). */
  qemuExitCode?: number;
  /** The signal QEMU died of, when killed. */
  signal?: string;
  /** The prover's exit status, decoded from QEMU's (debug_exit); undefined when unknown. */
  exitCode?: number;
  /** Why the exit status is unknown, or why the machine stopped. */
  reason?: string;
  /** ms since epoch. */
  startedAt?: number;
  endedAt?: number;
  /** ms from QEMU's start to the first console line. */
  firstConsoleLineMs?: number;
  consoleBytes: number;
  /** QEMU's own stderr, tail (KVM errors land here). */
  qemuStderrTail?: string;
}

export interface WaitOptions {
  /** Kill the machine after this long (ms; 0 = no limit). */
  timeoutMs?: number;
  signal?: AbortSignal;
}
