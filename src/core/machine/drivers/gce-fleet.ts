/**
 * The gce driver for one attempt of a fleet's input: the images (one per distinct argument list) and the volume
 * image were built and imported once for the fleet, so this driver builds nothing; it starts a fresh instance from
 * the image of the input's arguments (fleetInstanceBody: Spot by
 * default, the fleet label on the instance and its disks, its own volume disk made from the volume image), streams
 * its console into the attempt's run record, and deletes the instance. A preempted instance ends the run with
 * E_GCP_PREEMPTED (the fleet retries the input); the fleet's progress hears where the attempt is.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttemptState } from '../../fleet/scheduler.js';
import type { GcpClients } from '../../gcp/clients.js';
import type { GcpCommonOptions } from '../../gcp/context.js';
import { fleetImageFor, type GcpFleetSpec, planFleetAttempt } from '../../gcp/fleet-plan.js';
import { GceInstance, type GcpRunOptions, type WatchResult } from '../../gcp/instance.js';
import type { GcpRunSpec } from '../../gcp/plan.js';
import type { OpsConfig } from '../../ops/config/schema.js';
import type { PreparedTarget } from '../../run/prepare.js';
import { CONSOLE_LOG } from '../../run/record.js';
import type { DriverRun, MachineDriver, MachineEnd } from '../driver.js';
import { consoleEnd, gceRecord, instanceEnd } from './gce.js';

/**
 * What every attempt of a fleet shares: the fleet's spec (images already imported: one per distinct argument list,
 * each input boots the one of its arguments), clients, the machine.
 */
export interface GceFleetShared {
  spec: GcpFleetSpec & { image: { existing: string } };
  clients: GcpClients;
  poll?: GcpCommonOptions['poll'];
  machineType: string;
  nanosVersion: string;
  /** How long the prover may run once the instance is up (ms). */
  timeoutMs: number;
  watch?: GcpRunOptions['watch'];
  /**
   * A file proof through the console: the config the fleet's image was staged from and the prover on the host,
   * so each attempt's tap (run.consoleProof) sets up its own receiver in its own record.
   */
  fileProof?: { config: OpsConfig; programPath: string };
  /** Make what instances in a zone share before the first starts there (a read-only volume disk); once a zone. */
  prepareZone?: (zone: string, signal: AbortSignal) => Promise<void>;
}

/** One attempt: which input, which try, where, and whom to tell. */
export interface GceFleetAttempt {
  index: number;
  attempt: number;
  zone: string;
  args: string[];
  signal: AbortSignal;
  onState: (state: AttemptState, detail?: string) => void;
}

/** One attempt of a fleet's input on a fresh instance from the fleet's images. */
export class GceFleetDriver implements MachineDriver {
  readonly name = 'gce' as const;
  readonly exitStatus = 'proof' as const;
  readonly machineWord = 'the instance';
  private instance: GceInstance | undefined;
  private watched: WatchResult | undefined;
  private startedAt = 0;
  private proving = false;
  /** The console proof's end marker (from the recipe): the run ends there. */
  private end: ((line: string) => unknown) | undefined;

  constructor(
    private readonly shared: GceFleetShared,
    private readonly attempt: GceFleetAttempt,
  ) {}

  async check(run: DriverRun): Promise<void> {
    run.record.nanosVersion = this.shared.nanosVersion;
  }

  async image(target: PreparedTarget, run: DriverRun): Promise<void> {
    const { record } = run;
    // The image of this input's arguments: Nanos reads the program's arguments from the image's manifest.
    record.image = fleetImageFor(this.shared.spec, this.attempt.args);
    const proof = target.proof;
    const tap = run.consoleProof;
    if (proof.kind !== 'console' && tap && this.shared.fileProof) {
      // The image is staged already (once for the fleet); this sets up the attempt's own receiver.
      await tap.stage(this.shared.fileProof.config, this.shared.fileProof.programPath);
    }
    this.end = consoleEnd(proof, this.shared.fileProof ? tap : undefined);
    record.volumes = target.volumes;
    record.files.console = CONSOLE_LOG;
    await writeFile(join(record.dir, CONSOLE_LOG), '');
  }

  async start(run: DriverRun): Promise<void> {
    const { record } = run;
    const { clients } = this.shared;
    const spec = {
      ...this.shared.spec,
      image: { existing: fleetImageFor(this.shared.spec, this.attempt.args) },
    };
    const { zone, signal } = this.attempt;
    const target = { ...spec.target, zone };
    const options: GcpRunOptions & { clients: GcpClients } = {
      target,
      clients,
      signal,
      ...(this.shared.poll ? { poll: this.shared.poll } : {}),
      image: spec.image,
      machine: spec.machine,
      runId: record.id,
      timeoutMs: this.shared.timeoutMs,
      consolePath: join(record.dir, CONSOLE_LOG),
      workDir: record.dir,
      onConsoleLine: (line) => {
        run.consoleProof?.pushLine(line);
        if (!this.proving) {
          this.proving = true;
          this.attempt.onState('proving');
        }
      },
      ...(this.end ? { isEnd: this.end } : {}),
      ...(this.shared.watch ? { watch: this.shared.watch } : {}),
      onProgress: (e) => {
        if (e.kind === 'step-start' && e.step === 'clean up') this.attempt.onState('deleting');
      },
    };
    const runSpec: GcpRunSpec = {
      target,
      runId: record.id,
      bucket: spec.bucket,
      image: spec.image,
      machine: spec.machine,
      bootDisk: spec.bootDisk,
      network: spec.network,
      labels: spec.labels,
      maxRunSeconds: spec.maxRunSeconds,
      keep: false,
    };
    const plan = planFleetAttempt(spec, { ...this.attempt, runId: record.id });
    this.instance = new GceInstance(options, runSpec, [], plan);
    this.startedAt = performance.now();
    this.attempt.onState('inserting');
    await this.shared.prepareZone?.(zone, signal);
    await this.instance.start();
    this.attempt.onState('booting');
  }

  async wait(run: DriverRun): Promise<MachineEnd> {
    this.watched = await this.instance!.wait();
    return instanceEnd(this.watched, run, 'the end marker');
  }

  async fetchProofs(): Promise<void> {
    // Console proofs only here (collected by the lifecycle); file proofs come back through the console route.
  }

  async destroy(run: DriverRun, failure?: unknown): Promise<void> {
    if (!this.instance) return;
    try {
      await this.instance.release(failure);
    } finally {
      // Where it ran and what it made, also when the attempt fails after the instance ran.
      if (this.watched) this.describe(run);
    }
  }

  /** Seconds the instance existed (billed), from its insert to its delete. */
  instanceSeconds(): number {
    return this.startedAt ? (performance.now() - this.startedAt) / 1000 : 0;
  }

  private describe(run: DriverRun): void {
    run.record.gce = gceRecord(this.instance!.result(), this.shared.machineType);
  }
}
