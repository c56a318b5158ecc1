/**
 * `uniprove package`: discovery, then staging into a folder that `ops build`
 * and `ops run` accept as it is, with a lock file that says why every file is
 * there. Same inputs give the same bytes; unchanged inputs do no work.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { DiscoveredFile, DiscoverResult, DiscoverWarning } from '../discover/types.js';
import { UniproveError } from '../errors.js';
import {
  assertWritable,
  readJsonIfExists,
  stableJson,
  toWriteError,
  type WriteContext,
  writeFileAtomic,
} from '../fs.js';
import { buildOpsConfig, loadBase, OPS_CONFIG_KINDS } from '../manifest/build.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import { type LoadRecipeOptions, loadRecipe, type ResolvedRecipe } from '../recipe/load.js';
import { VERSION } from '../version.js';
import { claimLabel, describeEntry, type ExplicitFiles, explicitFiles, sameFile } from './claims.js';
import {
  discoverOrReuse,
  discoveryKey,
  type PackageState,
  packageStatePath,
  STATE_DIR,
  STATE_FILE,
} from './discovery-cache.js';
import { configDigest, LOCK_FILE, packageBytes } from './layout.js';
import { volumeMounts } from './mounts.js';
import { type PackagePlan, type PlanEntry, planPackage, toGuest } from './plan.js';
import { checkProgramElf, ensureBinary } from './program.js';
import {
  buildLock,
  checkTree,
  type HashCache,
  hashSources,
  type PackageLock,
  swapIntoPlace,
  type TreeCheck,
  treeWarnings,
  writeTree,
} from './stage.js';

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
  /** uniprove's cache folder, where the probe's linger library is compiled once (default: a temp folder). */
  cacheDir?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

export interface PackageResult {
  name: string;
  /** The package folder. */
  package: string;
  /** Ops config for local runs (local.json); one per kind (local, gcloud) in `configs`. */
  config: string;
  configs: Record<string, string>;
  lock: string;
  program: string;
  /** Number of files and symlinks in the image tree. */
  files: number;
  /** Number of folders the recipe names (the lock lists each, empty ones included). */
  dirs: number;
  bytes: number;
  /** false when nothing changed and no work was done. */
  changed: boolean;
  warnings: DiscoverWarning[];
  /** The discovery run's facts (its exit status, time, how long it lingered after exit), when there was one. */
  probe?: DiscoverResult['probe'];
}

/**
 * The image tree: the program at its guest path, what discovery found at the path the guest's loader opens,
 * and the recipe's own files and folders, which take a closure file's place only when the recipe says so.
 */
async function planImageTree(
  recipe: ResolvedRecipe,
  discovery: DiscoverResult,
  explicit: ExplicitFiles,
): Promise<PackagePlan> {
  const root = recipe.root ?? '/';
  const { claims, hostToGuest } = explicit;
  // The binary itself is placed at the program's guest path; what it pulled in names the program as parent.
  const discovered = discovery.files
    .filter((f) => f.path !== recipe.binary)
    .map((f) => ({ ...f, parents: f.parents.map((p) => (p === recipe.binary ? recipe.program : p)) }));
  const programEntry: DiscoveredFile = {
    path: recipe.program,
    chain: [recipe.program],
    reasons: ['explicit'],
    parents: [],
    isElf: true,
  };
  // A recipe file where the closure has one (libc, the loader) replaces it only when the recipe says so.
  const closure = await planPackage([...discovered, programEntry], root);
  for (const entry of closure.entries) {
    const c = claims.get(entry.path);
    // The same file listed again (what `debug --fix` adds at its own host path) takes nobody's place.
    if (c && !c.replace && !(await sameFile(c.host, root === '/' ? entry.path : join(root, entry.path)))) {
      throw new UniproveError('E_CONFIG', {
        message: `${claimLabel(c)}: ${entry.path} already holds ${describeEntry(entry)}`,
        hint: 'Give the file another guest path, or set "replace": true on the entry to put it there on purpose.',
        details: { field: c.field, path: entry.path, source: recipe.source },
      });
    }
  }
  const plan = await planPackage([...discovered, programEntry, ...explicit.files], root, explicit.dirs);
  // Explicit entries and the program take their bytes from their host paths, not from inside the root.
  for (const [i, e] of plan.entries.entries()) {
    const host = hostToGuest.get(e.path);
    if (e.type === 'symlink') {
      // A link of the closure that a recipe file replaces becomes that file.
      if (host && claims.get(e.path)?.replace) {
        plan.entries[i] = {
          type: 'file',
          path: e.path,
          source: host,
          reasons: e.reasons,
          parents: e.parents,
        };
      }
      continue;
    }
    if (e.type !== 'file') continue;
    if (e.path === recipe.program) e.source = recipe.binary;
    if (host) e.source = host;
  }
  return plan;
}

