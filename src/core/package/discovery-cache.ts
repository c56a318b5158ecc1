/**
 * What a package remembers between runs (.uniprove/state.json): the discovery it made, reused while its inputs are
 * unchanged.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DISCOVERY_FORMAT, discover } from '../discover/index.js';
import type { DiscoverResult } from '../discover/types.js';
import type { OnProgress } from '../progress.js';
import type { ResolvedRecipe } from '../recipe/load.js';
import { VERSION } from '../version.js';
import type { ExplicitFiles } from './claims.js';
import { guestCwd, makeProbeTree } from './probe-tree.js';
import { elfFilesAtHostPath } from './program.js';
import type { HashCache, TreeStamps } from './stage.js';

export const STATE_DIR = '.uniprove';

export const STATE_FILE = 'state.json';

/** Where a package keeps what it remembers between runs. */
export function packageStatePath(dir: string): string {
  return join(dir, STATE_DIR, STATE_FILE);
}

/** What the package remembers between runs, to skip work when nothing changed. */
export interface PackageState {
  uniprove: string;
  /** The recipe file (or binary) the package was made from. */
  source: string;
  key: string;
  discovery: DiscoverResult;
  hashes: HashCache;
  /** The stamp of each file's copy in the package (absent from packages of older uniproves, which hard-linked). */
  tree?: TreeStamps;
}

export async function fileKey(path: string): Promise<string> {
  const s = await stat(path);
  return `${path}:${s.size}:${s.mtimeMs}:${s.ino}`;
}

/** Everything discovery depends on, as one string. */
export async function discoveryKey(recipe: ResolvedRecipe): Promise<string> {
  const inputs = {
    uniprove: VERSION,
    discovery: DISCOVERY_FORMAT,
    binary: await fileKey(recipe.binary),
    args: recipe.probe.args ?? recipe.args,
    env: { ...recipe.env, ...recipe.probe.env },
    probe: recipe.probe,
    libraries: recipe.libraries,
    families: recipe.families,
    files: await Promise.all(recipe.files.map(async (f) => `${f.guestPath}=${await fileKey(f.hostPath)}`)),
    dirs: recipe.dirs.map((d) => `${d.guestPath}=${d.hostPath ?? ''}:${d.mode ?? ''}`),
    root: recipe.root ?? '/',
    // The probe starts in the guest's working directory (inside its copy of the recipe's files).
    cwd: guestCwd(recipe.manifestPassthrough),
  };
  return JSON.stringify(inputs);
}

/** Discovery for the recipe, or the last one when its inputs are unchanged (same key, same uniprove). */
export async function discoverOrReuse(
  recipe: ResolvedRecipe,
  explicit: ExplicitFiles,
  reuse: PackageState | undefined,
  key: string,
  onProgress: OnProgress,
  options: { signal?: AbortSignal; cacheDir?: string },
): Promise<DiscoverResult> {
  const { signal, cacheDir } = options;
  if (reuse && reuse.key === key && reuse.uniprove === VERSION) {
    onProgress({ kind: 'note', step: 'discover', detail: 'inputs unchanged: reusing the last discovery' });
    return reuse.discovery;
  }
  onProgress({ kind: 'step-start', step: 'discover', detail: basename(recipe.binary) });
  // The probe runs on copies of the recipe's files, at their guest paths, in the guest's working
  // directory: a program that rewrites its inputs changes the copies, never what goes into the package.
  const tree =
    recipe.probe.skip || recipe.root
      ? undefined
      : await makeProbeTree(
          explicit.hostToGuest,
          explicit.dirs,
          guestCwd(recipe.manifestPassthrough),
          signal,
        );
  let discovery: DiscoverResult;
  try {
    discovery = await discover({
      binary: recipe.binary,
      args: recipe.probe.args ?? recipe.args,
      env: { ...recipe.env, ...recipe.probe.env },
      cwd: tree?.cwd ?? recipe.baseDir,
      ...(tree ? { ownTree: tree.root } : {}),
      ...(recipe.root ? { root: recipe.root } : {}),
      probe: !recipe.probe.skip,
      timeoutMs: recipe.probe.timeoutSeconds * 1000,
      allowFailure: recipe.probe.allowFailure,
      ...(recipe.probe.cpu !== undefined ? { probeCpu: recipe.probe.cpu } : {}),
      ...(recipe.probe.lingerMs ? { lingerMs: recipe.probe.lingerMs } : {}),
      includeListed: recipe.probe.includeListed,
      ...(cacheDir ? { cacheDir } : {}),
      libraries: [...recipe.libraries, ...(await elfFilesAtHostPath(recipe))],
      families: recipe.families,
      ...(signal ? { signal } : {}),
      onProgress,
    });
  } finally {
    await tree?.remove();
  }
  onProgress({ kind: 'step-done', step: 'discover', detail: `${discovery.files.length} files` });
  return discovery;
}
