/**
 * `gcp run <recipe>`: the Compute Engine front end of the run lifecycle (run/lifecycle.ts) with the gce
 * driver. Everything is resolved and checked first (no side effect), so a dry run prints exactly the calls a
 * real run makes, and a bad flag leaves no package, no image and no VM.
 */

import { join } from 'node:path';
import { cloudOpsServiceAccounts } from '../cloud/cloud-ops.js';
import { commonOf, type GcpCommonOptions, type GcpDryRunResult, withClients } from '../cloud/context.js';
import {
  DEFAULT_RUN_TIMEOUT_MS,
  type GcpRunOptions,
  type GcpRunResult,
  runInstance,
} from '../cloud/instance.js';
import { type GcpDiskType, type GcpMachineSpec, machineTypeName } from '../cloud/plan.js';
import { machineShape } from '../cloud/prices.js';
import {
  type GcpRecipeSource,
  imagePlaceholder,
  prepareOptionsOf,
  recipeMachine,
  resolveGcpRecipe,
} from '../image/gce-build.js';
import { GceDriver } from '../machine/drivers/gce.js';
import { prepareTarget } from '../package/target.js';
import { checkProofFits } from '../proof/index.js';
import type { RunOutcome, RunRecord } from '../record/record.js';
import { kernelVcpuPolicy } from '../run/index.js';
import { lifecycleOptions, runOnMachine } from '../run/lifecycle.js';
import { requireUnmapSafeKernel } from '../run/vcpus.js';
import { describeGce } from './describe.js';

/** Options of `gcp run <recipe>`. */
export interface GcpRunRecipeOptions extends GcpCommonOptions, GcpRecipeSource {
  /** Predefined machine type, or a custom one fitted to the recipe's CPUs and memory. */
  machine: Omit<GcpMachineSpec, 'cpus' | 'memoryGb'>;
  /** The volume's disk: type and size (default: the volume's size, 10 GB at least). */
  volumeDisk?: { diskType?: GcpDiskType; sizeGb?: number };
  bootDisk?: GcpRunOptions['bootDisk'];
  network?: string;
  labels?: Record<string, string>;
  bucket?: string;
  keep?: boolean;
  dryRun?: boolean;
  /** How long the prover may run once the instance is up (ms; default 6 h). */
  timeoutMs?: number;
  /** Called with each whole console line, in order. */
  onConsoleLine?: (line: string) => void;
  watch?: GcpRunOptions['watch'];
  /** Folder of run records; proving_report.csv lives here (default <cwd>/runs). */
  runsDir?: string;
  /** This run's record folder (default <runsDir>/<id>); the package goes to packageOut, never here. */
  out?: string;
  /** Do not add the run to proving_report.csv. */
  noReport?: boolean;
  /** Run a machine of several vCPUs even on a Nanos kernel with the unmap deadlock (else refused: E_UNMAP_DEADLOCK). */
  allowUnmapDeadlock?: boolean;
}

/** A recipe run on Compute Engine: the run record (as a local run keeps) and what gcp run did. */
export interface GcpRunRecipeResult {
  dryRun: false;
  id: string;
  dir: string;
  outcome: RunOutcome;
  record: RunRecord;
  gcp: GcpRunResult;
}

function runOptionsOf(
  options: GcpRunRecipeOptions,
  machine: GcpMachineSpec,
): Omit<GcpRunOptions, 'image' | 'volume' | 'runId'> {
  return {
    ...commonOf(options),
    machine,
    ...(options.bootDisk ? { bootDisk: options.bootDisk } : {}),
    ...(options.network ? { network: options.network } : {}),
    ...(options.labels ? { labels: options.labels } : {}),
    ...(options.bucket ? { bucket: options.bucket } : {}),
    keep: Boolean(options.keep),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.watch ? { watch: options.watch } : {}),
    ...(options.cloudOps ? { serviceAccounts: cloudOpsServiceAccounts(options.cloudOps) } : {}),
  };
}

/**
 * Package, build, import and run a recipe on Compute Engine; stream its
 * console into runs/<id>/console.log, end at the proof's end marker (else when
 * the instance stops: Nanos powers off at exit), keep the proof with its
 * sha256 in the record, add the run to proving_report.csv, and delete what the
 * run made unless kept.
 */
export async function gcpRunRecipe(options: GcpRunRecipeOptions & { dryRun: true }): Promise<GcpDryRunResult>;
export async function gcpRunRecipe(
  options: GcpRunRecipeOptions,
): Promise<GcpRunRecipeResult | GcpDryRunResult>;
export async function gcpRunRecipe(
  options: GcpRunRecipeOptions,
): Promise<GcpRunRecipeResult | GcpDryRunResult> {
  const plan = await resolveGcpRecipe(options);
  // A file proof the console cannot carry in the run's time is refused here, before a dry run or a build.
  checkProofFits({
    maxBytes: plan.proof.kind === 'file' ? plan.proof.maxBytes : undefined,
    timeoutMs: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    where: 'gce',
    guestPath: plan.proof.kind === 'file' ? plan.proof.path : '',
  });
  const { spec: machine, adjusted } = recipeMachine(plan, options.machine);
  // A machine that cannot be named fails here, before anything is built.
  const machineType = machineTypeName(options.target, machine);
  const diskType = options.volumeDisk?.diskType ?? 'pd-balanced';
  const base = runOptionsOf(options, machine);
  if (options.dryRun) {
    return runInstance({
      ...base,
      image: {
        rawPath: join(options.opsHome, 'images', `uniprove-gcp-${plan.name}`),
        name: plan.name,
        dryRunDigest: imagePlaceholder(plan.name),
      },
      ...(plan.volume
        ? {
            volume: {
              rawPath: join(options.opsHome, 'volumes', `${plan.volume.label}.raw`),
              name: plan.volume.label,
              dryRunDigest: `<sha256 of volume ${plan.volume.label}${plan.volume.set ? ` built from set ${plan.volume.set}` : ''}>`,
              diskType,
              sizeGb: options.volumeDisk?.sizeGb ?? 10,
            },
          }
        : {}),
      dryRun: true,
    });
  }

  // Before any cloud call: an instance of several vCPUs on a kernel with the unmap deadlock is refused.
  const kernelWarning = await requireUnmapSafeKernel(
    Math.floor(machineShape(machineType).vcpus),
    machineType,
    kernelVcpuPolicy(options),
  );
  return withClients(options, async (clients) => {
    const driver = new GceDriver({
      boot: { recipe: options, plan },
      instance: { ...base, clients },
      machineType,
      diskType,
      ...(options.volumeDisk?.sizeGb ? { volumeSizeGb: options.volumeDisk.sizeGb } : {}),
    });
    const record = await runOnMachine(
      driver,
      lifecycleOptions(options, {
        prover: plan.name,
        args: options.overrides?.args ?? options.args ?? plan.recipe?.args ?? [],
        prepare: () => prepareTarget(prepareOptionsOf(options, options)),
        describe: (r) => {
          describeGce(r, machineType, options.target.zone);
          if (adjusted) {
            r.warnings.push({
              code: 'machine-fitted',
              message: `the recipe's resources were rounded up to a custom machine type Compute Engine accepts (${adjusted})`,
            });
          }
          if (kernelWarning) r.warnings.push(kernelWarning);
        },
        consoleProof: {
          where: 'gce',
          cacheDir: options.cacheDir,
          timeoutMs: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
        },
      }),
    );
    const outcome = record.outcome as RunOutcome;
    return { dryRun: false, id: record.id, dir: record.dir, outcome, record, gcp: driver.result() };
  });
}
