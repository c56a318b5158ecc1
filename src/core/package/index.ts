/**
 * `uniprove package`: discovery, then staging into a folder that `ops build`
 * and `ops run` accept as it is, with a lock file that says why every file is
 * there. Same inputs give the same bytes; unchanged inputs do no work.
 */
import { mkdir, readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { DISCOVERY_FORMAT, discover } from '../discover/index.js';
import type { DiscoveredFile, DiscoverResult, DiscoverWarning } from '../discover/types.js';
import { type ElfInfo, EM_AARCH64, EM_X86_64, parseElf } from '../elf/parse.js';
import { UniproveError } from '../errors.js';
import { run } from '../exec.js';
import {
  assertWritable,
  notRegularFile,
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
import { loadParameterSet, volumeNameFor } from '../volume/build.js';
import { BUILTIN_SETS_DIR } from '../volume/spec.js';
import { configDigest, LOCK_FILE, packageBytes, packageOwnPath } from './layout.js';
import {
  checkGuestPath,
  type PackagePlan,
  type PlanDir,
  type PlanEntry,
  planPackage,
  toGuest,
} from './plan.js';
import { guestCwd, makeProbeTree } from './probe-tree.js';
import {
  buildLock,
  checkTree,
  type HashCache,
  hashSources,
  type PackageLock,
  swapIntoPlace,
  type TreeCheck,
  type TreeStamps,
  treeWarnings,
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

async function fileKey(path: string): Promise<string> {
  const s = await stat(path);
  return `${path}:${s.size}:${s.mtimeMs}:${s.ino}`;
}

/** Everything discovery depends on, as one string. */
async function discoveryKey(recipe: ResolvedRecipe): Promise<string> {
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

/** Where a guest path of the image was claimed by the recipe: the field, and the host file for dirs. */
interface Claim {
  field: string;
  host: string;
  replace: boolean;
}

function claimLabel(claim: Claim): string {
  return claim.field.startsWith('dirs') ? `${claim.field} (${claim.host})` : claim.field;
}

/**
 * Files and folders the recipe lists itself (files, whole dirs with every folder in them, empty folders), as
 * discovered files with reason explicit and as plan folders, each guest path claimed once: two entries at one
 * path, an entry on the program, or one where the package keeps its own files are refused. Symlinks in dirs
 * are kept when they stay inside their folder (E_PATH_ESCAPE else).
 */
async function explicitFiles(recipe: ResolvedRecipe): Promise<ExplicitFiles> {
  const found: ExplicitFiles = { files: [], dirs: [], hostToGuest: new Map(), claims: new Map() };
  for (const f of recipe.files) {
    pushExplicit(recipe, found, f.hostPath, f.guestPath, f.reason, {
      field: f.field,
      host: f.hostPath,
      replace: f.replace,
    });
  }
  for (const [i, d] of recipe.dirs.entries()) await addRecipeDir(recipe, found, d, i);
  return found;
}

/** What the recipe lists itself: files with reason explicit, folders, and which recipe entry claimed each path. */
interface ExplicitFiles {
  files: DiscoveredFile[];
  dirs: PlanDir[];
  /** Guest path to the host file its bytes come from. */
  hostToGuest: Map<string, string>;
  claims: Map<string, Claim>;
}

/** Claim a guest path for a recipe entry; refuse the program's path, the package's own files and a second claim. */
function claimPath(recipe: ResolvedRecipe, claims: Map<string, Claim>, path: string, c: Claim): void {
  if (path === recipe.program) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is where the program goes`,
      hint: 'To package another program, change "binary"; else give the file another guest path.',
      details: { field: c.field, source: recipe.source },
    });
  }
  const own = packageOwnPath(path);
  if (own) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is where the package keeps ${own}; the file would be overwritten`,
      hint: 'Give the file another guest path.',
      details: { field: c.field, source: recipe.source },
    });
  }
  const other = claims.get(path);
  if (other) {
    throw new UniproveError('E_CONFIG', {
      message: `${claimLabel(c)}: ${path} is also where ${claimLabel(other)} goes`,
      hint: 'Give each file its own guest path, or remove one of the two entries.',
      details: { field: c.field, other: other.field, source: recipe.source },
    });
  }
  claims.set(path, c);
}

function pushExplicit(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  host: string,
  guest: string,
  reason: string | undefined,
  c: Claim,
): void {
  const path = checkGuestPath(guest, host);
  claimPath(recipe, found.claims, path, c);
  found.hostToGuest.set(path, host);
  found.files.push({
    path,
    chain: [path],
    reasons: ['explicit'],
    parents: reason ? [reason] : [],
    isElf: false,
  });
}

type RecipeDir = ResolvedRecipe['dirs'][number];

/** One entry of the recipe's `dirs`: an empty folder, or a host folder with every file, folder and inner link in it. */
async function addRecipeDir(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  d: RecipeDir,
  i: number,
): Promise<void> {
  // `why` names the recipe entry a folder comes from.
  const parents = [d.reason ?? `recipe dirs[${i}]: ${d.hostPath ?? 'an empty folder'}`];
  const folder = async (host: string | undefined, guest: string, mode: number | undefined) => {
    const path = checkGuestPath(guest, host ?? `${d.field}.guest`);
    if (path === '/') return; // the image root is there anyway
    const bits = mode ?? (await stat(host as string)).mode & 0o7777;
    found.dirs.push({ path, mode: bits, reasons: ['explicit'], parents });
  };
  if (d.hostPath === undefined) {
    await folder(undefined, d.guestPath, d.mode);
    return;
  }
  const hostTop = d.hostPath;
  const top = await realpath(hostTop);
  const guestTop = d.guestPath === '/' ? '' : d.guestPath;
  const walk = async (hostDir: string, guestDir: string): Promise<void> => {
    await folder(hostDir, guestDir || '/', undefined);
    for (const e of (await readdir(hostDir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const h = join(hostDir, e.name);
      const g = `${guestDir}/${e.name}`;
      const c: Claim = { field: d.field, host: h, replace: d.replace };
      if (e.isDirectory()) await walk(h, g);
      else if (e.isFile()) pushExplicit(recipe, found, h, g, d.reason, c);
      else if (e.isSymbolicLink())
        await addInnerLink(recipe, found, d, { hostDir, hostTop, top, guestTop }, h, g, c);
      else {
        throw notRegularFile(
          await stat(h),
          h,
          d.field,
          'A "dirs" folder may hold regular files, folders and links to files in it.',
        );
      }
    }
  };
  await walk(hostTop, guestTop);
}

/**
 * A symlink inside a recipe folder, kept as a link when it leads to a regular file in the folder. In the image a
 * link means what it means here only if it stays inside the folder; an absolute target or one that climbs out
 * would point at the guest's own /etc, or at nothing.
 */
async function addInnerLink(
  recipe: ResolvedRecipe,
  found: ExplicitFiles,
  d: RecipeDir,
  where: { hostDir: string; hostTop: string; top: string; guestTop: string },
  h: string,
  g: string,
  c: Claim,
): Promise<void> {
  const inside = (host: string, root: string) => host === root || host.startsWith(`${root}/`);
  const target = await readlink(h);
  const real = await realpath(h).catch(() => undefined);
  if (
    target.startsWith('/') ||
    !inside(resolve(where.hostDir, target), where.hostTop) ||
    (real && !inside(real, where.top))
  ) {
    throw new UniproveError('E_PATH_ESCAPE', {
      message: `${d.field}: ${h} is a symlink to ${target}, outside the folder ${d.hostPath}`,
      hint: 'Make the link relative to a file inside the folder, or list the file itself under "files" (with the guest path the program opens).',
      details: { field: d.field, path: h, target, source: recipe.source },
    });
  }
  const info = real ? await stat(real) : undefined;
  if (!info?.isFile()) {
    throw new UniproveError(info ? 'E_NOT_REGULAR_FILE' : 'E_NOT_FOUND', {
      message: `${d.field}: ${h} is a symlink to ${target}, which ${info ? 'is not a regular file' : 'does not exist'}`,
      hint: 'Links inside a "dirs" folder must lead to regular files in it; remove the link or fix its target.',
      details: { field: d.field, path: h, target, source: recipe.source },
    });
  }
  const path = checkGuestPath(g, h);
  const to = `${where.guestTop}/${relative(where.top, real as string)}`;
  claimPath(recipe, found.claims, path, c);
  found.hostToGuest.set(to, real as string);
  found.files.push({
    path,
    chain: [path, to],
    reasons: ['explicit'],
    parents: d.reason ? [d.reason] : [],
    isElf: false,
  });
}

/** The machine each recipe `arch` names, as ELF e_machine. */
const ARCH_MACHINES = { x86_64: EM_X86_64, aarch64: EM_AARCH64 } as const;

/** Refuse a binary that cannot be the program of a Nanos image for the recipe's machine (exit 2, with what it is). */
async function checkProgramElf(recipe: ResolvedRecipe): Promise<ElfInfo> {
  const info = await parseElf(recipe.binary);
  const arch = recipe.arch;
  const fits =
    info.class === 64 &&
    info.endianness === 'little' &&
    info.machine === ARCH_MACHINES[arch] &&
    (info.type === 'exec' || info.type === 'dyn');
  if (fits) return info;
  const found = `a ${info.class}-bit ${info.endianness}-endian ELF ${info.type === 'rel' ? 'object file' : info.type === 'core' ? 'core dump' : info.type === 'exec' || info.isPie ? 'executable' : 'shared object'} for ${info.machineName}`;
  throw new UniproveError('E_ELF_UNSUPPORTED', {
    message: `binary: ${recipe.binary} is ${found}; a Nanos image for ${arch} runs a 64-bit little-endian executable for ${arch}`,
    hint:
      info.machine !== ARCH_MACHINES[arch] && info.class === 64
        ? `Build the prover for ${arch} (e.g. cargo build --target ${arch}-unknown-linux-gnu), or set "arch" in the recipe to the machine it is for.`
        : 'Point "binary" at the prover executable (a 64-bit ELF program); the file may be damaged: build or copy it again.',
    details: { path: recipe.binary, class: info.class, machine: info.machineName, type: info.type, arch },
  });
}

/** True when two host paths lead to one file (links followed). */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return Boolean(x && y && x.dev === y.dev && x.ino === y.ino);
}

/** What the package already holds at a path, for the error that refuses a recipe file there. */
function describeEntry(entry: PlanEntry): string {
  const why = entry.reasons.join(', ');
  const parents = entry.parents.length ? `, for ${entry.parents.slice(0, 2).join(', ')}` : '';
  return `${entry.type === 'symlink' ? 'a link' : 'a file'} the package found itself (${why}${parents})`;
}

/** Discovery for the recipe, or the last one when its inputs are unchanged (same key, same uniprove). */
async function discoverOrReuse(
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

/** The Ops volume mounts of the recipe's parameter sets: volume name to guest path (`:ro` when read-only). */
async function volumeMounts(
  recipe: ResolvedRecipe,
  options: PackageOptions,
): Promise<Record<string, string>> {
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
  return mounts;
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

/** The Ops volume name uniprove uses for a parameter set. */
export function defaultVolumeName(set: string): string {
  return `uniprove-${basename(set, '.json')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')}`;
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
