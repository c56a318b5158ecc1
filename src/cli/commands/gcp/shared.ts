/** What the four `uniprove gcp` verbs share: project and zone, the common flags, dry-run printing, flag checks. */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type GcpTarget,
  gcloudActiveConfiguration,
  gcloudConfigDir,
  parseGcloudProperties,
  resolveGcpTarget,
} from '../../../core/cloud/config.js';
import type { GcpCommonOptions, GcpDryRunResult } from '../../../core/cloud/context.js';
import { DISK_TYPES, type GcpDiskType } from '../../../core/cloud/plan.js';
import { parseDuration } from '../../../core/duration.js';
import { UniproveError } from '../../../core/errors.js';
import type { GcpRecipeSource } from '../../../core/image/gce-build.js';
import { memoryMb } from '../../../core/image/gce-build.js';
import { opsHomeDir } from '../../../core/ops/build.js';
import { type CliContext, cacheDirFrom } from '../../context.js';
import { printJson, printLines } from '../../render.js';
import { recipeLoadOptions } from '../shared.js';

export interface CommonFlags {
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
export async function target(ctx: CliContext, flags: CommonFlags): Promise<GcpTarget> {
  const dir = gcloudConfigDir(ctx.env, homedir());
  const active = gcloudActiveConfiguration(ctx.env, await readText(join(dir, 'active_config')));
  const text = await readText(join(dir, 'configurations', `config_${active}`));
  return resolveGcpTarget({
    flags: { project: flags.project, zone: flags.zone },
    env: ctx.env,
    gcloud: text ? { configuration: active, ...parseGcloudProperties(text) } : undefined,
  });
}

export function common(
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
    poll: pollOf(ctx, flags),
  } satisfies GcpCommonOptions;
}

/**
 * UNIPROVE_GCP_POLL_MS: poll operations (and a fleet's consoles, and its back-off) from this many ms instead of
 * Compute Engine's pace (1 s, consoles every 2 s): for an emulator or the local test server.
 */
export function fastPollMs(ctx: CliContext): number | undefined {
  const ms = Number(ctx.env.UNIPROVE_GCP_POLL_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

function pollOf(ctx: CliContext, flags: CommonFlags): GcpCommonOptions['poll'] {
  const fast = fastPollMs(ctx);
  if (!flags.opTimeout && !fast) return undefined;
  return {
    ...(flags.opTimeout ? { timeoutMs: parseDuration(flags.opTimeout, '--op-timeout') } : {}),
    ...(fast ? { initialMs: fast, maxMs: fast * 5, retry: { initialMs: fast, maxMs: fast * 5 } } : {}),
  };
}

export function withCommon(cmd: Command): Command {
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

export function printDryRun(ctx: CliContext, result: GcpDryRunResult, json: boolean) {
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

export function parseGpu(text: string | undefined): { type: string; count: number } | undefined {
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

export function parseDiskType(text: string, flag: string): GcpDiskType {
  if (!(DISK_TYPES as readonly string[]).includes(text)) {
    throw new UniproveError('E_USAGE', {
      message: `${flag} ${text} is not one of ${DISK_TYPES.join(', ')}`,
      hint: 'pd-balanced suits most runs; pd-ssd or hyperdisk-balanced read parameters faster.',
    });
  }
  return text as GcpDiskType;
}

export function positiveNumber(text: string | undefined, flag: string): number | undefined {
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

export interface RecipeFlags {
  binary?: string;
  arg?: string[];
  env?: string[];
  memory?: string;
  cpus?: number | 'all';
  packageOut?: string;
  nanosVersion?: string;
}

/** The recipe, the overrides and the tools that build its image, from the flags. */
export function recipeSource(ctx: CliContext, recipe: string, flags: RecipeFlags): GcpRecipeSource {
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
export function noRecipeFlags(flags: RecipeFlags, input: string): void {
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
