/**
 * `gcp image <recipe>` and `gcp run <recipe>`: package the recipe (or take a
 * package folder), build the raw image with `ops build` from the package's
 * gcloud.json, build or reuse its parameter volume, then hand the raw files to
 * gcpImage / gcpRun, and keep the same run record a local run keeps.
 *
 * Everything is validated first (resolveGcpRecipe: no side effects), so a dry
 * run or a bad flag leaves no package, no image and no VM.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { isUniproveError, UniproveError } from '../errors.js';
import { sha256File, toWriteError, type WriteContext, withWriteErrors } from '../fs.js';
import { CONSOLE_LOG } from '../machine/qemu.js';
import { opsBuild, removeImage, requireOpsAndNanos } from '../ops/build.js';
import type { OpsConfig } from '../ops/config/schema.js';
import { isPackageDir, LOCK_FILE, readPackageConfig, readPackageLock } from '../package/layout.js';
import type { PackageLock } from '../package/stage.js';
import { noProgress } from '../progress.js';
import { gceFileProof } from '../proof/index.js';
import { type LoadRecipeOptions, loadRecipe, type ResolvedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import { extractConsoleBlocks, prepareTarget, resolveRunConfig } from '../run/index.js';
import { finishRecord, type RunOutcome, type RunRecord, writeRecord } from '../run/record.js';
import { loadParameterSet, volumeNameFor } from '../volume/build.js';
import { BUILTIN_SETS_DIR } from '../volume/spec.js';
import { createGcpClients, type GcpClients } from './clients.js';
import {
  type GcpCommonOptions,
  type GcpDryRunResult,
  type GcpImageResult,
  type GcpRunOptions,
  type GcpRunResult,
  gcpImage,
  gcpRun,
} from './commands.js';
import { newRunId } from './names.js';
import { type GcpDiskType, type GcpMachineSpec, machineTypeFor } from './plan.js';

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

/**
 * Make the clients and check the credentials before anything is packaged or
 * built: a missing login should not cost a build first.
 */
async function withCheckedClients<T>(
  options: GcpCommonOptions,
  use: (common: GcpCommonOptions) => Promise<T>,
): Promise<T> {
  if (options.clients) return use(commonOf(options));
  const clients: GcpClients = await createGcpClients({
    project: options.target.project,
    ...(options.endpoints ? { endpoints: options.endpoints } : {}),
    ...(options.accessToken ? { accessToken: options.accessToken } : {}),
  });
  try {
    await clients.checkAuth();
    return await use({ ...commonOf(options), clients });
  } finally {
    await clients.close();
  }
}

/** The options every GCP command takes, picked out of a larger options object. */
function commonOf(o: GcpCommonOptions): GcpCommonOptions {
  return {
    target: o.target,
    ...(o.endpoints ? { endpoints: o.endpoints } : {}),
    ...(o.accessToken ? { accessToken: o.accessToken } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.poll ? { poll: o.poll } : {}),
    ...(o.clients ? { clients: o.clients } : {}),
  };
}

async function fileDigest(path: string): Promise<string> {
  return sha256File(path).catch(() => 'absent');
}

