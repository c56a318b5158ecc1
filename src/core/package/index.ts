/**
 * `uniprove package`: discovery, then staging into a folder that `ops build`
 * and `ops run` accept as it is, with a lock file that says why every file is
 * there. Same inputs give the same bytes; unchanged inputs do no work.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { discover } from '../discover/index.js';
import type { DiscoveredFile, DiscoverResult, DiscoverWarning } from '../discover/types.js';
import { parseElf } from '../elf/parse.js';
import { UniproveError } from '../errors.js';
import { run } from '../exec.js';
import { readJsonIfExists, stableJson, writeFileAtomic } from '../fs.js';
import { buildOpsConfig, loadBase, TARGETS } from '../manifest/build.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import { type LoadRecipeOptions, loadRecipe, type ResolvedRecipe } from '../recipe/load.js';
import { VERSION } from '../version.js';
import { loadParameterSet, volumeNameFor } from '../volume/build.js';
import { BUILTIN_SETS_DIR } from '../volume/spec.js';
import { configDigest, LOCK_FILE, packageBytes } from './layout.js';
import { checkGuestPath, planPackage, toGuest } from './plan.js';
import {
  buildLock,
  type HashCache,
  hashSources,
  type PackageLock,
  swapIntoPlace,
  writeTree,
} from './stage.js';

const STATE_DIR = '.uniprove';
const STATE_FILE = 'state.json';

/** Where a package keeps what it remembers between runs. */
export function packageStatePath(dir: string): string {
  return join(dir, STATE_DIR, STATE_FILE);
}

export interface PackageOptions extends LoadRecipeOptions {
  /** Recipe name, recipe folder or file, or a binary path. */
  recipe: string;
  /** Output folder; default <cwd>/build/<recipe name>. */
  out?: string;
  /** Ops volume names for the recipe's volume sets (set -> volume name); default from the set's digest. */
  volumeNames?: Record<string, string>;
  /** Folder of parameter sets (default: uniprove's volumes/). */
  setsDir?: string;
  /** Re-run discovery even when the binary and probe did not change. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

export interface PackageResult {
  name: string;
  /** The package folder. */
  package: string;
  /** Ops config for local runs (local.json); one per target in `configs`. */
  config: string;
  configs: Record<string, string>;
  lock: string;
  program: string;
  /** Number of entries (files and symlinks) in the image tree. */
  files: number;
  bytes: number;
  /** false when nothing changed and no work was done. */
  changed: boolean;
  warnings: DiscoverWarning[];
}

/** What the package remembers between runs, to skip work when nothing changed. */
export interface PackageState {
  uniprove: string;
  /** The recipe file (or binary) the package was made from. */
  source: string;
  key: string;
  discovery: DiscoverResult;
  hashes: HashCache;
}

async function fileKey(path: string): Promise<string> {
  const s = await stat(path);
  return `${path}:${s.size}:${s.mtimeMs}:${s.ino}`;
}

/** Everything discovery depends on, as one string. */
async function discoveryKey(recipe: ResolvedRecipe): Promise<string> {
  const inputs = {
    uniprove: VERSION,
    binary: await fileKey(recipe.binary),
    args: recipe.probe.args ?? recipe.args,
    env: { ...recipe.env, ...recipe.probe.env },
    probe: recipe.probe,
    libraries: recipe.libraries,
    families: recipe.families,
    files: await Promise.all(recipe.files.map(async (f) => `${f.guestPath}=${await fileKey(f.hostPath)}`)),
    dirs: recipe.dirs.map((d) => `${d.guestPath}=${d.hostPath}`),
    root: recipe.root ?? '/',
  };
  return JSON.stringify(inputs);
}

async function ensureBinary(recipe: ResolvedRecipe, onProgress: OnProgress, signal?: AbortSignal) {
  const exists = await stat(recipe.binary).then(
    () => true,
    () => false,
  );
  if (exists) return;
  if (!recipe.build) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `binary: ${recipe.binary} does not exist`,
      hint: 'Build the prover first, or pass --binary PATH.',
    });
  }
  onProgress({ kind: 'step-start', step: 'build', detail: recipe.build.argv.join(' ') });
  await run(recipe.build.argv, {
    cwd: recipe.baseDir,
    env: recipe.build.env,
    signal,
    timeoutMs: 3_600_000,
    timeoutReport: {
      what: `the recipe's build command (${recipe.build.argv.join(' ')})`,
      hint: `Run it by hand in ${recipe.baseDir} to see where it stops, or build the prover first and pass --binary.`,
    },
  });
  const built = await stat(recipe.binary).then(
    () => true,
    () => false,
  );
  if (!built) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `the build step finished but ${recipe.binary} is still missing`,
      hint: 'Make the recipe\'s "binary" point at what "build" produces.',
    });
  }
  onProgress({ kind: 'step-done', step: 'build' });
}

