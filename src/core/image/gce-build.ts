/**
 * From a recipe (or a package folder) to a raw disk for Compute Engine: resolve and check it with no side effect
 * (resolveGcpRecipe: a dry run or a bad flag leaves no package, no image and no VM), size the machine, then
 * package, find or build the volume and `ops build` with the package's gcloud.json, keyed by its inputs.
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type CloudOpsSpec, withCloudOps } from '../cloud/cloud-ops.js';
import type { GcpCommonOptions } from '../cloud/context.js';
import type { GcpMachineSpec } from '../cloud/plan.js';
import { UniproveError } from '../errors.js';
import { sha256File, sha256Of } from '../hash.js';
import { opsConfigText, withVcpus } from '../manifest/build.js';
import type { OpsConfig } from '../manifest/schema.js';
import { type NanosRelease, opsBuild, removeImage, requireOpsAndNanos } from '../ops/build.js';
import { isPackageDir, readPackageConfig, readPackageLock, readPackageLockText } from '../package/layout.js';
import {
  type PreparedTarget,
  type PrepareTargetOptions,
  prepareTarget,
  resolveRunConfig,
} from '../package/target.js';
import { noProgress } from '../progress.js';
import { type LoadRecipeOptions, loadRecipe, type ResolvedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import { loadParameterSet, volumeNameFor } from '../volume/build.js';
import { BUILTIN_SETS_DIR } from '../volume/spec.js';
import { refuseFilesFromOutside } from './contents.js';

/** Where a recipe image comes from, and the tools that build it. */
export interface GcpRecipeSource extends LoadRecipeOptions {
  /** A recipe (name, folder, recipe.json) or a package folder made by `uniprove package`. */
  recipe: string;
  /** Where a recipe is packaged (default <cwd>/build/<name>). */
  packageOut?: string;
  /** uniprove's cache (parameter files, volume registry). */
  cacheDir: string;
  /** Ops's home (~/.ops). */
  opsHome: string;
  /** Environment for ops (HOME, OPS_HOME, PATH). */
  env?: Record<string, string | undefined>;
  ops?: string;
  nanosVersion?: string;
  /** Parameter sets folder (default uniprove's volumes/). */
  setsDir?: string;
  /** Replace the prover's arguments (a package folder; a recipe takes them through overrides). */
  args?: string[];
  /** The image's root file system size (Ops BaseVolumeSz); default the package plus 64 MiB. */
  imageSize?: string;
  /** Cloud Logging / Monitoring from the guest (the gcp klib configured; the instance's service account). */
  cloudOps?: CloudOpsSpec;
}

/** What a recipe or package resolves to before anything is built. */
export interface GcpRecipePlan {
  name: string;
  kind: 'recipe' | 'package';
  /** The package folder when the target is one. */
  packageDir?: string;
  recipe?: ResolvedRecipe;
  proof: Recipe['proof'];
  /** The volume gcp run attaches (at most one: one disk). */
  volume?: { set?: string; label: string };
  resources: { cpus: number; memory: string };
}

function tooManyVolumes(name: string, labels: string[]): UniproveError {
  return new UniproveError('E_USAGE', {
    message: `${name} mounts ${labels.length} volumes (${labels.join(', ')}), but gcp run attaches one disk`,
    hint: 'Put the parameter files in one parameter set (one volume), or run it locally with `uniprove run`.',
    details: { volumes: labels },
  });
}

/** Load and check a recipe or package for Compute Engine; reads files, writes nothing, runs nothing. */
export async function resolveGcpRecipe(source: GcpRecipeSource): Promise<GcpRecipePlan> {
  const cwd = source.cwd ?? process.cwd();
  const asDir = resolve(cwd, source.recipe);
  if (await isPackageDir(asDir, 'gcloud')) {
    const lock = await readPackageLock(asDir);
    const gcloud = await readPackageConfig(asDir, lock, 'gcloud');
    const local = await readPackageConfig(asDir, lock, 'local').catch(() => undefined);
    const labels = Object.keys(gcloud.Mounts ?? {});
    const name = lock.name ?? basename(asDir);
    if (labels.length > 1) throw tooManyVolumes(`package ${asDir}`, labels);
    const run = local?.RunConfig ?? gcloud.RunConfig;
    return {
      name,
      kind: 'package',
      packageDir: asDir,
      proof: lock.proof ?? { kind: 'none' },
      ...(labels[0] ? { volume: { label: labels[0] } } : {}),
      resources: { cpus: run?.CPUs ?? 2, memory: run?.Memory ?? '2G' },
    };
  }
  const recipe = await loadRecipe(source.recipe, loadOptionsOf(source));
  if (recipe.volumes.length > 1) {
    throw tooManyVolumes(
      `recipe ${recipe.name}`,
      recipe.volumes.map((v) => v.set),
    );
  }
  let volume: GcpRecipePlan['volume'];
  const v = recipe.volumes[0];
  if (v) {
    const set = await loadParameterSet(v.set, {
      setsDir: source.setsDir ?? BUILTIN_SETS_DIR,
      cwd: recipe.baseDir,
    });
    volume = { set: v.set, label: volumeNameFor(set) };
  }
  return {
    name: recipe.name,
    kind: 'recipe',
    recipe,
    proof: recipe.proof,
    ...(volume ? { volume } : {}),
    resources: { cpus: recipe.resources.cpus, memory: recipe.resources.memory },
  };
}

