/** `uniprove gcp run`: a recipe through the run lifecycle on Compute Engine, or a raw image on an instance. */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { DISK_TYPES, type GcpMachineSpec } from '../../../core/cloud/plan.js';
import { parseDuration } from '../../../core/duration.js';
import { UniproveError } from '../../../core/errors.js';
import { gcpRunRecipe } from '../../../core/gcp/run.js';
import { gcpRun } from '../../../core/gcp/run-image.js';
import { memoryMb } from '../../../core/image/gce-build.js';
import type { CliContext } from '../../context.js';
import {
  addCloudOpsOptions,
  addObserveOptions,
  CLOUD_OPS_HELP,
  type CloudOpsFlags,
  cloudOpsLines,
  cloudOpsOf,
  OBSERVE_HELP,
  type ObserveFlags,
  observeSpec,
  proverName,
  refuseWithoutRecipe,
  startObserver,
} from '../../observe.js';
import { createProgress } from '../../progress.js';
import { printJson, printLines, printWarnings } from '../../render.js';
import { addRecipeOverrides, exitForOutcome, sweepLeftBehind } from '../shared.js';
import { addFleetOptions, FLEET_HELP, type FleetFlags, fleetFlags, runFleetCommand } from './fleet.js';
import {
  type CommonFlags,
  common,
  noRecipeFlags,
  parseDiskType,
  parseGpu,
  positiveNumber,
  printDryRun,
  type RecipeFlags,
  recipeSource,
  target,
  withCommon,
} from './shared.js';

type RunFlags = CommonFlags &
  RecipeFlags &
  FleetFlags &
  ObserveFlags &
  CloudOpsFlags & {
    image?: string;
    imageFile?: string;
    volumeFile?: string;
    machineType?: string;
    family: string;
    spot?: boolean;
    gpu?: string;
    diskType: string;
    diskSize?: string;
    bootDiskType: string;
    network: string;
    label?: string[];
    keep?: boolean;
    allowUnmapDeadlock?: boolean;
    timeout: string;
    consoleFile?: string;
    runsDir: string;
    out?: string;
    dryRun?: boolean;
  };

