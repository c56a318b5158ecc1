/** `uniprove gcp image|run|ls|gc`: Compute Engine images, runs, and cleanup of what uniprove made. */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { parseDuration } from '../../core/duration.js';
import { UniproveError } from '../../core/errors.js';
import {
  type GcpCommonOptions,
  type GcpDryRunResult,
  gcpGc,
  gcpImage,
  gcpList,
  gcpRun,
} from '../../core/gcp/commands.js';
import {
  type GcpTarget,
  gcloudActiveConfiguration,
  gcloudConfigDir,
  parseGcloudProperties,
  resolveGcpTarget,
} from '../../core/gcp/config.js';
import { DISK_TYPES, type GcpDiskType } from '../../core/gcp/plan.js';
import { type GcpRecipeSource, gcpImageRecipe, gcpRunRecipe, memoryMb } from '../../core/gcp/recipe.js';
import { opsHomeDir } from '../../core/ops/build.js';
import { type CliContext, cacheDirFrom } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines, printWarnings } from '../render.js';
import { addRecipeOverrides, exitForOutcome, recipeLoadOptions } from './shared.js';

interface CommonFlags {
  project?: string;
  zone?: string;
  bucket?: string;
  json?: boolean;
  opTimeout?: string;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Project and zone from flags, the environment, then gcloud's active configuration. */
async function target(ctx: CliContext, flags: CommonFlags): Promise<GcpTarget> {
  const dir = gcloudConfigDir(ctx.env, homedir());
  const active = gcloudActiveConfiguration(ctx.env, await readText(join(dir, 'active_config')));
  const text = await readText(join(dir, 'configurations', `config_${active}`));
  return resolveGcpTarget({
    flags: { project: flags.project, zone: flags.zone },
    env: ctx.env,
    gcloud: text ? { configuration: active, ...parseGcloudProperties(text) } : undefined,
  });
}

function common(
  ctx: CliContext,
  t: GcpTarget,
  flags: CommonFlags,
  onProgress: GcpCommonOptions['onProgress'],
) {
  return {
    target: t,
    // Point the clients elsewhere (an emulator, a test server); the token as gcloud's own variable names it.
    endpoints: {
      compute: ctx.env.UNIPROVE_GCP_COMPUTE_ENDPOINT || undefined,
      storage: ctx.env.UNIPROVE_GCP_STORAGE_ENDPOINT || undefined,
    },
    accessToken: ctx.env.CLOUDSDK_AUTH_ACCESS_TOKEN || undefined,
    signal: ctx.signal,
    onProgress,
    poll: flags.opTimeout ? { timeoutMs: parseDuration(flags.opTimeout, '--op-timeout') } : undefined,
  } satisfies GcpCommonOptions;
}

function withCommon(cmd: Command): Command {
  return cmd
    .option(
      '--project <id>',
      'Google Cloud project (default: CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT, gcloud config)',
    )
    .option(
      '--zone <zone>',
      'Compute Engine zone, e.g. us-central1-a (default: CLOUDSDK_COMPUTE_ZONE, gcloud config)',
    )
    .option('--bucket <name>', 'staging bucket for image uploads (default: PROJECT-uniprove, made if absent)')
    .option('--op-timeout <duration>', 'longest wait for one operation (image import, instance start)', '30m')
    .option('--json', 'print one JSON object on stdout');
}

function printDryRun(ctx: CliContext, result: GcpDryRunResult, json: boolean) {
  if (json) return printJson(ctx.out, { calls: result.calls });
  printLines(ctx.out, ['Dry run: these calls would be made, in this order (none was made):', '']);
  result.calls.forEach((c, i) => {
    const params = Object.entries(c.params)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    printLines(ctx.out, [
      `${String(i + 1).padStart(2)}. ${c.method} ${params}`,
      `    ${c.purpose}${c.when ? ` (${c.when})` : ''}`,
    ]);
    if (c.body)
      printLines(
        ctx.out,
        JSON.stringify(c.body, null, 2)
          .split('\n')
          .map((l) => `      ${l}`),
      );
  });
}

function parseGpu(text: string | undefined): { type: string; count: number } | undefined {
  if (!text) return undefined;
  const m = /^([a-z0-9-]+)(?::(\d+))?$/.exec(text);
  if (!m) {
    throw new UniproveError('E_USAGE', {
      message: `--gpu ${text} is not TYPE[:COUNT]`,
      hint: 'For example --gpu nvidia-l4:1 (`gcloud compute accelerator-types list` names the types of a zone).',
    });
  }
  return { type: m[1]!, count: Number(m[2] ?? 1) };
}

function parseDiskType(text: string, flag: string): GcpDiskType {
  if (!(DISK_TYPES as readonly string[]).includes(text)) {
    throw new UniproveError('E_USAGE', {
      message: `${flag} ${text} is not one of ${DISK_TYPES.join(', ')}`,
      hint: 'pd-balanced suits most runs; pd-ssd or hyperdisk-balanced read parameters faster.',
    });
  }
  return text as GcpDiskType;
}

function positiveNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UniproveError('E_USAGE', {
      message: `${flag} ${text} is not a positive number`,
      hint: `Give ${flag} a number.`,
    });
  }
  return n;
}

