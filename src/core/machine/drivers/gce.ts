/**
 * The gce driver: a Compute Engine instance. The image is `ops build` of the package's gcloud.json, imported
 * (reused by digest), the instance started with the volume attached; the serial console is streamed into the
 * run folder. Compute Engine does not carry the exit status: a proof that came back means success (unless a file
 * proof's library printed a non-zero status: the lifecycle's withConsoleExit).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GcpClients } from '../../cloud/clients.js';
import type { GcpCommonOptions } from '../../cloud/context.js';
import {
  type AttemptState,
  fleetImageFor,
  type GcpFleetSpec,
  planFleetAttempt,
} from '../../cloud/fleet-plan.js';
import {
  GceInstance,
  type GcpRunOptions,
  type GcpRunResult,
  resolveGcpRunSpec,
  type WatchResult,
} from '../../cloud/instance.js';
import type { GcpDiskType, GcpRunSpec } from '../../cloud/plan.js';
import { machineShape } from '../../cloud/prices.js';
import { UniproveError } from '../../errors.js';
import {
  buildGcpImage,
  type GcpBuiltImage,
  type GcpRecipePlan,
  type GcpRecipeSource,
} from '../../image/gce-build.js';
import type { OpsConfig } from '../../manifest/schema.js';
import { type NanosRelease, requireOpsAndNanos } from '../../ops/build.js';
import type { PreparedTarget } from '../../package/target.js';
import type { ConsoleProofTap } from '../../proof/index.js';
import type { Recipe } from '../../recipe/schema.js';
import { CONSOLE_LOG, type RunRecord } from '../../record/record.js';
import type { DriverRun, MachineDriver, MachineEnd, MachineReport } from '../driver.js';

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

/**
 * What an instance boots: a recipe's image, built from the prepared package and imported here (reused by
 * digest); an image given as it is (`gcp run --image`, `--image-file`: nothing is built, no proof is known); or
 * a fleet's image of the input's arguments, built and imported once for the fleet, in the attempt's zone.
 */
export type GceBoot =
  | { recipe: GcpRecipeSource & { onConsoleLine?: (line: string) => void }; plan: GcpRecipePlan }
  | { given: Required<Pick<GcpRunOptions, 'image'>> & Pick<GcpRunOptions, 'volume' | 'onConsoleLine'> }
  | { fleet: GceFleetShared; attempt: GceFleetAttempt };

/** What a Compute Engine run takes: what it boots, and the instance's options (clients included). */
export interface GceDriverOptions {
  boot: GceBoot;
  instance: Omit<GcpRunOptions, 'image' | 'volume' | 'runId'> & Required<Pick<GcpRunOptions, 'clients'>>;
  machineType: string;
  diskType: GcpDiskType;
  /** --disk-size: the volume disk's size in GB (default the volume's, 10 at least). */
  volumeSizeGb?: number;
}

/**
 * Where an instance's run ends on its console, since Compute Engine carries no exit status: the console proof's
 * end marker, or a file proof's end (or error) marker; undefined: when the instance stops.
 */
export function consoleEnd(
  proof: Recipe['proof'],
  tap: ConsoleProofTap | undefined,
): ((line: string) => string | undefined) | undefined {
  if (proof.kind === 'console') return (line) => (line.trim() === proof.end ? proof.end : undefined);
  return tap?.isEnd;
}

/** Where an instance ran and what it made, as the run record keeps it (`record.gce`). */
export function gceRecord(result: GcpRunResult, machineType: string): NonNullable<RunRecord['gce']> {
  return {
    project: result.project,
    zone: result.zone,
    instance: result.instance,
    image: result.image,
    machineType,
    ...(result.volumeDisk ? { volumeDisk: result.volumeDisk } : {}),
    ended: result.ended,
    consoleLostBytes: result.consoleLostBytes,
    retries: result.retries,
    durationMs: result.durationMs,
    deleted: result.deleted,
    kept: result.kept,
  };
}

/** How a watched instance ended, as the lifecycle takes it (and the console it lost, as a warning). */
export function instanceEnd(watched: WatchResult, endMarker: string): MachineEnd {
  const lost = watched.reader.lostBytes;
  return {
    ...(lost > 0
      ? {
          report: {
            warnings: [
              {
                code: 'console-lost',
                message: `${lost} console bytes were dropped by the instance before uniprove read them`,
              },
            ],
          },
        }
      : {}),
    state: 'exited',
    reason:
      watched.ended === 'marker'
        ? `the console printed ${endMarker}; Compute Engine does not carry the exit status`
        : 'the instance stopped (Nanos powers off when the program exits); Compute Engine does not carry the exit status',
  };
}

/**
 * A Compute Engine instance: no exit status, a console proof decides. One driver for a single run and a fleet's
 * attempt alike: only what it boots differs (GceBoot).
 */