/** What a package folder holds besides its tree: the configs, the lock, and the state for the next run. */
interface PackageContents {
  plan: PackagePlan;
  sources: { stamps: HashCache; modes: Map<string, number> };
  /** What the old package holds: its unchanged copies are placed again, not copied. */
  check: TreeCheck;
  tmpNeeded: boolean;
  configs: Record<string, string>;
  lockText: string;
  state: PackageState;
  bytes: number;
}

/** Write the package into `staging` and swap it in for `out`; on any failure the staging folder goes. */
async function stagePackage(
  staging: string,
  out: string,
  contents: PackageContents,
  writing: WriteContext,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await mkdir(dirname(out), { recursive: true });
    // Not recursive: a recursive mkdir reports a read-only file system as ENOENT.
    await mkdir(staging);
    const tree = await writeTree(staging, contents.plan, contents.sources, contents.check.intact, signal);
    if (contents.tmpNeeded) await mkdir(join(staging, 'tmp'), { recursive: true });
    const inPackage = { ...writing, bytes: contents.bytes };
    for (const t of OPS_CONFIG_KINDS) {
      await writeFileAtomic(join(staging, `${t}.json`), contents.configs[t] as string, inPackage);
    }
    await writeFileAtomic(join(staging, LOCK_FILE), contents.lockText, inPackage);
    await mkdir(join(staging, STATE_DIR), { recursive: true });
    const state: PackageState = { ...contents.state, tree: tree.tree };
    await writeFileAtomic(join(staging, STATE_DIR, STATE_FILE), stableJson(state), inPackage);
    signal?.throwIfAborted();
    await swapIntoPlace(staging, out);
  } catch (error) {
    await rm(staging, { recursive: true, force: true }).catch(() => {});
    throw await toWriteError(error, { ...writing, bytes: contents.bytes });
  }
}