interface RecipeFlags {
  binary?: string;
  arg?: string[];
  env?: string[];
  memory?: string;
  cpus?: number;
  packageOut?: string;
  nanosVersion?: string;
}

/** The recipe, the overrides and the tools that build its image, from the flags. */
function recipeSource(ctx: CliContext, recipe: string, flags: RecipeFlags): GcpRecipeSource {
  // --memory 32 means 32 GB here (as gcp run always took it); recipes want 32768M.
  const memory = flags.memory ? `${memoryMb(flags.memory)}M` : undefined;
  return {
    ...recipeLoadOptions(ctx, { ...flags, ...(memory ? { memory } : {}) }),
    recipe,
    cacheDir: cacheDirFrom(ctx.env),
    opsHome: opsHomeDir(ctx.env),
    env: { ...ctx.env } as Record<string, string | undefined>,
    ...(flags.packageOut ? { packageOut: flags.packageOut } : {}),
    ...(flags.nanosVersion ? { nanosVersion: flags.nanosVersion } : {}),
    ...(flags.arg ? { args: flags.arg } : {}),
  };
}

/** Recipe flags make no sense with a raw disk: say so rather than ignore them. */
function noRecipeFlags(flags: RecipeFlags, input: string): void {
  const given = (
    [
      ['--binary', flags.binary],
      ['--arg', flags.arg],
      ['--env', flags.env],
      ['--package-out', flags.packageOut],
      ['--nanos-version', flags.nanosVersion],
    ] as const
  )
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);
  if (given.length > 0) {
    throw new UniproveError('E_USAGE', {
      message: `${given.join(', ')} change${given.length === 1 ? 's' : ''} a recipe, and ${input} is not one`,
      hint: 'Give a recipe (or package folder) as the argument, or drop those flags.',
    });
  }
}