export class GceDriver implements MachineDriver {
  readonly name = 'gce' as const;
  readonly exitStatus = 'proof' as const;
  readonly machineWord = 'the instance';
  private release: NanosRelease | undefined;
  private built: GcpBuiltImage | undefined;
  private instance: GceInstance | undefined;
  private watched: WatchResult | undefined;
  private firstLineAt: number | undefined;
  private gcpStarted = 0;
  /** The console proof's end marker of a fleet attempt (set when its image step stages the tap). */
  private attemptEnd: ((line: string) => unknown) | undefined;
  private proving = false;

  constructor(private readonly options: GceDriverOptions) {}

  async check(_run: DriverRun): Promise<MachineReport | undefined> {
    const { boot } = this.options;
    // A fleet's images are built already; a given image is booted as it is: no Ops, no Nanos release here.
    if ('fleet' in boot) return { nanosVersion: boot.fleet.nanosVersion };
    if (!('recipe' in boot)) return undefined;
    this.release = (await requireOpsAndNanos(boot.recipe)).release;
    return { nanosVersion: this.release.version };
  }

  async image(target: PreparedTarget, run: DriverRun): Promise<MachineReport> {
    const { record } = run;
    const { boot } = this.options;
    await writeFile(join(record.dir, CONSOLE_LOG), '');
    if ('fleet' in boot) return this.attemptImage(target, run, boot);
    if ('given' in boot) {
      const image = boot.given.image;
      return {
        image: 'existing' in image ? image.existing : (image.name ?? image.rawPath),
        files: { console: CONSOLE_LOG },
      };
    }
    const { signal, onProgress } = this.options.instance;
    this.built = await buildGcpImage(target, this.release!, boot.recipe, boot.plan, {
      configDir: record.dir,
      vcpus: Math.max(1, Math.floor(machineShape(this.options.machineType).vcpus)),
      ...(signal ? { signal } : {}),
      ...(onProgress ? { onProgress } : {}),
      ...(run.consoleProof ? { stage: run.consoleProof.stage } : {}),
    });
    const built = this.built;
    await writeFile(join(record.dir, 'manifest.txt'), `${built.manifest}\n`);
    return {
      args: built.config.Args ?? record.args,
      timings: { imageBuildMs: built.imageBuildMs },
      files: { config: 'gcloud-build.json', manifest: 'manifest.txt', console: CONSOLE_LOG },
      volumes: built.volume ? [built.volume] : [],
    };
  }

  /** A fleet attempt's image: the one of its arguments (Nanos reads them from the image's manifest). */
  private async attemptImage(
    target: PreparedTarget,
    run: DriverRun,
    boot: { fleet: GceFleetShared; attempt: GceFleetAttempt },
  ): Promise<MachineReport> {
    const { fileProof } = boot.fleet;
    const tap = run.consoleProof;
    if (target.proof.kind !== 'console' && tap && fileProof) {
      // The image is staged already (once for the fleet); this sets up the attempt's own receiver.
      await tap.stage(fileProof.config, fileProof.programPath);
    }
    this.attemptEnd = consoleEnd(target.proof, fileProof ? tap : undefined);
    return {
      image: fleetImageFor(boot.fleet.spec, boot.attempt.args),
      volumes: target.volumes,
      files: { console: CONSOLE_LOG },
    };
  }

  /** The volume's disk: the volume's size (10 GB at least), or --disk-size when it holds the volume. */
  private async volumeDisk(): Promise<GcpRunOptions['volume']> {
    const volume = this.built?.volume;
    if (!volume) return undefined;
    const size = (await stat(volume.path)).size;
    const needGb = Math.max(10, Math.ceil(size / 2 ** 30));
    const sizeGb = this.options.volumeSizeGb ?? needGb;
    if (sizeGb * 2 ** 30 < size) {
      throw new UniproveError('E_USAGE', {
        message: `--disk-size ${sizeGb} GB is smaller than the volume ${volume.label} (${Math.ceil(size / 2 ** 30)} GB)`,
        hint: `Give --disk-size ${Math.ceil(size / 2 ** 30)} or more, or leave it out.`,
      });
    }
    return { rawPath: volume.path, name: volume.label, diskType: this.options.diskType, sizeGb };
  }

  /** The boot image and the volume disk, as the instance takes them (a fleet's: from its spec). */
  private async bootDisks(): Promise<Pick<GcpRunOptions, 'image' | 'volume'>> {
    const { boot } = this.options;
    if ('fleet' in boot) return { image: { existing: fleetImageFor(boot.fleet.spec, boot.attempt.args) } };
    if ('given' in boot) return boot.given;
    const built = this.built!;
    const volume = await this.volumeDisk();
    return {
      image: { rawPath: built.rawPath, name: boot.plan.name, sha256: built.buildKey },
      ...(volume ? { volume } : {}),
    };
  }

  /** Where each console line goes besides console.log: the live console, unless a file proof's tap takes it. */
  private onConsoleLine(): ((line: string) => void) | undefined {
    const { boot } = this.options;
    if ('fleet' in boot) {
      // A fleet shows no console; the first line says the attempt is proving.
      return () => {
        if (this.proving) return;
        this.proving = true;
        boot.attempt.onState('proving');
      };
    }
    return 'recipe' in boot ? boot.recipe.onConsoleLine : boot.given.onConsoleLine;
  }

