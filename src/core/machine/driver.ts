/**
 * A machine driver: how one platform runs a prover image (kraftkit's MachineService). The run lifecycle
 * (run/lifecycle.ts) calls the same steps whatever the platform: check what the host needs, build or reuse the
 * image, start, wait (console streamed into the run folder), fetch what it can of file proofs, destroy what it
 * made. Drivers: qemu (uniprove's own QEMU, the exit status through debug_exit), ops (plain `ops run`, for
 * parity: the status is lost), gce (a Compute Engine instance: no exit status, a console proof decides).
 * A new platform (another cloud, Firecracker) is one more file in drivers/ and one more name here.
 */

import type { KernelStopWatch } from '../diagnose/kernel-stop.js';
import type { PreparedTarget } from '../package/target.js';
import type { ConsoleProofTap } from '../proof/index.js';
import type { RunProof, RunRecord, RunTimings, RunWarning } from '../record/record.js';

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
  /** What the driver saw while waiting (QEMU's status, the boot and prover times, console it lost). */
  report?: MachineReport;
}

/**
 * What a driver saw at one step, as it returns it: the lifecycle alone writes the run record, from these (scalar
 * fields replace, timings and files merge, warnings and proofs are added).
 */
export interface MachineReport {
  nanosVersion?: string;
  /** The image booted (a path under ~/.ops/images, or a Compute Engine image name). */
  image?: string;
  /** The prover's arguments as the machine runs them. */
  args?: string[];
  accel?: RunRecord['accel'];
  accelReason?: string;
  qemu?: RunRecord['qemu'];
  gce?: RunRecord['gce'];
  imageCache?: RunRecord['imageCache'];
  /** The volumes as the machine mounts them (a parallel run's private copies). */
  volumes?: RunRecord['volumes'];
  timings?: Partial<RunTimings>;
  files?: Partial<RunRecord['files']>;
  warnings?: RunWarning[];
  proofs?: RunProof[];
}

/** The run a driver works for: its record (to read; the lifecycle writes it) and when it started. */
export interface DriverRun {
  record: Readonly<RunRecord>;
  /** performance.now() when the run started (timings are measured from it). */
  startedMs: number;
  /**
   * A file proof that comes back through the console (proof/index.ts): the driver stages it into the config it
   * builds with and feeds it the console as it arrives.
   */
  consoleProof?: ConsoleProofTap;
  /**
   * Watches the console for the Nanos kernel stopping (an assertion, a fault): the driver feeds it the console
   * and stops the machine when its signal aborts; the lifecycle then ends the run as failed (diagnose/kernel-stop.ts).
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
  check(run: DriverRun): Promise<MachineReport | undefined>;
  /** Build or reuse the image the platform boots, from the prepared package; say what was made. */
  image(target: PreparedTarget, run: DriverRun): Promise<MachineReport>;
  /** Start the machine; its console goes to <record.dir>/console.log as it arrives. */
  start(run: DriverRun): Promise<MachineReport | undefined>;
  /** Until the prover ends, the timeout passes or the run is aborted; the end carries what was seen. */
  wait(run: DriverRun): Promise<MachineEnd>;
  /** Bring back what the platform can of file proofs and --copy-out paths (console proofs, and file proofs
   * through the console, are the lifecycle's). */
  fetchProofs(target: PreparedTarget, run: DriverRun): Promise<MachineReport | undefined>;
  /**
   * Stop the machine and delete what the driver made, unless kept; safe to call more than once. Without
   * `failure` it throws when something could not be deleted; with it (the run is failing) it never throws and
   * adds what was left to the failure's details instead. Says where it ran and what it made.
   */
  destroy(run: DriverRun, failure?: unknown): Promise<MachineReport | undefined>;
}
