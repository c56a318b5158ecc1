/**
 * The first step of every run, whatever machine runs it: package a recipe (or take a package folder as it is),
 * build or find its parameter volumes, and read the Ops config the run builds its image from.
 */
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { UniproveError } from '../errors.js';
import { withVcpus } from '../manifest/build.js';
import type { OpsConfig } from '../manifest/schema.js';
import { opsVolumeList } from '../ops/volume.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import type { LoadRecipeOptions, ResolvedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import type { RunWarning } from '../record/record.js';
import { isPackageDir, packageBytes, readPackageConfig, readPackageLock } from './layout.js';

/** Debug flags equal to `ops run --trace`, plus the missing-files list and the syscall summary. */
export const TRACE_DEBUG_FLAGS = [
  'trace',
  'debugsyscalls',
  'fault',
  'futex_trace',
  'missing_files',
  'syscall_summary',
];

/** What preparing a run's package takes. */
export interface PrepareTargetOptions extends LoadRecipeOptions {
  /** A recipe (name, folder, recipe.json) or a package folder made by `uniprove package`. */
  target: string;
  /** Where a recipe is packaged (default <cwd>/build/<name>). */
  packageOut?: string;
  /** uniprove's cache (KVM verdict, parameter files). */
  cacheDir: string;
  /** Ops's home (~/.ops); a run's options carry it, preparing reads volumes through `ops` and env. */
  opsHome?: string;
  /** Environment for ops (HOME, OPS_HOME, PATH). */
  env?: Record<string, string | undefined>;
  ops?: string;
  /** Parameter sets folder (default uniprove's volumes/). */
  setsDir?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** A package ready to boot, with what the recipe says about proofs and volumes. */
export interface PreparedTarget {
  name: string;
  packageDir: string;
  config: OpsConfig;
  recipe: ResolvedRecipe | undefined;
  proof: Recipe['proof'];
  /** Mounted volumes: Ops volume name -> its .raw file and guest path. */
  volumes: { label: string; path: string; guestPath: string; readOnly: boolean }[];
  /** The package's file bytes, from its lock. */
  bytes: number;
  /** Environment variables that follow the vCPU count (the recipe's resources.threadVars, kept in the lock). */
  threadVars: string[];
  /** What preparing found and mended (a damaged volume registry, rebuilt): the run's record keeps it. */
  warnings?: RunWarning[];
}

/** Package a recipe (or take a package as it is), and find or build its volumes. */
export async function prepareTarget(options: PrepareTargetOptions): Promise<PreparedTarget> {
  const cwd = options.cwd ?? process.cwd();
  const onProgress = options.onProgress ?? noProgress;
  const asDir = resolve(cwd, options.target);
  let packageDir: string;
  let recipe: ResolvedRecipe | undefined;
  const warnings: RunWarning[] = [];
  // A package runs as it is: its lock says its name and where its proof appears, so no recipe is read
  // (nor the modules that package one).
  if (await isPackageDir(asDir)) {
    packageDir = asDir;
  } else {
    const { loadRecipe } = await import('../recipe/load.js');
    recipe = await loadRecipe(options.target, options);
    // Parameter volumes first: the package mounts them by the names volume build gives them.
    if (recipe.volumes.length > 0) {
      const { ensureVolume } = await import('../volume/build.js');
      const { BUILTIN_SETS_DIR } = await import('../volume/spec.js');
      for (const v of recipe.volumes) {
        onProgress({ kind: 'step-start', step: 'volume', detail: v.set });
        const built = await ensureVolume(v.set, {
          setsDir: options.setsDir ?? BUILTIN_SETS_DIR,
          cacheDir: options.cacheDir,
          cwd: recipe.baseDir,
          ...(v.size ? { size: v.size } : {}),
          ops: { ...(options.ops ? { ops: options.ops } : {}), ...(options.env ? { env: options.env } : {}) },
          ...(options.signal ? { signal: options.signal } : {}),
          onProgress,
        });
        onProgress({
          kind: 'step-done',
          step: 'volume',
          detail: `${built.volume.name}${built.reused ? ' (reused)' : ''}`,
        });
        warnings.push(...built.warnings);
      }
    }
    const { packageRecipe } = await import('./index.js');
    // Only what loading the recipe needs: `options.out` is the run record folder, never the package's.
    const packaged = await packageRecipe({
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.pathEnv ? { pathEnv: options.pathEnv } : {}),
      ...(options.proversDirs ? { proversDirs: options.proversDirs } : {}),
      ...(options.overrides ? { overrides: options.overrides } : {}),
      recipe: options.target,
      ...(options.packageOut ? { out: options.packageOut } : {}),
      ...(options.setsDir ? { setsDir: options.setsDir } : {}),
      cacheDir: options.cacheDir,
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress,
    });
    packageDir = packaged.package;
  }
  const lock = await readPackageLock(packageDir);
  if (!recipe) {
    // A package folder runs as it is on disk: only while its files are still what its lock says.
    const { checkPackageFiles } = await import('./check.js');
    await checkPackageFiles(packageDir, lock, options.signal ? { signal: options.signal } : {});
  }
  const config = await readPackageConfig(packageDir, lock, 'local');
  // A recipe took --env, --memory and --cpus when it was packaged; a package folder takes them here, for this
  // run only (its local.json stays as packaged), as it takes --arg.
  const o = recipe ? {} : (options.overrides ?? {});
  const threadVars = recipe?.resources.threadVars ?? lock.threadVars ?? [];
  if (o.env) config.Env = { ...config.Env, ...o.env };
  if (o.memory) config.RunConfig = { ...config.RunConfig, Memory: o.memory };
  const cpus = o.cpus === 'all' ? availableParallelism() : o.cpus;
  const sized = cpus ? withVcpus(config, cpus, threadVars) : config;
  const volumes: PreparedTarget['volumes'] = [];
  const mounts = Object.entries(config.Mounts ?? {});
  if (mounts.length > 0) {
    const listed = await opsVolumeList({
      ...(options.ops ? { ops: options.ops } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for (const [label, target] of mounts) {
      const found = listed.filter((v) => v.name === label || v.uuid === label);
      if (found.length !== 1 || !found[0]?.location) {
        throw new UniproveError('E_VOLUME_MISSING', {
          message:
            found.length === 0
              ? `volume ${label} (mounted at ${target}) does not exist: \`ops volume list\` has no volume of that name`
              : `volume name ${label} is ambiguous: ${found.length} volumes have it`,
          hint:
            found.length === 0
              ? `Build it with \`uniprove volume build <set>\`, or create it with \`ops volume create ${label} -d DIR\`. Without it Ops would quietly boot with an empty ${target}.`
              : 'Delete the extra volumes (`ops volume delete UUID`) so one is left.',
          details: { volume: label, guestPath: target },
        });
      }
      const [guestPath, flag] = target.split(':');
      volumes.push({
        label,
        path: found[0].location,
        guestPath: guestPath ?? target,
        readOnly: flag === 'ro',
      });
    }
  }
  return {
    name: recipe?.name ?? lock.name ?? basename(packageDir),
    packageDir,
    config: sized,
    threadVars,
    recipe,
    proof: recipe?.proof ?? lock.proof ?? { kind: 'none' },
    volumes,
    bytes: packageBytes(lock),
    ...(warnings.length ? { warnings } : {}),
  };
}

/** The config a run builds with: the package's, with the exit status wired out and no reboot loop. */
export function resolveRunConfig(
  base: OpsConfig,
  options: {
    args?: string[];
    trace?: boolean;
    via?: 'qemu' | 'ops';
    imageSize?: string;
    /** The package folder: Ops looks the program's libraries up in it, never on the host (image/contents.ts). */
    packageDir?: string;
  },
): { config: OpsConfig; warnings: RunWarning[] } {
  const warnings: RunWarning[] = [];
  const config: OpsConfig = structuredClone(base);
  if (options.packageDir && !config.TargetRoot) config.TargetRoot = resolve(options.packageDir);
  if (options.imageSize) {
    if (!/^\d+[kmg]?$/i.test(options.imageSize)) {
      throw new UniproveError('E_USAGE', {
        message: `image size ${JSON.stringify(options.imageSize)} is not a size`,
        hint: 'Use a whole number with k, m or g, e.g. --image-size 512m.',
      });
    }
    config.BaseVolumeSz = options.imageSize.toLowerCase();
  }
  if (options.args) config.Args = [...options.args];
  if (config.RebootOnExit) {
    warnings.push({
      code: 'reboot-on-exit',
      message:
        'the config sets RebootOnExit: true; a failing prover would reboot forever under `ops run`. uniprove turns it off for this run.',
    });
    config.RebootOnExit = false;
  }
  if (options.via !== 'ops') {
    config.ManifestPassthrough = { ...config.ManifestPassthrough, debug_exit: 't' };
  }
  if (options.trace) {
    config.Debugflags = [...new Set([...(config.Debugflags ?? []), ...TRACE_DEBUG_FLAGS])];
    config.Klibs = [...new Set([...(config.Klibs ?? []), 'strace'])];
  }
  return { config, warnings };
}