/** Package (or take the package), find or build the volume, and `ops build` with the package's gcloud.json. */
export async function buildGcpRecipeImage(
  source: GcpRecipeSource,
  plan: GcpRecipePlan,
  options: {
    configDir: string;
    signal?: AbortSignal;
    onProgress?: GcpCommonOptions['onProgress'];
    /** Change the config before the build (a file proof's console route: proof/index.ts gceFileProof). */
    stage?: (config: OpsConfig, programPath: string) => Promise<OpsConfig>;
  },
): Promise<GcpBuiltImage> {
  const onProgress = options.onProgress ?? noProgress;
  const { release } = await requireOpsAndNanos(source);
  const prepared = await prepareTarget({
    ...loadOptionsOf(source),
    target: source.recipe,
    cacheDir: source.cacheDir,
    opsHome: source.opsHome,
    ...(source.env ? { env: source.env } : {}),
    ...(source.ops ? { ops: source.ops } : {}),
    ...(source.setsDir ? { setsDir: source.setsDir } : {}),
    ...(source.packageOut ? { packageOut: source.packageOut } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress,
  });
  const lockText = await readFile(join(prepared.packageDir, LOCK_FILE), 'utf8');
  const gcloud = await readPackageConfig(prepared.packageDir, JSON.parse(lockText) as PackageLock, 'gcloud');
  const bytes = prepared.bytes;
  // via ops: no debug_exit (QEMU's exit device; Compute Engine has none), RebootOnExit off.
  let { config } = resolveRunConfig(gcloud, {
    imageSize: source.imageSize ?? gcloud.BaseVolumeSz ?? `${Math.ceil(bytes / 2 ** 20) + 64}m`,
    ...(source.args && plan.kind === 'package' ? { args: source.args } : {}),
    via: 'ops',
  });
  if (options.stage) config = await options.stage(config, join(prepared.packageDir, config.Program ?? ''));
  const configPath = join(options.configDir, 'gcloud-build.json');
  await mkdir(options.configDir, { recursive: true });
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const klibs = Object.fromEntries(
    await Promise.all(
      (config.Klibs ?? []).map(async (k) => [k, await fileDigest(join(release.dir, 'klibs', k))]),
    ),
  );
  const buildKey = createHash('sha256')
    .update(
      JSON.stringify({
        lock: createHash('sha256').update(lockText).digest('hex'),
        config,
        nanos: release.version,
        kernel: await fileDigest(release.kernel),
        boot: await fileDigest(release.boot),
        klibs,
      }),
    )
    .digest('hex');
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

const imagePlaceholder = (name: string) => `<sha256 of the image built from recipe ${name}>`;

/** Options of `gcp image <recipe>`. */
export interface GcpImageRecipeOptions extends GcpCommonOptions, GcpRecipeSource {
  bucket?: string;
  dryRun?: boolean;
}

/** The image result, with the package it came from. */
export interface GcpImageRecipeResult extends GcpImageResult {
  recipe: string;
  package: string;
  buildKey: string;
}

/** Package a recipe, build its image and import it into Compute Engine (reused when its build key matches). */
export async function gcpImageRecipe(
  options: GcpImageRecipeOptions,
): Promise<GcpImageRecipeResult | GcpDryRunResult> {
  const plan = await resolveGcpRecipe(options);
  const wouldBe = join(options.opsHome, 'images', `uniprove-gcp-${plan.name}`);
  if (options.dryRun) {
    return gcpImage({
      ...commonOf(options),
      ...(options.bucket ? { bucket: options.bucket } : {}),
      disk: { rawPath: wouldBe, name: plan.name, dryRunDigest: imagePlaceholder(plan.name) },
      dryRun: true,
    });
  }
  return withCheckedClients(options, (common) => imageWith(options, plan, common));
}

async function imageWith(
  options: GcpImageRecipeOptions,
  plan: GcpRecipePlan,
  common: GcpCommonOptions,
): Promise<GcpImageRecipeResult> {
  // The tarball is packed here: uniprove's cache, a disk with room, not a small /tmp.
  await mkdir(join(options.cacheDir, 'gcp'), { recursive: true });
  const workDir = await mkdtemp(join(options.cacheDir, 'gcp', 'image-'));
  let built: GcpBuiltImage | undefined;
  try {
    built = await buildGcpRecipeImage(options, plan, {
      configDir: workDir,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const result = (await gcpImage({
      ...common,
      ...(options.bucket ? { bucket: options.bucket } : {}),
      disk: { rawPath: built.rawPath, name: plan.name, sha256: built.buildKey },
      workDir,
      dryRun: false,
    })) as GcpImageResult;
    return { ...result, recipe: plan.name, package: built.packageDir, buildKey: built.buildKey };
  } finally {
    await built?.release().catch(() => {});
    await rm(workDir, { recursive: true, force: true });
  }
}

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

/** The machine a recipe runs on: the predefined type given, or a custom type fitted to its CPUs and memory. */
export function recipeMachine(
  plan: GcpRecipePlan,
  machine: GcpRunRecipeOptions['machine'],
): { spec: GcpMachineSpec; adjusted?: string } {
  if (machine.machineType) return { spec: machine };
  const fit = fitCustomMachine(plan.resources, machine.family ?? 'n2');
  return {
    spec: { ...machine, cpus: fit.cpus, memoryGb: fit.memoryGb },
    ...(fit.adjusted ? { adjusted: fit.adjusted } : {}),
  };
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
  gceFileProof(plan.proof, { cacheDir: options.cacheDir, timeoutMs: options.timeoutMs, recordDir: '' });
  const { spec: machine, adjusted } = recipeMachine(plan, options.machine);
  // A machine that cannot be named fails here, before anything is built.
  const machineType = machineTypeFor(options.target, machine).replace(/^.*\//, '');
  const diskType = options.volumeDisk?.diskType ?? 'pd-balanced';
  const base = runOptionsOf(options, machine);
  if (options.dryRun) {
    return gcpRun({
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

  return withCheckedClients(options, (common) =>
    runWith(options, plan, { ...base, ...common }, { machineType, diskType, adjusted }),
  );
}

async function runWith(
  options: GcpRunRecipeOptions,
  plan: GcpRecipePlan,
  base: Omit<GcpRunOptions, 'image' | 'volume' | 'runId'>,
  m: { machineType: string; diskType: GcpDiskType; adjusted: string | undefined },
): Promise<GcpRunRecipeResult> {
  const { machineType, diskType, adjusted } = m;
  const cwd = options.cwd ?? process.cwd();
  const runsDir = resolve(cwd, options.runsDir ?? 'runs');
  const id = newRunId();
  const dir = options.out ? resolve(cwd, options.out) : join(runsDir, id);
  const started = performance.now();
  const writing: WriteContext = {
    what: 'the run record',
    path: dir,
    elsewhere: 'run from a folder you can write on a disk with room (runs/ is made in the current folder)',
  };
  await withWriteErrors(writing, () => mkdir(dir, { recursive: true }));
  const record: RunRecord = {
    id,
    dir,
    prover: plan.name,
    args: options.overrides?.args ?? options.args ?? plan.recipe?.args ?? [],
    via: 'gce',
    outcome: 'running',
    exitCode: null,
    startedAt: new Date().toISOString(),
    timings: {},
    ...(options.timeoutMs ? { timeoutSeconds: options.timeoutMs / 1000 } : {}),
    accel: 'gce',
    accelReason: `Compute Engine ${machineType} in ${options.target.zone}`,
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
  };
  if (adjusted) {
    record.warnings.push({
      code: 'machine-fitted',
      message: `the recipe's resources were rounded up to a custom machine type Compute Engine accepts (${adjusted})`,
    });
  }
  const fileProof = gceFileProof(plan.proof, {
    cacheDir: options.cacheDir,
    timeoutMs: options.timeoutMs,
    recordDir: dir,
    record,
  });
  const finish = (outcome: RunOutcome) =>
    finishRecord(record, outcome, { runsDir, startedAt: started, noReport: options.noReport });
  let built: GcpBuiltImage | undefined;
  let firstLineAt: number | undefined;
  try {
    await writeRecord(record);
    built = await buildGcpRecipeImage(options, plan, {
      configDir: dir,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(fileProof ? { stage: fileProof.stage } : {}),
    });
    record.package = built.packageDir;
    record.args = built.config.Args ?? record.args;
    record.nanosVersion = built.nanosVersion;
    record.timings.imageBuildMs = built.imageBuildMs;
    record.files.config = 'gcloud-build.json';
    await writeFile(join(dir, 'manifest.txt'), `${built.manifest}\n`);
    record.files.manifest = 'manifest.txt';
    record.volumes = built.volume ? [built.volume] : [];
    record.files.console = CONSOLE_LOG;
    const consolePath = join(dir, CONSOLE_LOG);
    await writeFile(consolePath, '');
    await writeRecord(record);

    let volume: GcpRunOptions['volume'];
    if (built.volume) {
      const size = (await stat(built.volume.path)).size;
      const needGb = Math.max(10, Math.ceil(size / 2 ** 30));
      const sizeGb = options.volumeDisk?.sizeGb ?? needGb;
      if (sizeGb * 2 ** 30 < size) {
        throw new UniproveError('E_USAGE', {
          message: `--disk-size ${sizeGb} GB is smaller than the volume ${built.volume.label} (${Math.ceil(size / 2 ** 30)} GB)`,
          hint: `Give --disk-size ${Math.ceil(size / 2 ** 30)} or more, or leave it out.`,
        });
      }
      volume = { rawPath: built.volume.path, name: built.volume.label, diskType, sizeGb };
    }
    const proof = plan.proof;
    const gcpStarted = performance.now();
    const result = (await gcpRun({
      ...base,
      runId: id,
      image: { rawPath: built.rawPath, name: plan.name, sha256: built.buildKey },
      ...(volume ? { volume } : {}),
      consolePath,
      workDir: dir,
      onConsoleLine: (line) => {
        firstLineAt ??= performance.now();
        if (!fileProof?.take(line)) options.onConsoleLine?.(line);
      },
      ...(proof.kind === 'console'
        ? { isEnd: (line: string) => (line.trim() === proof.end ? proof.end : undefined) }
        : fileProof
          ? { isEnd: fileProof.isEnd }
          : {}),
      dryRun: false,
    })) as GcpRunResult;
    const setupEnd = gcpStarted + result.durationMs.setup;
    if (firstLineAt !== undefined) {
      record.timings.firstConsoleLineMs = Math.round(firstLineAt - started);
      record.timings.bootMs = Math.max(0, Math.round(firstLineAt - setupEnd));
      record.timings.proverMs = Math.max(0, result.durationMs.run - record.timings.bootMs);
    }
    record.image = result.image;
    record.gce = {
      project: result.project,
      zone: result.zone,
      instance: result.instance,
      image: result.image,
      machineType,
      ...(result.volumeDisk ? { volumeDisk: result.volumeDisk } : {}),
      ended: result.ended,
      consoleLostBytes: result.consoleLostBytes,
      durationMs: result.durationMs,
      deleted: result.deleted,
      kept: result.kept,
    };
    if (result.consoleLostBytes > 0) {
      record.warnings.push({
        code: 'console-lost',
        message: `${result.consoleLostBytes} console bytes were dropped by the instance before uniprove read them`,
      });
    }
    let outcome = await collectConsoleProofs(record, proof, result.ended);
    if (fileProof) outcome = await fileProof.settle(record);
    await finish(outcome);
    return { dryRun: false, id, dir, outcome, record, gcp: result };
  } catch (caught) {
    const aborted = options.signal?.aborted === true;
    const error = await toWriteError(caught, writing);
    if (isUniproveError(error)) {
      record.error = {
        code: error.code,
        message: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
      };
      (error.details as Record<string, unknown>).runDir = dir;
    } else record.error = { code: 'E_INTERNAL', message: String(error) };
    const code = isUniproveError(error) ? error.code : '';
    await finish(
      aborted || code === 'E_INTERRUPTED' ? 'interrupted' : code === 'E_GCP_TIMEOUT' ? 'timeout' : 'error',
    ).catch(() => {});
    throw error;
  } finally {
    await built?.release().catch(() => {});
  }
}

/**
 * The proofs between the recipe's markers in console.log, each with its
 * sha256. The exit status does not reach uniprove from Compute Engine: a run
 * that printed its proof succeeded; one that stopped without it failed.
 */
async function collectConsoleProofs(
  record: RunRecord,
  proof: Recipe['proof'],
  ended: 'marker' | 'stopped',
): Promise<RunOutcome> {
  record.exitReason =
    ended === 'marker'
      ? `the console printed ${proof.kind === 'console' ? proof.end : 'the end marker'}; Compute Engine does not carry the exit status`
      : 'the instance stopped (Nanos powers off when the program exits); Compute Engine does not carry the exit status';
  if (proof.kind !== 'console') return 'unknown';
  const text = await readFile(join(record.dir, CONSOLE_LOG), 'utf8').catch(() => '');
  const blocks = extractConsoleBlocks(text, proof.begin, proof.end);
  const proofsDir = join(record.dir, 'proofs');
  for (const [i, block] of blocks.entries()) {
    await mkdir(proofsDir, { recursive: true });
    const file = join(proofsDir, blocks.length === 1 ? 'console-proof.txt' : `console-proof-${i + 1}.txt`);
    await writeFile(file, block);
    record.proofs.push({
      path: relative(record.dir, file),
      sha256: createHash('sha256').update(block).digest('hex'),
      bytes: Buffer.byteLength(block),
      source: 'console',
    });
  }
  if (blocks.length === 0) {
    record.warnings.push({
      code: 'proof-missing',
      message: `the console has no proof between ${proof.begin} and ${proof.end}`,
    });
    return 'failed';
  }
  return 'succeeded';
}