/** The flags of both kinds of run, checked before credentials: a bad --timeout is a usage error wherever it runs. */
function runFlags(flags: RunFlags) {
  const labels = Object.fromEntries(
    (flags.label ?? []).map((kv) => {
      const i = kv.indexOf('=');
      return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const machine: Omit<GcpMachineSpec, 'cpus' | 'memoryGb'> = {
    ...(flags.machineType ? { machineType: flags.machineType } : {}),
    family: flags.family,
    spot: Boolean(flags.spot),
    gpu: parseGpu(flags.gpu),
  };
  return {
    machine,
    diskType: parseDiskType(flags.diskType, '--disk-type'),
    diskSize: positiveNumber(flags.diskSize, '--disk-size'),
    shared: {
      bootDisk: { type: parseDiskType(flags.bootDiskType, '--boot-disk-type') },
      network: flags.network,
      labels,
      ...(flags.bucket ? { bucket: flags.bucket } : {}),
      keep: Boolean(flags.keep),
      ...(flags.allowUnmapDeadlock ? { allowUnmapDeadlock: true } : {}),
      timeoutMs: parseDuration(flags.timeout, '--timeout'),
      dryRun: Boolean(flags.dryRun),
    },
  };
}

/** Which of a recipe, --image and --image-file, and the flags that go with each. */
function checkRunInput(recipe: string | undefined, flags: RunFlags): void {
  if ([recipe, flags.image, flags.imageFile].filter(Boolean).length !== 1) {
    throw new UniproveError('E_USAGE', {
      message: 'give exactly one of a recipe, --image NAME and --image-file PATH',
      hint: 'A recipe (e.g. `uniprove gcp run demo`) is packaged and built first; --image runs an image already imported; --image-file imports a raw disk first.',
    });
  }
  if (recipe && (flags.volumeFile || flags.consoleFile)) {
    throw new UniproveError('E_USAGE', {
      message: `${flags.volumeFile ? '--volume-file' : '--console-file'} goes with --image/--image-file, not with a recipe`,
      hint: "A recipe's volume comes from its parameter set; its console is kept in runs/<id>/console.log.",
    });
  }
  if (!recipe && flags.out) {
    throw new UniproveError('E_USAGE', {
      message: '--out (the run record folder) goes with a recipe, not with --image/--image-file',
      hint: 'With --image or --image-file, keep the console with --console-file PATH.',
    });
  }
  if (!recipe) noRecipeFlags(flags, flags.image ? '--image' : '--image-file');
}

type Parsed = ReturnType<typeof runFlags>;
type Common = ReturnType<typeof common>;

async function runRecipe(
  ctx: CliContext,
  recipe: string,
  flags: RunFlags,
  p: Parsed,
  c: Common,
  done: () => Promise<void>,
) {
  const { machine, diskType, diskSize, shared } = p;
  const cloudOps = cloudOpsOf(flags);
  const observing = await observeSpec(ctx, flags);
  const observer =
    observing && !shared.dryRun
      ? await startObserver(ctx, observing, { prover: proverName(recipe), inputs: 1 })
      : undefined;
  let result: Awaited<ReturnType<typeof gcpRunRecipe>>;
  try {
    result = await gcpRunRecipe({
      ...recipeSource(ctx, recipe, flags),
      ...(cloudOps ? { cloudOps } : {}),
      ...c,
      ...shared,
      machine,
      volumeDisk: { diskType, ...(diskSize ? { sizeGb: diskSize } : {}) },
      runsDir: resolve(ctx.cwd, flags.runsDir),
      ...(flags.out ? { out: resolve(ctx.cwd, flags.out) } : {}),
    });
    if (!result.dryRun) observer?.single(result.record);
  } catch (error) {
    const runDir = (error as { details?: { runDir?: unknown } }).details?.runDir;
    observer?.failed(error, typeof runDir === 'string' ? runDir : undefined);
    throw error;
  } finally {
    await observer?.end();
  }
  await done();
  if (result.dryRun) {
    if (cloudOps && flags.json) {
      const { cloudOpsPlan } = await import('../../../core/cloud/cloud-ops.js');
      return printJson(ctx.out, { calls: result.calls, cloudOps: cloudOpsPlan(cloudOps) });
    }
    printDryRun(ctx, result, Boolean(flags.json));
    if (cloudOps) printLines(ctx.out, cloudOpsLines(cloudOps));
    return;
  }
  const r = result.record;
  if (flags.json) {
    printJson(ctx.out, {
      id: r.id,
      dir: r.dir,
      outcome: r.outcome,
      exitCode: r.exitCode,
      accel: r.accel ?? null,
      proofs: r.proofs.map((p) => ({
        path: join(r.dir, p.path),
        sha256: p.sha256,
        source: p.source,
      })),
      timings: r.timings,
      gce: r.gce,
      warnings: r.warnings,
    });
  } else {
    printWarnings(ctx.out, r.warnings);
    printLines(ctx.out, [
      `${r.outcome === 'succeeded' ? 'ok: the proof came back' : `${r.outcome.toUpperCase()}: ${r.exitReason ?? ''}`} (run ${r.id} on ${r.gce?.instance}, ${r.gce?.machineType}, ${r.gce?.zone})`,
      `  record: ${r.dir}`,
      ...r.proofs.map((p) => `  proof ${join(r.dir, p.path)} sha256:${p.sha256}`),
      ...(r.gce?.kept ?? []).map((k) => `  kept ${k.kind} ${k.name}`),
    ]);
  }
  process.exitCode = exitForOutcome(result.outcome);
  return;
}

async function runImage(ctx: CliContext, flags: RunFlags, p: Parsed, c: Common, done: () => Promise<void>) {
  const { machine, diskType, diskSize, shared } = p;
  if (flags.cpus === 'all') {
    throw new UniproveError('E_USAGE', {
      message:
        "--cpus all goes with a recipe: an image run has no host cores to count, and the vCPUs are the machine type's",
      hint: 'Give --machine-type (n2-standard-8) or --cpus N with --memory.',
    });
  }
  const memoryGb = flags.memory ? memoryMb(flags.memory) / 1024 : undefined;
  const result = await gcpRun({
    ...c,
    ...shared,
    image: flags.image ? { existing: flags.image } : { rawPath: resolve(ctx.cwd, flags.imageFile!) },
    ...(flags.volumeFile
      ? {
          volume: {
            rawPath: resolve(ctx.cwd, flags.volumeFile),
            diskType,
            sizeGb: diskSize ?? 10,
          },
        }
      : {}),
    machine: {
      ...machine,
      ...(flags.cpus ? { cpus: flags.cpus } : {}),
      ...(memoryGb ? { memoryGb } : {}),
    },
    ...(flags.consoleFile ? { consolePath: resolve(ctx.cwd, flags.consoleFile) } : {}),
    cwd: ctx.cwd,
    runsDir: flags.runsDir,
  });
  await done();
  if (result.dryRun) return printDryRun(ctx, result, Boolean(flags.json));
  // No recipe stands behind an image, so no proof is known: an instance that ran to its end is no failure.
  process.exitCode = result.outcome === 'unknown' ? 0 : exitForOutcome(result.outcome);
  if (flags.json) return printJson(ctx.out, { ...result, record: undefined });
  printLines(ctx.out, [
    `run ${result.runId} on ${result.instance} (${result.zone}) ended: ${result.ended === 'marker' ? 'the prover finished' : 'the instance stopped'}`,
    `  record: ${result.recordDir}`,
    `  console: ${result.consoleLines} lines${result.consolePath ? ` in ${result.consolePath}` : ''}`,
    ...result.kept.map((k) => `  kept ${k.kind} ${k.name}`),
  ]);
}

/** Register `uniprove gcp run`. */
export function registerRun(gcp: Command, ctx: CliContext): void {
  const runCmd = withCommon(
    gcp
      .command('run')
      .argument(
        '[recipe]',
        'a recipe (name, folder or recipe.json) or a package folder made by `uniprove package`',
      )
      .description(
        "Run a prover on a Compute Engine instance. From a recipe: package it, build its image and its parameter volume, import both (reused by digest), start the instance with the volume attached, stream the serial console into runs/<id>/console.log, end at the proof's end marker (or when the instance stops: Nanos powers off at exit), keep the proof with its sha256 in runs/<id>/record.json and a line in runs/proving_report.csv, then delete the instance and what it made unless --keep. --image or --image-file run a raw disk instead, with a record and a report line of its own (no recipe: no proof is known).",
      )
      .option('--image <name>', 'instead of a recipe: an existing image (from `uniprove gcp image`)')
      .option('--image-file <path>', 'instead of a recipe: a raw disk to import first (reused by digest)')
      .option('--volume-file <path>', 'with --image/--image-file: a raw parameter volume, made into a disk')
      .option(
        '--machine-type <type>',
        "a predefined machine type, e.g. n2-standard-8 (default: a custom type from --cpus and --memory, or the recipe's resources)",
      )
      .option('--family <family>', 'machine family of a custom type', 'n2')
      .option('--spot', 'a Spot instance: much cheaper, may be preempted (the default with --inputs)')
      .option(
        '--gpu <type[:count]>',
        'attach GPUs, e.g. nvidia-l4:1 (the instance stops on host maintenance)',
      )
      .addOption(
        new Option('--disk-type <type>', 'volume disk type').choices([...DISK_TYPES]).default('pd-balanced'),
      )
      .option('--disk-size <gb>', "volume disk size in GB (default: the volume's size, 10 at least)")
      .addOption(
        new Option('--boot-disk-type <type>', 'boot disk type')
          .choices([...DISK_TYPES])
          .default('pd-balanced'),
      )
      .option('--network <name>', 'VPC network', 'default')
      .option('--label <key=value...>', 'extra labels on the instance')
      .option('--keep', 'keep the instance and the disks it made (print what was kept)')
      .option(
        '--allow-unmap-deadlock',
        'run a machine of several vCPUs even on a Nanos kernel with the unmap deadlock (else refused before anything is made)',
      )
      .option(
        '--timeout <duration>',
        'longest the prover may run: seconds (600) or with a unit (90s, 15m, 6h)',
        '6h',
      )
      .option('--console-file <path>', 'with --image/--image-file: append the serial console here')
      .option('--runs-dir <dir>', 'where run folders and proving_report.csv go (with --image too)', 'runs')
      .option('--out <dir>', 'with a recipe: the run record folder (default runs/<id>); never the package')
      .option('--package-out <dir>', 'where a recipe is packaged (default build/<name>)')
      .option('--nanos-version <version>', 'pin the Nanos release (a folder in ~/.ops)')
      .option('--dry-run', 'print the API calls, make none: builds nothing, needs no credentials'),
  );
  addFleetOptions(runCmd);
  addCloudOpsOptions(runCmd);
  addObserveOptions(
    runCmd,
    'the run or fleet (inputs by state, attempts, preemptions, retries, proof durations and bytes, cost so far)',
  );
  addRecipeOverrides(runCmd).addHelpText(
    'after',
    `
--cpus and --memory size the machine: without --machine-type, uniprove asks for a custom type
(FAMILY-custom-CPUS-MB) with that many vCPUs and that much memory (4G, 512M; a bare number is GB),
rounded up to what Compute Engine accepts (an even number of vCPUs, 0.5 GB per vCPU at least).
With a recipe they default to its resources, and they also set the guest's CPUs and memory.
--binary, --arg and --env change the recipe as they do for \`uniprove package\`.

A recipe mounts at most one parameter volume here (one disk is attached). The prover's exit status
does not reach uniprove from Compute Engine: a recipe whose proof is printed on the console succeeded
when the proof came back; exit 0 then, 1 when it ended without one, 6 at --timeout.

  $ uniprove gcp run demo --dry-run --json
  $ uniprove gcp run demo --binary ./target/release/uniprove-demo-prover --cpus 4 --memory 8G --spot
  $ uniprove gcp run benchy --machine-type n2-highmem-32 --disk-type pd-ssd
${FLEET_HELP}
${OBSERVE_HELP}
${CLOUD_OPS_HELP}`,
  );
  runCmd.action(async (recipe: string | undefined, flags: RunFlags) => {
    checkRunInput(recipe, flags);
    if (!recipe) refuseWithoutRecipe(flags);
    const fleet = fleetFlags(recipe, flags);
    const parsed = runFlags(flags);
    const t = await target(ctx, flags);
    // A Compute Engine run killed hard left its record running (and maybe its instance): say so first.
    if (!flags.dryRun) await sweepLeftBehind(ctx, resolve(ctx.cwd, flags.runsDir));
    if (fleet && recipe) {
      const { machine, diskType, diskSize, shared } = parsed;
      const { keep: _keep, dryRun: _dryRun, ...rest } = shared;
      return runFleetCommand(
        ctx,
        recipe,
        flags,
        {
          fleet,
          machine,
          diskType,
          ...(diskSize ? { diskSize } : {}),
          shared: rest,
        },
        t,
      );
    }
    const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) || Boolean(flags.json) });
    try {
      const c = common(ctx, t, flags, progress.onProgress);
      if (recipe) await runRecipe(ctx, recipe, flags, parsed, c, () => progress.done());
      else await runImage(ctx, flags, parsed, c, () => progress.done());
    } finally {
      await progress.done();
    }
  });
}