/** Package a recipe into a folder Ops can build and run from. */
export async function packageRecipe(options: PackageOptions): Promise<PackageResult> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const recipe = await loadRecipe(options.recipe, options);
  const cwd = options.cwd ?? process.cwd();
  const out = resolve(cwd, options.out ?? join('build', recipe.name));
  const bases = await Promise.all(OPS_CONFIG_KINDS.map(async (t) => [t, await loadBase(t)] as const));
  const writing: WriteContext = {
    what: 'the package',
    path: out,
    elsewhere: 'pass --out DIR on a disk with room that you can write',
  };
  // The package is staged next to `out` and swapped in: a folder that cannot take it (or a name too long for
  // the staging folder's) is refused before the long work.
  const staging = `${out}.staging-${process.pid}-${Date.now()}`;
  await assertWritable(writing, staging);
  await ensureBinary(recipe, onProgress, signal);
  const elf = await checkProgramElf(recipe);
  if (!recipe.programExplicit) {
    // $ORIGIN in RPATH/RUNPATH is the program's own folder: keep the program where it is, or its libraries move away.
    if ([...elf.rpath, ...elf.runpath].some((p) => /\$\{?ORIGIN\}?/.test(p))) {
      recipe.program = toGuest(recipe.binary, recipe.root ?? '/');
    }
  }
  // What the recipe lists is checked before the long work: each guest path claimed once.
  const explicit = await explicitFiles(recipe);

  const statePath = packageStatePath(out);
  const previous = options.force ? undefined : await readJsonIfExists<PackageState>(statePath);
  const key = await discoveryKey(recipe);
  const discovery = await discoverOrReuse(recipe, explicit, previous, key, onProgress, {
    ...(signal ? { signal } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  });
  const plan = await planImageTree(recipe, discovery, explicit);

  const sources = await hashSources(plan, previous?.hashes ?? {}, signal);
  const { stamps, modes } = sources;
  const lock = buildLock(recipe.name, recipe.program, recipe.proof, plan, stamps, modes);
  if (recipe.resources.threadVars.length > 0) lock.threadVars = recipe.resources.threadVars;
  const top = topLevel(plan.entries, recipe.program);
  const mounts = await volumeMounts(recipe, options);
  // Programs expect a /tmp; a Nanos image has none unless one is put there (or a volume is mounted there).
  const tmpNeeded =
    !Object.values(mounts).some((m) => m.split(':')[0] === '/tmp') && !top.files.includes('tmp');
  if (tmpNeeded && !top.dirs.includes('tmp')) top.dirs = [...top.dirs, 'tmp'].sort();
  const configs = Object.fromEntries(
    bases.map(([kind, base]) => [
      kind,
      stableJson(buildOpsConfig({ base, recipe, files: top.files, dirs: top.dirs, mounts })),
    ]),
  );
  lock.configs = Object.fromEntries(OPS_CONFIG_KINDS.map((t) => [t, configDigest(configs[t] as string)]));
  const lockText = stableJson(lock);
  const bytes = packageBytes(lock);
  // One stat per file of the package: what is still the copy staged, what was changed in place, what is a host file.
  const check = await checkTree(out, plan, sources, previous?.tree);
  const result = (changed: boolean): PackageResult => ({
    name: recipe.name,
    package: out,
    config: join(out, 'local.json'),
    configs: Object.fromEntries(OPS_CONFIG_KINDS.map((t) => [t, join(out, `${t}.json`)])),
    lock: join(out, LOCK_FILE),
    program: recipe.program,
    files: lock.files.filter((f) => f.type !== 'dir').length,
    dirs: lock.files.filter((f) => f.type === 'dir').length,
    bytes,
    changed,
    warnings: [...discovery.warnings, ...treeWarnings(check)],
    ...(discovery.probe ? { probe: discovery.probe } : {}),
  });

  const files = plan.entries.filter((e) => e.type === 'file').length;
  if (previous && check.intact.size === files && (await writtenAsIs(out, lockText, configs))) {
    return result(false);
  }

  onProgress({ kind: 'step-start', step: 'stage', detail: `${lock.files.length} files` });
  const state: PackageState = { uniprove: VERSION, source: recipe.source, key, discovery, hashes: stamps };
  await stagePackage(
    staging,
    out,
    { plan, sources, check, tmpNeeded, configs, lockText, state, bytes },
    writing,
    signal,
  );
  onProgress({ kind: 'step-done', step: 'stage', detail: out });
  return result(true);
}

/** True when the package's lock and configs are, byte for byte, what this run would write. */
async function writtenAsIs(out: string, lockText: string, configs: Record<string, string>): Promise<boolean> {
  const existingLock = await readJsonIfExists<PackageLock>(join(out, LOCK_FILE));
  if (!existingLock || stableJson(existingLock) !== lockText) return false;
  const same = await Promise.all(
    OPS_CONFIG_KINDS.map(async (t) => (await readTextIfExists(join(out, `${t}.json`))) === configs[t]),
  );
  return same.every(Boolean);
}

async function readTextIfExists(path: string): Promise<string | undefined> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path, 'utf8').catch(() => undefined);
}

/** Split the image tree's top level into Ops `Files` and `Dirs` (the program is given to Ops separately). */
function topLevel(
  entries: readonly Pick<PlanEntry, 'path' | 'type'>[],
  program: string,
): { files: string[]; dirs: string[] } {
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const { path: p, type } of entries) {
    if (p === program) continue;
    const [first, ...rest] = p.replace(/^\//, '').split('/');
    if (!first) continue;
    if (rest.length === 0 && type !== 'dir') files.add(first);
    else dirs.add(first);
  }
  // A program inside a folder lives in that folder's tree too.
  const [progFirst, ...progRest] = program.replace(/^\//, '').split('/');
  if (progRest.length > 0 && progFirst) dirs.add(progFirst);
  return { files: [...files].sort(), dirs: [...dirs].sort() };
}