/** Memory text (512M, 4G; a bare number is GB) in MB. */
export function memoryMb(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([MG]?)B?$/i.exec(text.trim());
  if (!m) {
    throw new UniproveError('E_USAGE', {
      message: `memory ${JSON.stringify(text)} is not a size`,
      hint: 'Write it like 4G or 512M (a bare number means GB).',
    });
  }
  const n = Number(m[1]);
  return Math.round(m[2]?.toUpperCase() === 'M' ? n : n * 1024);
}

/**
 * A custom machine type Compute Engine accepts for the recipe's CPUs and
 * memory: families other than n1 take an even number of vCPUs (2 at least) and
 * 0.5 GB per vCPU at least, in steps of 256 MB. Says what it changed.
 */
export function fitCustomMachine(
  resources: { cpus: number; memory: string },
  family = 'n2',
): { cpus: number; memoryGb: number; adjusted?: string } {
  let cpus = resources.cpus;
  let mb = memoryMb(resources.memory);
  const asked = `${cpus} vCPU, ${mb} MB`;
  if (family !== 'n1') cpus = Math.max(2, cpus + (cpus % 2));
  mb = Math.max(mb, 512 * cpus);
  mb = Math.ceil(mb / 256) * 256;
  const got = `${cpus} vCPU, ${mb} MB`;
  return { cpus, memoryGb: mb / 1024, ...(asked !== got ? { adjusted: `${asked} -> ${got}` } : {}) };
}

/** A raw boot image built from a recipe, its build key and its volume's raw file. */
export interface GcpBuiltImage {
  name: string;
  packageDir: string;
  /** The raw disk ops wrote (~/.ops/images/NAME); removed by `release`. */
  rawPath: string;
  /** sha256 of everything the image is built from (Ops images differ byte for byte between builds). */
  buildKey: string;
  imageBuildMs: number;
  nanosVersion: string;
  config: OpsConfig;
  manifest: string;
  volume?: { label: string; path: string; guestPath: string; readOnly: boolean };
  release: () => Promise<void>;
}

function loadOptionsOf(source: GcpRecipeSource): LoadRecipeOptions {
  return {
    ...(source.cwd ? { cwd: source.cwd } : {}),
    ...(source.pathEnv ? { pathEnv: source.pathEnv } : {}),
    ...(source.proversDirs ? { proversDirs: source.proversDirs } : {}),
    ...(source.overrides ? { overrides: source.overrides } : {}),
  };
}

async function fileDigest(path: string): Promise<string> {
  return sha256File(path).catch(() => 'absent');
}

/** Where and how an image is built. */
export interface GcpBuildOptions {
  configDir: string;
  signal?: AbortSignal;
  onProgress?: GcpCommonOptions['onProgress'];
  /** Change the config before the build (a file proof's console route: proof/index.ts). */
  stage?: (config: OpsConfig, programPath: string) => Promise<OpsConfig>;
  /** The program's arguments baked into the image (a fleet's image of one argument list); default the recipe's. */
  args?: string[];
  /** The machine type's vCPUs: the recipe's thread variables are set to it (resources.threadVars). */
  vcpus?: number;
}

/** Package (or take the package), find or build the volume, and `ops build` with the package's gcloud.json. */
export async function buildGcpRecipeImage(
  source: GcpRecipeSource,
  plan: GcpRecipePlan,
  options: GcpBuildOptions,
): Promise<GcpBuiltImage> {
  const { release } = await requireOpsAndNanos(source);
  const prepared = await prepareTarget(prepareOptionsOf(source, options));
  return buildGcpImage(prepared, release, source, plan, options);
}

