/**
 * The gce driver: a Compute Engine instance. The image is `ops build` of the package's gcloud.json, imported
 * (reused by digest), the instance started with the volume attached; the serial console is streamed into the
 * run folder. Compute Engine does not carry the exit status: a proof that came back means success (unless a file
 * proof's library printed a non-zero status: the lifecycle's withConsoleExit).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../../errors.js';
import {
  buildGcpImage,
  type GcpBuiltImage,
  type GcpRecipePlan,
  type GcpRecipeSource,
} from '../../gcp/build.js';
import {
  GceInstance,
  type GcpRunOptions,
  type GcpRunResult,
  resolveGcpRunSpec,
  type WatchResult,
} from '../../gcp/instance.js';
import type { GcpDiskType } from '../../gcp/plan.js';
import { machineShape } from '../../gcp/prices.js';
import { type NanosRelease, requireOpsAndNanos } from '../../ops/build.js';
import type { ConsoleProofTap } from '../../proof/index.js';
import type { Recipe } from '../../recipe/schema.js';
import type { PreparedTarget } from '../../run/prepare.js';
import { CONSOLE_LOG, type RunRecord } from '../../run/record.js';
import type { DriverRun, MachineDriver, MachineEnd } from '../driver.js';

/** What a Compute Engine run takes: the recipe, its plan, and the instance's options (clients included). */
export interface GceDriverOptions {
  source: GcpRecipeSource & { onConsoleLine?: (line: string) => void };
  plan: GcpRecipePlan;
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
export function instanceEnd(watched: WatchResult, run: DriverRun, endMarker: string): MachineEnd {
  if (watched.reader.lostBytes > 0) {
    run.record.warnings.push({
      code: 'console-lost',
      message: `${watched.reader.lostBytes} console bytes were dropped by the instance before uniprove read them`,
    });
  }
  return {
    state: 'exited',
    reason:
      watched.ended === 'marker'
        ? `the console printed ${endMarker}; Compute Engine does not carry the exit status`
        : 'the instance stopped (Nanos powers off when the program exits); Compute Engine does not carry the exit status',
  };
}

/** A Compute Engine instance: no exit status, a console proof decides. */
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

  constructor(private readonly options: GceDriverOptions) {}

  async check(run: DriverRun): Promise<void> {
    this.release = (await requireOpsAndNanos(this.options.source)).release;
    run.record.nanosVersion = this.release.version;
  }

  async image(target: PreparedTarget, run: DriverRun): Promise<void> {
    const { record } = run;
    const { signal, onProgress } = this.options.instance;
    this.built = await buildGcpImage(target, this.release!, this.options.source, this.options.plan, {
      configDir: record.dir,
      vcpus: Math.max(1, Math.floor(machineShape(this.options.machineType).vcpus)),
      ...(signal ? { signal } : {}),
      ...(onProgress ? { onProgress } : {}),
      ...(run.consoleProof ? { stage: run.consoleProof.stage } : {}),
    });
    const built = this.built;
    record.args = built.config.Args ?? record.args;
    record.timings.imageBuildMs = built.imageBuildMs;
    record.files.config = 'gcloud-build.json';
    await writeFile(join(record.dir, 'manifest.txt'), `${built.manifest}\n`);
    record.files.manifest = 'manifest.txt';
    record.volumes = built.volume ? [built.volume] : [];
    record.files.console = CONSOLE_LOG;
    await writeFile(join(record.dir, CONSOLE_LOG), '');
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

  async start(run: DriverRun): Promise<void> {
    const { record } = run;
    const built = this.built!;
    const tap = run.consoleProof;
    const proofEnd = consoleEnd(this.options.plan.proof, tap);
    const watch = run.kernelStop;
    // The kernel's last words end the watch as a proof's end marker does: the instance would spin until the timeout.
    const isEnd = watch
      ? (line: string) => (watch.pushLine(line) ? 'the Nanos kernel stopping' : proofEnd?.(line))
      : proofEnd;
    const volume = await this.volumeDisk();
    const options: GcpRunOptions & Required<Pick<GcpRunOptions, 'clients'>> = {
      ...this.options.instance,
      runId: record.id,
      image: { rawPath: built.rawPath, name: this.options.plan.name, sha256: built.buildKey },
      ...(volume ? { volume } : {}),
      consolePath: join(record.dir, CONSOLE_LOG),
      workDir: record.dir,
      onConsoleLine: (line) => {
        this.firstLineAt ??= performance.now();
        // A file proof's base64 lines go to the tap (and console.log), not to the live console.
        if (!tap?.pushLine(line)) this.options.source.onConsoleLine?.(line);
      },
      ...(isEnd ? { isEnd } : {}),
      dryRun: false,
    };
    const { spec, sources } = await resolveGcpRunSpec(options, false);
    this.gcpStarted = performance.now();
    this.instance = new GceInstance(options, spec, sources);
    await this.instance.start();
  }

  async wait(run: DriverRun): Promise<MachineEnd> {
    this.watched = await this.instance!.wait();
    const proof = this.options.plan.proof;
    return instanceEnd(this.watched, run, proof.kind === 'console' ? proof.end : 'the end marker');
  }

  async fetchProofs(): Promise<void> {
    // The console is all that comes back from an instance: file proofs come through it (the lifecycle's tap).
  }

  async destroy(run: DriverRun, failure?: unknown): Promise<void> {
    const built = this.built;
    this.built = undefined;
    await built?.release().catch(() => {});
    if (!this.instance) return;
    try {
      await this.instance.release(failure);
    } finally {
      // Where it ran and what it made, also when the run fails after the instance ran (a proof cut short).
      if (this.watched) this.describe(run);
    }
  }

  /** The run's result as `gcp run --image` gives it (after destroy). */
  result(): GcpRunResult {
    return this.instance!.result();
  }

  /** Where it ran and what it made, and the timings only the driver saw. */
  private describe(run: DriverRun): void {
    const { record } = run;
    const result = this.instance!.result();
    const setupEnd = this.gcpStarted + result.durationMs.setup;
    if (this.firstLineAt !== undefined) {
      record.timings.firstConsoleLineMs = Math.round(this.firstLineAt - run.startedMs);
      record.timings.bootMs = Math.max(0, Math.round(this.firstLineAt - setupEnd));
      record.timings.proverMs = Math.max(0, result.durationMs.run - record.timings.bootMs);
    }
    record.image = result.image;
    record.gce = gceRecord(result, this.options.machineType);
  }
}