/** Files the recipe lists itself (files and whole dirs), as discovered files with reason explicit. */
async function explicitFiles(
  recipe: ResolvedRecipe,
): Promise<{ files: DiscoveredFile[]; hostToGuest: Map<string, string> }> {
  const { readdir } = await import('node:fs/promises');
  const files: DiscoveredFile[] = [];
  const hostToGuest = new Map<string, string>();
  const push = (host: string, guest: string, reason: string | undefined) => {
    const path = checkGuestPath(guest, host);
    hostToGuest.set(path, host);
    files.push({ path, chain: [path], reasons: ['explicit'], parents: reason ? [reason] : [], isElf: false });
  };
  for (const f of recipe.files) push(f.hostPath, f.guestPath, f.reason);
  for (const d of recipe.dirs) {
    const walk = async (hostDir: string, guestDir: string): Promise<void> => {
      for (const e of (await readdir(hostDir, { withFileTypes: true })).sort((a, b) =>
        a.name < b.name ? -1 : 1,
      )) {
        const h = join(hostDir, e.name);
        const g = `${guestDir}/${e.name}`;
        if (e.isDirectory()) await walk(h, g);
        else if (e.isFile()) push(h, g, d.reason);
      }
    };
    await walk(d.hostPath, d.guestPath.replace(/\/$/, ''));
  }
  return { files, hostToGuest };
}

/** Package a recipe into a folder Ops can build and run from. */
export async function packageRecipe(options: PackageOptions): Promise<PackageResult> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const recipe = await loadRecipe(options.recipe, options);
  const cwd = options.cwd ?? process.cwd();
  const out = resolve(cwd, options.out ?? join('build', recipe.name));
  const bases = await Promise.all(TARGETS.map(async (t) => [t, await loadBase(t)] as const));
  await ensureBinary(recipe, onProgress, signal);
  if (!recipe.programExplicit) {
    // $ORIGIN in RPATH/RUNPATH is the program's own folder: keep the program where it is, or its libraries move away.
    const info = await parseElf(recipe.binary);
    if ([...info.rpath, ...info.runpath].some((p) => /\$\{?ORIGIN\}?/.test(p))) {
      recipe.program = toGuest(recipe.binary, recipe.root ?? '/');
    }
  }

  const statePath = packageStatePath(out);
  const previous = options.force ? undefined : await readJsonIfExists<PackageState>(statePath);
  const key = await discoveryKey(recipe);
  let discovery: DiscoverResult;
  if (previous && previous.key === key && previous.uniprove === VERSION) {
    discovery = previous.discovery;
    onProgress({ kind: 'note', step: 'discover', detail: 'inputs unchanged: reusing the last discovery' });
  } else {
    onProgress({ kind: 'step-start', step: 'discover', detail: basename(recipe.binary) });
    discovery = await discover({
      binary: recipe.binary,
      args: recipe.probe.args ?? recipe.args,
      env: { ...recipe.env, ...recipe.probe.env },
      cwd: recipe.baseDir,
      ...(recipe.root ? { root: recipe.root } : {}),
      probe: !recipe.probe.skip,
      timeoutMs: recipe.probe.timeoutSeconds * 1000,
      allowFailure: recipe.probe.allowFailure,
      ...(recipe.probe.cpu !== undefined ? { probeCpu: recipe.probe.cpu } : {}),
      libraries: [...recipe.libraries, ...(await elfFilesAtHostPath(recipe))],
      families: recipe.families,
      ...(signal ? { signal } : {}),
      onProgress,
    });
    onProgress({ kind: 'step-done', step: 'discover', detail: `${discovery.files.length} files` });
  }

  // The program goes to its guest path; everything else at the path the guest's loader opens.
  const root = recipe.root ?? '/';
  const { files: explicit, hostToGuest } = await explicitFiles(recipe);
  // The binary itself is placed at the program's guest path; what it pulled in names the program as parent.
  const discovered = discovery.files
    .filter((f) => f.path !== recipe.binary)
    .map((f) => ({ ...f, parents: f.parents.map((p) => (p === recipe.binary ? recipe.program : p)) }));
  const plan = await planPackage(
    [
      ...discovered,
      { path: recipe.program, chain: [recipe.program], reasons: ['explicit'], parents: [], isElf: true },
      ...explicit,
    ],
    root,
  );
  // Explicit entries and the program take their bytes from their host paths, not from inside the root.
  for (const e of plan.entries) {
    if (e.type !== 'file') continue;
    if (e.path === recipe.program) e.source = recipe.binary;
    const host = hostToGuest.get(e.path);
    if (host) e.source = host;
  }

  const { stamps, modes } = await hashSources(plan, previous?.hashes ?? {}, signal);
  const lock = buildLock(recipe.name, recipe.program, recipe.proof, plan, stamps, modes);
  const top = topLevel(
    plan.entries.map((e) => e.path),
    recipe.program,
  );
  const mounts: Record<string, string> = {};
  for (const [i, v] of recipe.volumes.entries()) {
    const set = await loadParameterSet(v.set, {
      setsDir: options.setsDir ?? BUILTIN_SETS_DIR,
      cwd: recipe.baseDir,
    }).catch((error: unknown) => {
      throw new UniproveError('E_CONFIG', {
        message: `volumes[${i}].set: ${(error as Error).message}`,
        hint: 'Name a parameter set from volumes/ (uniprove volume ls --sets) or a set file relative to the recipe.',
        cause: error,
      });
    });
    const guestPath = v.guestPath ?? set.mountPath;
    const name = options.volumeNames?.[v.set] ?? volumeNameFor(set);
    mounts[name] = v.readOnly ? `${guestPath}:ro` : guestPath;
  }
  // Programs expect a /tmp; a Nanos image has none unless one is put there (or a volume is mounted there).
  const tmpNeeded =
    !Object.values(mounts).some((m) => m.split(':')[0] === '/tmp') && !top.files.includes('tmp');
  if (tmpNeeded && !top.dirs.includes('tmp')) top.dirs = [...top.dirs, 'tmp'].sort();
  const configs = Object.fromEntries(
    bases.map(([target, base]) => [
      target,
      stableJson(buildOpsConfig({ base, recipe, files: top.files, dirs: top.dirs, mounts })),
    ]),
  );
  lock.configs = Object.fromEntries(TARGETS.map((t) => [t, configDigest(configs[t] as string)]));
  const lockText = stableJson(lock);
  const bytes = packageBytes(lock);
  const result = (changed: boolean): PackageResult => ({
    name: recipe.name,
    package: out,
    config: join(out, 'local.json'),
    configs: Object.fromEntries(TARGETS.map((t) => [t, join(out, `${t}.json`)])),
    lock: join(out, LOCK_FILE),
    program: recipe.program,
    files: lock.files.length,
    bytes,
    changed,
    warnings: discovery.warnings,
  });

  // Nothing to do when the lock and configs would be written byte for byte as they are.
  const existingLock = await readJsonIfExists<PackageLock>(join(out, LOCK_FILE));
  if (previous && existingLock && stableJson(existingLock) === lockText) {
    const same = await Promise.all(
      TARGETS.map(async (t) => (await readTextIfExists(join(out, `${t}.json`))) === configs[t]),
    );
    if (same.every(Boolean)) return result(false);
  }

  onProgress({ kind: 'step-start', step: 'stage', detail: `${lock.files.length} files` });
  await mkdir(dirname(out), { recursive: true });
  const staging = `${out}.staging-${process.pid}-${Date.now()}`;
  try {
    await mkdir(staging, { recursive: true });
    await writeTree(staging, plan, modes, signal);
    if (tmpNeeded) await mkdir(join(staging, 'tmp'), { recursive: true });
    for (const t of TARGETS) await writeFileAtomic(join(staging, `${t}.json`), configs[t] as string);
    await writeFileAtomic(join(staging, LOCK_FILE), lockText);
    await mkdir(join(staging, STATE_DIR), { recursive: true });
    const state: PackageState = { uniprove: VERSION, source: recipe.source, key, discovery, hashes: stamps };
    await writeFileAtomic(join(staging, STATE_DIR, STATE_FILE), stableJson(state));
    signal?.throwIfAborted();
    await swapIntoPlace(staging, out);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  onProgress({ kind: 'step-done', step: 'stage', detail: out });
  return result(true);
}

