/** `uniprove gcp image|run|ls|gc`: Compute Engine images, runs, and cleanup of what uniprove made. */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { UniproveError } from '../../core/errors.js';
import {
  type GcpCommonOptions,
  type GcpDryRunResult,
  gcpGc,
  gcpImage,
  gcpList,
  gcpRun,
  parseDuration,
} from '../../core/gcp/commands.js';
import {
  type GcpTarget,
  gcloudActiveConfiguration,
  gcloudConfigDir,
  parseGcloudProperties,
  resolveGcpTarget,
} from '../../core/gcp/config.js';
import { DISK_TYPES, type GcpDiskType } from '../../core/gcp/plan.js';
import type { CliContext } from '../context.js';
import { createProgress } from '../progress.js';
import { printJson, printLines } from '../render.js';

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
    poll: flags.opTimeout ? { timeoutMs: parseDuration(flags.opTimeout) } : undefined,
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

  $ uniprove gcp image --image-file disk.raw --name benchy          upload once, reused by digest
  $ uniprove gcp run --image-file disk.raw --machine-type n2-standard-8 --spot --dry-run
  $ uniprove gcp run --image uniprove-img-benchy-0123456789ab --cpus 8 --memory 32
  $ uniprove gcp ls                                                 what is left in the project?
  $ uniprove gcp gc --older-than 1d                                 delete leftovers`,
    );

  withCommon(
    gcp
      .command('image')
      .description(
        "Import a raw disk as a Compute Engine image: pack it as disk.raw in a gzip'd tar (sparse-aware with GNU tar), upload it (resumable), images.insert, wait. An image with the same content digest is reused.",
      )
      .requiredOption('--image-file <path>', 'the raw disk image (as ops builds it)')
      .option('--name <name>', 'a name for the image (default: the file name)')
      .option('--dry-run', 'print the API calls, make none'),
  ).action(async (flags: CommonFlags & { imageFile: string; name?: string; dryRun?: boolean }) => {
    const t = await target(ctx, flags);
    const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) });
    try {
      const result = await gcpImage({
        ...common(ctx, t, flags, progress.onProgress),
        disk: { rawPath: resolve(ctx.cwd, flags.imageFile), name: flags.name },
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
  });

  withCommon(
    gcp
      .command('run')
      .description(
        'Start an instance from an image (and an optional parameter volume attached at creation), stream its serial console, wait for the prover to end, then delete the instance and what it made unless --keep.',
      )
      .option('--image <name>', 'an existing image (from `uniprove gcp image`)')
      .option('--image-file <path>', 'a raw disk to import first (reused by digest)')
      .option('--volume-file <path>', 'a raw parameter volume, made into a disk (reused by digest)')
      .option('--machine-type <type>', 'a predefined machine type, e.g. n2-standard-8')
      .option('--cpus <n>', 'vCPUs of a custom machine type (with --memory)')
      .option('--memory <gb>', 'memory in GB of a custom machine type (with --cpus)')
      .option('--family <family>', 'machine family of a custom type', 'n2')
      .option('--spot', 'a Spot instance: much cheaper, may be preempted')
      .option(
        '--gpu <type[:count]>',
        'attach GPUs, e.g. nvidia-l4:1 (the instance stops on host maintenance)',
      )
      .addOption(
        new Option('--disk-type <type>', 'volume disk type').choices([...DISK_TYPES]).default('pd-balanced'),
      )
      .option('--disk-size <gb>', 'volume disk size in GB', '10')
      .addOption(
        new Option('--boot-disk-type <type>', 'boot disk type')
          .choices([...DISK_TYPES])
          .default('pd-balanced'),
      )
      .option('--network <name>', 'VPC network', 'default')
      .option('--label <key=value...>', 'extra labels on the instance')
      .option('--keep', 'keep the instance and the disks it made (print what was kept)')
      .option('--timeout <duration>', 'longest the prover may run, e.g. 90m, 6h', '6h')
      .option('--console-file <path>', 'append the serial console here')
      .option('--dry-run', 'print the API calls, make none (needs no credentials)'),
  ).action(
    async (
      flags: CommonFlags & {
        image?: string;
        imageFile?: string;
        volumeFile?: string;
        machineType?: string;
        cpus?: string;
        memory?: string;
        family: string;
        spot?: boolean;
        gpu?: string;
        diskType: string;
        diskSize: string;
        bootDiskType: string;
        network: string;
        label?: string[];
        keep?: boolean;
        timeout: string;
        consoleFile?: string;
        dryRun?: boolean;
      },
    ) => {
      if (Boolean(flags.image) === Boolean(flags.imageFile)) {
        throw new UniproveError('E_USAGE', {
          message: 'give exactly one of --image NAME and --image-file PATH',
          hint: '--image runs an image already imported; --image-file imports a raw disk first.',
        });
      }
      const t = await target(ctx, flags);
      const labels = Object.fromEntries(
        (flags.label ?? []).map((kv) => {
          const i = kv.indexOf('=');
          return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
        }),
      );
      const progress = createProgress(ctx.out, { quiet: Boolean(flags.dryRun) });
      try {
        const result = await gcpRun({
          ...common(ctx, t, flags, progress.onProgress),
          image: flags.image ? { existing: flags.image } : { rawPath: resolve(ctx.cwd, flags.imageFile!) },
          ...(flags.volumeFile
            ? {
                volume: {
                  rawPath: resolve(ctx.cwd, flags.volumeFile),
                  diskType: parseDiskType(flags.diskType, '--disk-type'),
                  sizeGb: positiveNumber(flags.diskSize, '--disk-size'),
                },
              }
            : {}),
          machine: {
            machineType: flags.machineType,
            cpus: positiveNumber(flags.cpus, '--cpus'),
            memoryGb: positiveNumber(flags.memory, '--memory'),
            family: flags.family,
            spot: Boolean(flags.spot),
            gpu: parseGpu(flags.gpu),
          },
          bootDisk: { type: parseDiskType(flags.bootDiskType, '--boot-disk-type') },
          network: flags.network,
          labels,
          bucket: flags.bucket,
          keep: Boolean(flags.keep),
          timeoutMs: parseDuration(flags.timeout),
          consolePath: flags.consoleFile ? resolve(ctx.cwd, flags.consoleFile) : undefined,
          dryRun: Boolean(flags.dryRun),
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
        olderThanMs: flags.olderThan ? parseDuration(flags.olderThan) : undefined,
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
