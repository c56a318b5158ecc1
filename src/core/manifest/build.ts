/**
 * Generating the Ops config.json of a package: the base of its kind (local, gcloud) from
 * manifests/ merged with the recipe, then validated against Ops's schema.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UniproveError } from '../errors.js';
import type { ResolvedRecipe } from '../recipe/load.js';
import { type OpsConfig, parseOpsConfig } from './schema.js';

/** Config bases shipped with uniprove. */
export const BUILTIN_CONFIG_BASES_DIR = fileURLToPath(new URL('../../../manifests/', import.meta.url));

/** Which Ops config a package holds: for local runs (QEMU) or Google Cloud (a package writes both). */
export type OpsConfigKind = 'local' | 'gcloud';
/** Every kind, in the order a package writes them. */
export const OPS_CONFIG_KINDS: readonly OpsConfigKind[] = ['local', 'gcloud'];

/** Read and validate a base config (manifests/<kind>.json). */
export async function loadBase(kind: OpsConfigKind, basesDir = BUILTIN_CONFIG_BASES_DIR): Promise<OpsConfig> {
  const path = `${basesDir.replace(/\/$/, '')}/${kind}.json`;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `cannot read the ${kind} config base ${path}: ${(error as Error).message}`,
      hint: 'Restore the file from the uniprove repository, or fix its JSON.',
      cause: error,
    });
  }
  return parseOpsConfig(raw, path);
}

export interface BuildOpsConfigOptions {
  base: OpsConfig;
  recipe: ResolvedRecipe;
  /** Top-level guest files of the image tree, other than the program (Ops `Files`). */
  files: string[];
  /** Top-level guest folders of the image tree (Ops `Dirs`). */
  dirs: string[];
  /** Ops volume name -> guest mount path (with `:ro` for read-only). */
  mounts: Record<string, string>;
}

function sortedRecord<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function union(a: readonly string[] | undefined, b: readonly string[]): string[] {
  return [...new Set([...(a ?? []), ...b])];
}

/**
 * The Ops config for a package. Paths are relative to the package folder,
 * which is the folder Ops must run in (`cd PACKAGE && ops run PROGRAM -c local.json`).
 */
export function buildOpsConfig(options: BuildOpsConfigOptions): OpsConfig {
  const { base, recipe } = options;
  const passthrough = { ...base.ManifestPassthrough, ...recipe.manifestPassthrough };
  // Cloud bases pick the machine size; the recipe's local CPU count does not shrink it.
  const cloudCpus = base.RunConfig?.CPUs && base.CloudConfig ? base.RunConfig.CPUs : 0;
  const cpus = Math.max(recipe.resources.cpus, cloudCpus, 1);
  const config: OpsConfig = {
    ...base,
    Program: recipe.program.replace(/^\/+/, ''),
    Args: [...recipe.args],
    Env: sortedRecord({ ...base.Env, ...recipe.env, ...threadEnv(recipe.resources.threadVars, cpus) }),
    ...(options.files.length ? { Files: [...options.files].sort() } : {}),
    ...(options.dirs.length ? { Dirs: [...options.dirs].sort() } : {}),
    ...(Object.keys(options.mounts).length
      ? { Mounts: sortedRecord({ ...base.Mounts, ...options.mounts }) }
      : {}),
    ...(recipe.klibs.length || base.Klibs ? { Klibs: union(base.Klibs, recipe.klibs) } : {}),
    ...(recipe.debugFlags.length || base.Debugflags
      ? { Debugflags: union(base.Debugflags, recipe.debugFlags) }
      : {}),
    ...(Object.keys(passthrough).length ? { ManifestPassthrough: sortedRecord(passthrough) } : {}),
    RunConfig: {
      ...base.RunConfig,
      Memory: recipe.resources.memory,
      CPUs: cpus,
    },
  };
  return parseOpsConfig(config, `generated config for ${recipe.name}`);
}

/** The recipe's thread-count variables, each set to the vCPU count the guest gets. */
export function threadEnv(names: readonly string[], cpus: number): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, String(Math.max(1, cpus))]));
}

/** The config with `cpus` vCPUs and the thread-count variables set to that count. */
export function withVcpus(config: OpsConfig, cpus: number, threadVars: readonly string[]): OpsConfig {
  return {
    ...config,
    RunConfig: { ...config.RunConfig, CPUs: cpus },
    ...(threadVars.length > 0 ? { Env: { ...config.Env, ...threadEnv(threadVars, cpus) } } : {}),
  };
}

/**
 * The config as Ops reads it from a file in `configDir`. Ops joins an absolute MapDirs source to TargetRoot
 * (which every build sets to the package) and a relative one to the config file's folder, so a host folder
 * outside the package that uniprove maps in (the console route's proof-out library, in uniprove's cache) is
 * written relative to `configDir`: Ops then finds it where it is.
 */
export function opsConfigText(config: OpsConfig, configDir: string): string {
  const root = config.TargetRoot;
  const maps = config.MapDirs;
  if (!root || !maps) return `${JSON.stringify(config, null, 2)}\n`;
  const underRoot = (p: string) => {
    const rel = relative(root, p);
    return !rel.startsWith('..') && !isAbsolute(rel);
  };
  const MapDirs = Object.fromEntries(
    Object.entries(maps).map(([source, guest]) => [
      isAbsolute(source) && !underRoot(source) ? relative(configDir, source) : source,
      guest,
    ]),
  );
  return `${JSON.stringify({ ...config, MapDirs }, null, 2)}\n`;
}