/**
 * Recipe files that are ELF objects placed at their own host path (what `debug --fix` adds):
 * discovery treats them as libraries, so what they need comes along.
 */
async function elfFilesAtHostPath(recipe: ResolvedRecipe): Promise<string[]> {
  if (recipe.root) return [];
  const out: string[] = [];
  for (const f of recipe.files) {
    if (f.hostPath !== f.guestPath) continue;
    const elf = await parseElf(f.hostPath).catch(() => undefined);
    if (elf?.dynamic) out.push(f.hostPath);
  }
  return out;
}

async function readTextIfExists(path: string): Promise<string | undefined> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path, 'utf8').catch(() => undefined);
}

/** The Ops volume name uniprove uses for a parameter set. */
export function defaultVolumeName(set: string): string {
  return `uniprove-${basename(set, '.json')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')}`;
}

/** Split the image tree's top level into Ops `Files` and `Dirs` (the program is given to Ops separately). */
function topLevel(paths: string[], program: string): { files: string[]; dirs: string[] } {
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const p of paths) {
    if (p === program) continue;
    const [first, ...rest] = p.replace(/^\//, '').split('/');
    if (!first) continue;
    if (rest.length === 0) files.add(first);
    else dirs.add(first);
  }
  // A program inside a folder lives in that folder's tree too.
  const [progFirst, ...progRest] = program.replace(/^\//, '').split('/');
  if (progRest.length > 0 && progFirst) dirs.add(progFirst);
  return { files: [...files].sort(), dirs: [...dirs].sort() };
}
