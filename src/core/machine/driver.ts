/**
 * A machine driver: how one platform runs a prover image (kraftkit's MachineService). The run lifecycle
 * (run/lifecycle.ts) calls the same steps whatever the platform: check what the host needs, build or reuse the
 * image, start, wait (console streamed into the run folder), fetch what it can of file proofs, destroy what it
 * made. Drivers: qemu (uniprove's own QEMU, the exit status through debug_exit), ops (plain `ops run`, for
 * parity: the status is lost), gce (a Compute Engine instance: no exit status, a console proof decides).
 * A new platform (another cloud, Firecracker) is one more file in drivers/ and one more name here.
 */
import type { ConsoleProofTap } from '../proof/index.js';
import type { PreparedTarget } from '../run/prepare.js';
import type { RunRecord } from '../run/record.js';
import type { KernelStopWatch } from './kernel-stop.js';

/** The drivers, by name (`RunRecord.via`). */
export type DriverName = 'qemu' | 'ops' | 'gce';

/** How a machine ended, as the driver saw it. */
export interface MachineEnd {
  /** exited: on its own; timeout: killed at the limit; stopped: Ctrl-C; failed: the platform could not run it. */
  state: 'exited' | 'timeout' | 'stopped' | 'failed';
  /** The prover's exit status; undefined where the platform does not carry it (an honest "unknown"). */
  exitCode?: number;
  /** Why the status is what it is, or why it is unknown. */
  reason?: string;
  /** The kernel's words when the Nanos kernel stopped (an assertion, a fault): the run failed, whatever else. */
  kernelStop?: string;
  /** For `failed`: what to do, and facts for the error (the tail of the platform's own stderr). */
  hint?: string;
  details?: Record<string, unknown>;
}

/** The run a driver works for: its record (rewritten as it goes) and when it started. */
export interface DriverRun {
  record: RunRecord;
  /** performance.now() when the run started (timings are measured from it). */
  startedMs: number;
  /**
   * A file proof that comes back through the console (proof/index.ts): the driver stages it into the config it
   * builds with and feeds it the console as it arrives.
   */
  consoleProof?: ConsoleProofTap;
  /**
   * Watches the console for the Nanos kernel stopping (an assertion, a fault): the driver feeds it the console
   * and stops the machine when its signal aborts; the lifecycle then ends the run as failed (machine/kernel-stop.ts).
   */
  kernelStop?: KernelStopWatch;
}

/** One platform's way of running one prover image; one object per run (its state is that run's). */
export interface MachineDriver {
  readonly name: DriverName;
  /**
   * Whether the platform carries the prover's exit status: known (qemu), unknown (ops: lost), or proof (gce:
   * never carried, so a proof that came back means success and one that did not means failure, unless a file
   * proof's library reported a non-zero status on the console: run/lifecycle.ts withConsoleExit).
   */
  readonly exitStatus: 'known' | 'unknown' | 'proof';
  /** The thing Ctrl-C stops, for messages ("QEMU", "the instance"). */
  readonly machineWord: string;
  /** Check the tools and access the platform needs, before anything is built. */
  check(run: DriverRun): Promise<void>;
  /** Build or reuse the image the platform boots, from the prepared package; record what was made. */
  image(target: PreparedTarget, run: DriverRun): Promise<void>;
  /** Start the machine; its console goes to <record.dir>/console.log as it arrives. */
  start(run: DriverRun): Promise<void>;
  /** Until the prover ends, the timeout passes or the run is aborted; fills the record's timings. */
  wait(run: DriverRun): Promise<MachineEnd>;
  /** Bring back what the platform can of file proofs and --copy-out paths (console proofs, and file proofs
   * through the console, are the lifecycle's). */
  fetchProofs(target: PreparedTarget, run: DriverRun): Promise<void>;
  /**
   * Stop the machine and delete what the driver made, unless kept; safe to call more than once. Without
   * `failure` it throws when something could not be deleted; with it (the run is failing) it never throws and
   * adds what was left to the failure's details instead.
   */
  destroy(run: DriverRun, failure?: unknown): Promise<void>;
}

/** The options each driver takes. */
export interface DriverOptions {
  qemu: import('./drivers/local.js').LocalRunOptions;
  ops: import('./drivers/local.js').LocalRunOptions;
  gce: import('./drivers/gce.js').GceDriverOptions;
}

/** A driver by name; its module is loaded only when chosen (a local run never loads the cloud clients). */
export async function createDriver<N extends DriverName>(
  name: N,
  options: DriverOptions[N],
): Promise<MachineDriver> {
  switch (name) {
    case 'qemu':
      return new (await import('./drivers/qemu.js')).QemuDriver(options as DriverOptions['qemu']);
    case 'ops':
      return new (await import('./drivers/ops.js')).OpsDriver(options as DriverOptions['ops']);
    default:
      return new (await import('./drivers/gce.js')).GceDriver(options as DriverOptions['gce']);
  }
}