  async start(run: DriverRun): Promise<undefined> {
    const { record } = run;
    const { boot } = this.options;
    const tap = run.consoleProof;
    const proofEnd = 'recipe' in boot ? consoleEnd(boot.plan.proof, tap) : this.attemptEnd;
    const live = this.onConsoleLine();
    const watch = run.kernelStop;
    // The kernel's last words end the watch as a proof's end marker does: the instance would spin until the timeout.
    const isFatal = watch
      ? (line: string) => (watch.pushLine(line) ? 'the Nanos kernel stopping' : undefined)
      : undefined;
    const options: GcpRunOptions & Required<Pick<GcpRunOptions, 'clients'>> = {
      ...this.options.instance,
      runId: record.id,
      ...(await this.bootDisks()),
      consolePath: join(record.dir, CONSOLE_LOG),
      workDir: record.dir,
      onConsoleLine: (line) => {
        this.firstLineAt ??= performance.now();
        // A file proof's base64 lines go to the tap (and console.log), not to the live console.
        if (!tap?.pushLine(line)) live?.(line);
      },
      ...(proofEnd ? { isEnd: proofEnd } : {}),
      ...(isFatal ? { isFatal } : {}),
      dryRun: false,
    };
    if ('fleet' in boot) return this.startAttempt(options, boot);
    const { spec, sources } = await resolveGcpRunSpec(options, false);
    this.gcpStarted = performance.now();
    this.instance = new GceInstance(options, spec, sources);
    await this.instance.start();
    return undefined;
  }

  /** A fleet attempt's instance: the fleet's plan for its zone, the zone's shared disks made first. */
  private async startAttempt(
    options: GcpRunOptions & Required<Pick<GcpRunOptions, 'clients'>>,
    boot: { fleet: GceFleetShared; attempt: GceFleetAttempt },
  ): Promise<undefined> {
    const { fleet, attempt } = boot;
    const spec = { ...fleet.spec, image: { existing: fleetImageFor(fleet.spec, attempt.args) } };
    const runSpec: GcpRunSpec = {
      target: options.target,
      runId: options.runId!,
      bucket: spec.bucket,
      image: spec.image,
      machine: spec.machine,
      bootDisk: spec.bootDisk,
      network: spec.network,
      labels: spec.labels,
      maxRunSeconds: spec.maxRunSeconds,
      keep: false,
    };
    const plan = planFleetAttempt(spec, { ...attempt, runId: options.runId! });
    this.instance = new GceInstance(options, runSpec, [], plan);
    this.gcpStarted = performance.now();
    attempt.onState('inserting');
    await fleet.prepareZone?.(attempt.zone, attempt.signal);
    await this.instance.start();
    attempt.onState('booting');
    return undefined;
  }

  async wait(_run: DriverRun): Promise<MachineEnd> {
    this.watched = await this.instance!.wait();
    const { boot } = this.options;
    const proof = 'recipe' in boot ? boot.plan.proof : undefined;
    return instanceEnd(this.watched, proof?.kind === 'console' ? proof.end : 'the end marker');
  }

  async fetchProofs(): Promise<undefined> {
    // The console is all that comes back from an instance: file proofs come through it (the lifecycle's tap).
  }

  async destroy(run: DriverRun, failure?: unknown): Promise<MachineReport | undefined> {
    const built = this.built;
    this.built = undefined;
    await built?.release().catch(() => {});
    if (!this.instance) return undefined;
    const { boot } = this.options;
    if ('fleet' in boot) boot.attempt.onState('deleting');
    try {
      await this.instance.release(failure);
    } catch (error) {
      // With a failure, release throws it back with what was left in its details: the lifecycle holds it
      // already. Without one, what could not be deleted fails the run (the lifecycle calls again with it).
      if (failure === undefined) throw error;
    }
    // Where it ran and what it made, also when the run fails after the instance ran (a proof cut short).
    return this.watched ? this.describe(run) : undefined;
  }

  /** Seconds the instance existed (billed), from its insert to its delete. */
  instanceSeconds(): number {
    return this.gcpStarted ? (performance.now() - this.gcpStarted) / 1000 : 0;
  }

  /** The run's result as `gcp run --image` gives it (after destroy). */
  result(): GcpRunResult {
    return this.instance!.result();
  }

  /** Where it ran and what it made, and the timings only the driver saw. */
  private describe(run: DriverRun): MachineReport {
    const result = this.instance!.result();
    const setupEnd = this.gcpStarted + result.durationMs.setup;
    const report: MachineReport = { image: result.image, gce: gceRecord(result, this.options.machineType) };
    if (this.firstLineAt !== undefined) {
      const bootMs = Math.max(0, Math.round(this.firstLineAt - setupEnd));
      report.timings = {
        firstConsoleLineMs: Math.round(this.firstLineAt - run.startedMs),
        bootMs,
        proverMs: Math.max(0, result.durationMs.run - bootMs),
      };
    }
    return report;
  }
}