/** What preparing the package of a Compute Engine run takes, from its source. */
export function prepareOptionsOf(
  source: GcpRecipeSource,
  options: { signal?: AbortSignal; onProgress?: GcpCommonOptions['onProgress'] },
): PrepareTargetOptions {
  return {
    ...loadOptionsOf(source),
    target: source.recipe,
    cacheDir: source.cacheDir,
    opsHome: source.opsHome,
    ...(source.env ? { env: source.env } : {}),
    ...(source.ops ? { ops: source.ops } : {}),
    ...(source.setsDir ? { setsDir: source.setsDir } : {}),
    ...(source.packageOut ? { packageOut: source.packageOut } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: options.onProgress ?? noProgress,
  };
}

/** `ops build` a prepared package with its gcloud.json, keyed by everything the image is built from. */
export async function buildGcpImage(
  prepared: PreparedTarget,
  release: NanosRelease,
  source: GcpRecipeSource,
  plan: GcpRecipePlan,
  options: GcpBuildOptions,
): Promise<GcpBuiltImage> {
  const onProgress = options.onProgress ?? noProgress;
  const { lock, text: lockText } = await readPackageLockText(prepared.packageDir);
  const gcloud = await readPackageConfig(prepared.packageDir, lock, 'gcloud');
  const bytes = prepared.bytes;
  // via ops: no debug_exit (QEMU's exit device; Compute Engine has none), RebootOnExit off.
  const resolved = resolveRunConfig(gcloud, {
    packageDir: prepared.packageDir,
    imageSize: source.imageSize ?? gcloud.BaseVolumeSz ?? `${Math.ceil(bytes / 2 ** 20) + 64}m`,
    ...(options.args
      ? { args: options.args }
      : source.args && plan.kind === 'package'
        ? { args: source.args }
        : {}),
    via: 'ops',
  });
  const programPath = join(prepared.packageDir, resolved.config.Program ?? '');
  // The guest gets every vCPU of its machine type: the recipe's thread variables follow that count.
  const sized =
    options.vcpus && prepared.threadVars.length > 0
      ? withVcpus(resolved.config, options.vcpus, prepared.threadVars)
      : resolved.config;
  const observed = withCloudOps(sized, source.cloudOps);
  const config = options.stage ? await options.stage(observed, programPath) : observed;
  const configPath = join(options.configDir, 'gcloud-build.json');
  await mkdir(options.configDir, { recursive: true });
  await writeFile(configPath, opsConfigText(config, options.configDir));
  const klibs = Object.fromEntries(
    await Promise.all(
      (config.Klibs ?? []).map(async (k) => [k, await fileDigest(join(release.dir, 'klibs', k))]),
    ),
  );
  const buildKey = sha256Of(
    JSON.stringify({
      lock: sha256Of(lockText),
      config,
      nanos: release.version,
      kernel: await fileDigest(release.kernel),
      boot: await fileDigest(release.boot),
      klibs,
    }),
  );
  const imageName = `uniprove-gcp-${prepared.name.replace(/[^A-Za-z0-9_-]+/g, '-')}-${buildKey.slice(0, 12)}-${process.pid}`;
  onProgress({
    kind: 'step-start',
    step: 'ops build',
    detail: `${config.Program} (Nanos ${release.version})`,
  });
  const built = await opsBuild(
    {
      cwd: prepared.packageDir,
      program: config.Program ?? '',
      config: configPath,
      imageName,
      ...(source.nanosVersion ? { nanosVersion: source.nanosVersion } : {}),
    },
    {
      ...(source.ops ? { ops: source.ops } : {}),
      ...(source.env ? { env: source.env } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    },
  );
  onProgress({ kind: 'step-done', step: 'ops build', detail: built.image });
  try {
    refuseFilesFromOutside(built.manifest, {
      packageDir: prepared.packageDir,
      opsHome: source.opsHome,
      config: config,
    });
  } catch (error) {
    await removeImage(source.opsHome, imageName).catch(() => {});
    throw error;
  }
  return {
    name: prepared.name,
    packageDir: prepared.packageDir,
    rawPath: built.image,
    buildKey,
    imageBuildMs: Math.round(built.durationMs),
    nanosVersion: release.version,
    config,
    manifest: built.manifest,
    ...(prepared.volumes[0] ? { volume: prepared.volumes[0] } : {}),
    release: () => removeImage(source.opsHome, imageName),
  };
}

export const imagePlaceholder = (name: string) => `<sha256 of the image built from recipe ${name}>`;

/** The machine a recipe runs on: the predefined type given, or a custom type fitted to its CPUs and memory. */
export function recipeMachine(
  plan: GcpRecipePlan,
  machine: Omit<GcpMachineSpec, 'cpus' | 'memoryGb'>,
): { spec: GcpMachineSpec; adjusted?: string } {
  if (machine.machineType) return { spec: machine };
  if (plan.recipe?.resources.cpusAll) {
    throw new UniproveError('E_USAGE', {
      message: `recipe ${plan.name} asks for every vCPU ("cpus": "all"), and on Compute Engine those are the machine type's: no machine type was given`,
      hint: "Name one (--machine-type n2-standard-8: its 8 vCPUs, and the recipe's thread variables follow), or give --cpus N for a custom type.",
      details: { field: 'resources.cpus' },
    });
  }
  const fit = fitCustomMachine(plan.resources, machine.family ?? 'n2');
  return {
    spec: { ...machine, cpus: fit.cpus, memoryGb: fit.memoryGb },
    ...(fit.adjusted ? { adjusted: fit.adjusted } : {}),
  };
}