/** Register `uniprove gcp`. */
export function register(program: Command, ctx: CliContext): void {
  const gcp = program
    .command('gcp')
    .description('Run prover images on Google Compute Engine, from upload to proof, leaving nothing running')
    .addHelpText(
      'after',
      `
Credentials are Application Default Credentials (\`gcloud auth application-default login\`, or
GOOGLE_APPLICATION_CREDENTIALS), or an access token in CLOUDSDK_AUTH_ACCESS_TOKEN. Everything uniprove
creates carries the label uniprove=1: \`uniprove gcp ls\` lists it, \`uniprove gcp gc\` deletes it.
Every command takes --dry-run (image, run: prints each API call with its body, needs no credentials).

  $ uniprove gcp run demo --dry-run                                 the calls a recipe run makes
  $ uniprove gcp run benchy --machine-type n2-standard-16 --spot     package, build, upload, prove
  $ uniprove gcp image demo                                         import a recipe's image, reused
  $ uniprove gcp image --image-file disk.raw --name benchy          upload once, reused by digest
  $ uniprove gcp run --image-file disk.raw --machine-type n2-standard-8 --spot --dry-run
  $ uniprove gcp run --image uniprove-img-benchy-0123456789ab --cpus 8 --memory 32
  $ uniprove gcp ls                                                 what is left in the project?
  $ uniprove gcp gc --older-than 1d                                 delete leftovers`,
    );

  const image = withCommon(
    gcp
      .command('image')
      .argument(
        '[recipe]',
        'a recipe (name, folder or recipe.json) or a package folder made by `uniprove package`',
      )
      .description(
        "Import a prover image into Compute Engine. From a recipe: package it, `ops build` it with the package's gcloud.json, then pack the raw disk as disk.raw in a gzip'd tar (sparse-aware with GNU tar), upload it (resumable), images.insert, wait. An image with the same digest is reused (a recipe image's digest is that of its build inputs: package lock, config, Nanos kernel and klibs).",
      )
      .option('--image-file <path>', 'instead of a recipe: a raw disk image (as ops builds it)')
      .option('--name <name>', 'with --image-file: a name for the image (default: the file name)')
      .option('--package-out <dir>', 'where a recipe is packaged (default build/<name>)')
      .option('--nanos-version <version>', 'pin the Nanos release (a folder in ~/.ops)')
      .option('--dry-run', 'print the API calls, make none; builds nothing, needs no credentials'),
  );
  addRecipeOverrides(image).action(
    async (
      recipe: string | undefined,
      flags: CommonFlags & RecipeFlags & { imageFile?: string; name?: string; dryRun?: boolean },
    ) => {
      if (Boolean(recipe) === Boolean(flags.imageFile)) {
        throw new UniproveError('E_USAGE', {
          message: 'give exactly one of a recipe and --image-file PATH',
          hint: 'A recipe (e.g. `uniprove gcp image demo`) is packaged and built first; --image-file imports a raw disk as it is.',
        });
      }
      if (flags.imageFile) noRecipeFlags(flags, '--image-file');
      const t = await target(ctx, flags);
      const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) || Boolean(flags.json) });
      try {
        const c = common(ctx, t, flags, progress.onProgress);
        const result = recipe
          ? await gcpImageRecipe({
              ...recipeSource(ctx, recipe, flags),
              ...c,
              ...(flags.bucket ? { bucket: flags.bucket } : {}),
              dryRun: Boolean(flags.dryRun),
            })
          : await gcpImage({
              ...c,
              disk: { rawPath: resolve(ctx.cwd, flags.imageFile!), name: flags.name },
              bucket: flags.bucket,
              dryRun: Boolean(flags.dryRun),
            });
        await progress.done();
        if (result.dryRun) return printDryRun(ctx, result, Boolean(flags.json));
        if (flags.json) return printJson(ctx.out, result);
        printLines(ctx.out, [
          `${result.reused ? 'reused' : 'created'} image ${result.image} in project ${result.project}`,
          `  run it: uniprove gcp run --image ${result.image} --machine-type n2-standard-4`,
        ]);
      } finally {
        await progress.done();
      }
    },
  );

  const runCmd = withCommon(
    gcp
      .command('run')
      .argument(
        '[recipe]',
        'a recipe (name, folder or recipe.json) or a package folder made by `uniprove package`',
      )
      .description(
        "Run a prover on a Compute Engine instance. From a recipe: package it, build its image and its parameter volume, import both (reused by digest), start the instance with the volume attached, stream the serial console into runs/<id>/console.log, end at the proof's end marker (or when the instance stops: Nanos powers off at exit), keep the proof with its sha256 in runs/<id>/record.json and a line in runs/proving_report.csv, then delete the instance and what it made unless --keep. --image or --image-file run a raw disk instead.",
      )
      .option('--image <name>', 'instead of a recipe: an existing image (from `uniprove gcp image`)')
      .option('--image-file <path>', 'instead of a recipe: a raw disk to import first (reused by digest)')
      .option('--volume-file <path>', 'with --image/--image-file: a raw parameter volume, made into a disk')
      .option(
        '--machine-type <type>',
        "a predefined machine type, e.g. n2-standard-8 (default: a custom type from --cpus and --memory, or the recipe's resources)",
      )
      .option('--family <family>', 'machine family of a custom type', 'n2')
      .option('--spot', 'a Spot instance: much cheaper, may be preempted')
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
        '--timeout <duration>',
        'longest the prover may run: seconds (600) or with a unit (90s, 15m, 6h)',
        '6h',
      )
      .option('--console-file <path>', 'with --image/--image-file: append the serial console here')
      .option('--runs-dir <dir>', 'with a recipe: where run folders and proving_report.csv go', 'runs')
      .option('--out <dir>', 'with a recipe: the run record folder (default runs/<id>); never the package')
      .option('--package-out <dir>', 'where a recipe is packaged (default build/<name>)')
      .option('--nanos-version <version>', 'pin the Nanos release (a folder in ~/.ops)')
      .option('--dry-run', 'print the API calls, make none: builds nothing, needs no credentials'),
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
  $ uniprove gcp run benchy --machine-type n2-highmem-32 --disk-type pd-ssd`,
  );
  runCmd.action(
    async (
      recipe: string | undefined,
      flags: CommonFlags &
        RecipeFlags & {
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
          timeout: string;
          consoleFile?: string;
          runsDir: string;
          out?: string;
          dryRun?: boolean;
        },
    ) => {
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
      const labels = Object.fromEntries(
        (flags.label ?? []).map((kv) => {
          const i = kv.indexOf('=');
          return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
        }),
      );
      const machine = {
        ...(flags.machineType ? { machineType: flags.machineType } : {}),
        family: flags.family,
        spot: Boolean(flags.spot),
        gpu: parseGpu(flags.gpu),
      };
      const diskType = parseDiskType(flags.diskType, '--disk-type');
      const diskSize = positiveNumber(flags.diskSize, '--disk-size');
      const timeoutMs = parseDuration(flags.timeout, '--timeout');
      // Flags are checked before credentials: a bad --timeout is a usage error wherever it runs.
      const t = await target(ctx, flags);
      const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) || Boolean(flags.json) });
      try {
        const c = common(ctx, t, flags, progress.onProgress);
        const shared = {
          bootDisk: { type: parseDiskType(flags.bootDiskType, '--boot-disk-type') },
          network: flags.network,
          labels,
          ...(flags.bucket ? { bucket: flags.bucket } : {}),
          keep: Boolean(flags.keep),
          timeoutMs,
          dryRun: Boolean(flags.dryRun),
        };
        if (recipe) {
          const result = await gcpRunRecipe({
            ...recipeSource(ctx, recipe, flags),
            ...c,
            ...shared,
            machine,
            volumeDisk: { diskType, ...(diskSize ? { sizeGb: diskSize } : {}) },
            runsDir: resolve(ctx.cwd, flags.runsDir),
            ...(flags.out ? { out: resolve(ctx.cwd, flags.out) } : {}),
          });
          await progress.done();
          if (result.dryRun) return printDryRun(ctx, result, Boolean(flags.json));
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
          consolePath: flags.consoleFile ? resolve(ctx.cwd, flags.consoleFile) : undefined,
        });
        await progress.done();
        if (result.dryRun) return printDryRun(ctx, result, Boolean(flags.json));
        if (flags.json) return printJson(ctx.out, result);
        printLines(ctx.out, [
          `run ${result.runId} on ${result.instance} (${result.zone}) ended: ${result.ended === 'marker' ? 'the prover finished' : 'the instance stopped'}`,
          `  console: ${result.consoleLines} lines${result.consolePath ? ` in ${result.consolePath}` : ''}`,
          ...result.kept.map((k) => `  kept ${k.kind} ${k.name}`),
        ]);
      } finally {
        await progress.done();
      }
    },
  );

  withCommon(
    gcp
      .command('ls')
      .description('List what uniprove created in the project (label uniprove=1), in every zone'),
  ).action(async (flags: CommonFlags) => {
    const t = await target(ctx, flags);
    const result = await gcpList({ ...common(ctx, t, flags, undefined), bucket: flags.bucket });
    if (flags.json) return printJson(ctx.out, result);
    if (result.resources.length === 0)
      return printLines(ctx.out, [`nothing made by uniprove in ${result.project}`]);
    printLines(
      ctx.out,
      result.resources.map(
        (r) =>
          `${r.kind.padEnd(9)} ${r.name}${r.zone ? `  ${r.zone}` : ''}${r.bucket ? `  gs://${r.bucket}` : ''}${r.status ? `  ${r.status}` : ''}${r.created ? `  ${r.created}` : ''}`,
      ),
    );
  });

  withCommon(
    gcp
      .command('gc')
      .description(
        'Delete what uniprove left behind: instances first, then disks, images and staging objects',
      )
      .option('--older-than <duration>', 'only what was created longer ago, e.g. 2h, 7d')
      .option('--run <id>', 'only what belongs to this run id')
      .option('--dry-run', 'list what would be deleted, delete nothing'),
  ).action(async (flags: CommonFlags & { olderThan?: string; run?: string; dryRun?: boolean }) => {
    const t = await target(ctx, flags);
    const progress = createProgress(ctx.out);
    try {
      const result = await gcpGc({
        ...common(ctx, t, flags, progress.onProgress),
        bucket: flags.bucket,
        olderThanMs: flags.olderThan ? parseDuration(flags.olderThan, '--older-than') : undefined,
        runId: flags.run,
        dryRun: Boolean(flags.dryRun),
      });
      await progress.done();
      if (flags.json) printJson(ctx.out, result);
      else {
        const verb = result.dryRun ? 'would delete' : 'deleted';
        printLines(
          ctx.out,
          [
            ...result.deleted.map((r) => `${verb} ${r.kind} ${r.name}`),
            ...result.failed.map(
              (f) => `FAILED to delete ${f.resource.kind} ${f.resource.name}: ${f.message}`,
            ),
            result.deleted.length === 0 && result.failed.length === 0 ? 'nothing to delete' : '',
          ].filter(Boolean),
        );
      }
      if (result.failed.length > 0) {
        throw new UniproveError('E_GCP', {
          message: `${result.failed.length} resource(s) could not be deleted`,
          hint: 'Read the reasons above; a disk still attached goes once its instance is deleted: run gc again.',
        });
      }
    } finally {
      await progress.done();
    }
  });
}
