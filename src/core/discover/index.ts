/**
 * Discovery: the static ELF closure of a program, plus what it opens at run
 * time (libraries it dlopens, data files it reads), seen under strace or in
 * an strace log the user already has. Library families are expanded so that
 * configs which name libraries bring those libraries along.
 */

import { rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type ElfInfo, parseElf } from '../elf/parse.js';
import {
  addToClosure,
  type ClosureFile,
  type ClosureResult,
  libraryResolverFor,
  type ResolveOptions,
  resolveClosure,
} from '../elf/resolve.js';
import { isUniproveError } from '../errors.js';
import { makeTempDir } from '../fs.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import { addReasons } from '../reasons.js';
import { buildProbeLingerLibrary, checkLingerMs, lingerBlocker, lingerEnv } from '../strace/linger.js';
import { parseStraceLog } from '../strace/parse.js';
import { type ProbeSyscalls, runProbe } from '../strace/probe.js';
import type { TraceResult } from '../strace/types.js';
import { expandFamilies, type FamilyName, triggeredFamilies } from './families.js';
import { listedFolders } from './listed.js';
import { runsProgramsWarnings } from './programs.js';
import { symlinkChain } from './symlinks.js';
import type { DiscoveredFile, DiscoverResult, DiscoverWarning, Reason } from './types.js';

export type { DiscoveredFile, DiscoverResult, DiscoverWarning, Reason } from './types.js';

/**
 * The version of what discovery makes of the same inputs, for caches of its results (a package's state): raised
 * when a change gives another closure or other warnings. 2: programs the probe runs are reported and no longer
 * packaged; listed folders are traced.
 */
export const DISCOVERY_FORMAT = 2;

export interface DiscoverOptions {
  /** The program (absolute host path, or a guest path under `root`). */
  binary: string;
  /** Arguments for the probe run. */
  args: string[];
  /** Environment added for the probe run. */
  env?: Record<string, string>;
  /** Folder the probe runs in. */
  cwd?: string;
  /**
   * A scratch tree holding copies of the recipe's own files (see package/probe-tree.ts): what the probe
   * opens there is already in the package, so it is no dependency; libraries it loads from there still
   * bring what they need.
   */
  ownTree?: string;
  /** Resolve libraries inside this tree (sysroot, unpacked image) instead of the host. */
  root?: string;
  /** Run the program under strace to see what it opens at run time (default true; never under a root). */
  probe?: boolean;
  timeoutMs?: number;
  /** Keep what the probe saw even when the program exits non-zero. */
  allowFailure?: boolean;
  /**
   * Which syscalls the probe traces (default `minimal`: opens, execs, cwd and process calls, the
   * least overhead); `full` also traces stat/access/readlink (files only checked for), slower.
   */
  syscalls?: ProbeSyscalls;
  /** Run the probe (strace and the program) on this one CPU: see ProbeOptions.cpu. */
  probeCpu?: number;
  /**
   * Keep the probed program alive this many milliseconds after it calls exit, so that threads still at work
   * run on and their opens are traced (native/probe-linger.c, preloaded into the probe only). 0: no linger.
   */
  lingerMs?: number;
  /** uniprove's cache folder, where the linger library is compiled once (default: a temp folder per probe). */
  cacheDir?: string;
  /** Analyse these strace logs (`-f` or `-ff` files) instead of running a probe. */
  fromLogs?: string[];
  /** Extra libraries: names resolved as DT_NEEDED would be, or paths. */
  libraries?: string[];
  /** Families to add whether or not the probe triggers them. */
  families?: FamilyName[];
  /**
   * Package whole each folder the program listed and read data files from (outside library and module folders);
   * default false: such a folder is a `listed-partly-packaged` warning naming the files left out.
   */
  includeListed?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

async function toDiscovered(
  file: ClosureFile,
  families: Map<string, string>,
  root: string,
): Promise<DiscoveredFile> {
  // The resolver's symlink list mixes folder links (/lib -> usr/lib); the chain follows file links only.
  const chain = await symlinkChain(file.path, root);
  const family = families.get(file.path);
  return {
    path: file.path,
    chain,
    reasons: [...file.reasons].sort(),
    parents: [...file.parents],
    ...(family ? { family } : {}),
    isElf: Boolean(file.elf),
  };
}

/** The ELF machine name of this host's processor, as parseElf names them. */
function hostMachine(): string {
  const names: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i386', riscv64: 'riscv' };
  return names[process.arch] ?? process.arch;
}

function knownPaths(result: ClosureResult): Set<string> {
  const known = new Set<string>();
  for (const f of result.files) {
    known.add(f.path);
    known.add(f.realPath);
    for (const s of f.symlinks) known.add(s);
  }
  return known;
}

const PYC = /^(.*)\/__pycache__\/([^/]+?)\.[^./]+(?:\.opt-[12])?\.pyc$/;

/** The source a `__pycache__` file was compiled from (PEP 3147), or undefined. */
function pycSource(path: string): string | undefined {
  const m = PYC.exec(path);
  return m ? `${m[1]}/${m[2]}.py` : undefined;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (st) => st.isFile(),
    () => false,
  );
}

/** A file to add to the closure, with the one reason and parent it was found by. */
type Addition = { path: string; reason: Reason; parent?: string };

/** What the probe's trace shows that is uniprove's own (the linger library): never a dependency. */
type OwnPath = (path: string) => boolean;

/**
 * The probe's environment with the linger library preloaded when a linger is asked for and can apply (a
 * warning says why not), and the test for the library's own paths.
 */
async function lingerSetup(
  options: DiscoverOptions,
  info: ElfInfo,
  scratch: string,
  warnings: DiscoverWarning[],
): Promise<{ env?: Record<string, string>; lingerMs?: number; own: OwnPath }> {
  const base = options.env ? { env: options.env } : {};
  const lingerMs = options.lingerMs ?? 0;
  if (lingerMs <= 0) return { ...base, own: () => false };
  const blocker = await lingerBlocker(options.binary, info);
  if (blocker) {
    warnings.push({
      code: 'probe-linger-unavailable',
      message: `the probe cannot linger ${lingerMs} ms after exit: ${blocker}; it runs without lingering, so files only threads still running at exit would open may be missed (list them in the recipe's files)`,
    });
    return { ...base, own: () => false };
  }
  const library = await buildProbeLingerLibrary({
    cacheDir: options.cacheDir ?? scratch,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    env: lingerEnv(options.env, library.path, lingerMs),
    lingerMs,
    own: (p) => p === library.path || p.startsWith(`${library.dir}/`),
  };
}

/** The probe's or the given logs' trace, with the probe's facts; warnings say why there is none. */
async function traceRuntime(
  options: DiscoverOptions,
  info: ElfInfo,
  root: string,
  warnings: DiscoverWarning[],
): Promise<{ trace?: TraceResult; probe?: DiscoverResult['probe']; own?: OwnPath }> {
  const signal = options.signal ? { signal: options.signal } : {};
  if (options.fromLogs?.length) {
    const logs = options.fromLogs.length === 1 ? (options.fromLogs[0] as string) : options.fromLogs;
    return { trace: await parseStraceLog(logs, { ...(options.cwd ? { cwd: options.cwd } : {}), ...signal }) };
  }
  if (options.probe === false) return {};
  if (info.machineName !== hostMachine()) {
    warnings.push({
      code: 'probe-skipped',
      message: `the program was not run: it is built for ${info.machineName} (${info.class}-bit), this host runs ${hostMachine()}; pass --from-log with an strace log captured where it runs`,
    });
    return {};
  }
  if (root !== '/') {
    warnings.push({
      code: 'probe-skipped',
      message: `the program was not run: its libraries come from ${root}, not this host; pass --from-log with an strace log captured where it runs`,
    });
    return {};
  }
  const dir = await makeTempDir('uniprove-probe-');
  try {
    (options.onProgress ?? noProgress)({
      kind: 'update',
      step: 'discover',
      detail: `probing ${basename(options.binary)} under strace`,
    });
    const linger = await lingerSetup(options, info, dir, warnings);
    const result = await runProbe({
      argv: [options.binary, ...options.args],
      logPath: join(dir, 'strace.log'),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(linger.env ? { env: linger.env } : {}),
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.allowFailure ? { allowFailure: true } : {}),
      ...(options.syscalls ? { syscalls: options.syscalls } : {}),
      ...(options.probeCpu !== undefined ? { cpu: options.probeCpu } : {}),
      ...signal,
    });
    const probe = {
      argv: [options.binary, ...options.args],
      exitCode: result.exitCode,
      durationMs: result.durationMs,
      ...(linger.lingerMs ? { lingerMs: linger.lingerMs } : {}),
    };
    if (result.exitCode !== 0) {
      warnings.push({
        code: 'probe-failed',
        message: `the probe exited with status ${result.exitCode}; what it opened before failing is kept`,
      });
    }
    return {
      trace: await parseStraceLog(result.logPath, { cwd: result.cwd, ...signal }),
      probe,
      own: linger.own,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Split what the trace opened into ELF objects (executed or dlopened) and data files. */
async function sortOpened(
  trace: TraceResult,
  binary: string,
  hostOf: (p: string) => string,
  inOwnTree: (p: string) => boolean,
  own: OwnPath,
): Promise<{ objects: Addition[]; dataFiles: Addition[] }> {
  const written = new Set(trace.written);
  const execs = new Set(trace.execs.map((e) => e.path));
  const objects: Addition[] = [];
  const dataFiles: Addition[] = [];
  const opened = [...trace.opened].sort((a, b) => a.firstLine - b.firstLine);
  for (const access of opened) {
    // What only the programs it ran opened (their own program file and libraries) could not run inside Nanos.
    if (access.onlyHelpers) continue;
    if (access.isDirectory || written.has(access.path) || access.path === binary || own(access.path))
      continue;
    let elf: ElfInfo | undefined;
    try {
      elf = await parseElf(hostOf(access.path));
    } catch (error) {
      // A directory opened without O_DIRECTORY (the default probe does not trace stat to tell).
      if (isUniproveError(error) && error.code === 'E_IS_DIRECTORY') continue;
      elf = undefined;
    }
    if (elf && (elf.type === 'dyn' || elf.type === 'exec')) {
      // A program it executed is a runtime file with its own closure; a library it opened was dlopened.
      objects.push({
        path: access.path,
        reason: execs.has(access.path) ? 'runtime-file' : 'dlopen',
        parent: binary,
      });
    } else if (!inOwnTree(access.path)) {
      dataFiles.push({ path: access.path, reason: 'runtime-file', parent: binary });
      // Python reads __pycache__/NAME.cpython-311.pyc only after a stat of NAME.py (which the
      // default probe does not trace), and ignores the .pyc when the source is gone.
      const source = pycSource(access.path);
      if (source && (await isFile(hostOf(source)))) {
        dataFiles.push({ path: source, reason: 'runtime-file', parent: binary });
      }
    }
  }
  return { objects, dataFiles };
}

/** Add what the trace shows the program opened: objects with their own closures, then data files. */
async function addTraced(
  closure: ClosureResult,
  sorted: { objects: Addition[]; dataFiles: Addition[] },
  resolveOptions: Omit<ResolveOptions, 'binaries'>,
): Promise<void> {
  // In the order they were opened, so a library pulled in by an earlier dlopen is elf-needed, not dlopen.
  let known = knownPaths(closure);
  for (const object of sorted.objects) {
    if (known.has(object.path)) continue;
    await addToClosure(closure, [object], resolveOptions);
    known = knownPaths(closure);
  }
  const data = sorted.dataFiles.filter((f) => !known.has(f.path));
  if (data.length) await addToClosure(closure, data, resolveOptions);
}

/**
 * Add the recipe's extra libraries and the library families (triggered by what the program touched,
 * or asked for); returns the family of each file a family brought.
 */
async function addLibrariesAndFamilies(
  closure: ClosureResult,
  options: DiscoverOptions,
  info: ElfInfo,
  root: string,
  resolveOptions: Omit<ResolveOptions, 'binaries'>,
  warnings: DiscoverWarning[],
): Promise<Map<string, string>> {
  const families = new Set<FamilyName>(options.families ?? []);
  for (const f of triggeredFamilies(closure.files.map((f) => f.path))) families.add(f);
  const familyOf = new Map<string, string>();
  const extras: Addition[] = [];
  const resolveFound = libraryResolverFor(options.binary, info, resolveOptions);
  const resolveName = async (name: string) => (await resolveFound(name))?.path;
  for (const lib of options.libraries ?? []) {
    const path = lib.includes('/') ? lib : await resolveName(lib);
    if (path) extras.push({ path, reason: 'explicit', parent: options.binary });
    else
      warnings.push({
        code: 'unresolved-library',
        message: `library ${lib} (from the recipe) was not found`,
        path: lib,
      });
  }
  if (families.size) {
    const triplet = info.machineName === 'x86_64' ? 'x86_64-linux-gnu' : `${info.machineName}-linux-gnu`;
    const expanded = await expandFamilies(families, {
      root: root === '/' ? '' : root,
      resolveLibrary: resolveName,
      triplet,
    });
    const known = knownPaths(closure);
    for (const f of expanded.files) {
      familyOf.set(f.path, f.family);
      if (!known.has(f.path))
        extras.push({ path: f.path, reason: 'config-family', parent: f.parent ?? `family:${f.family}` });
      else {
        const existing = closure.files.find((c) => c.path === f.path);
        if (existing) addReasons(existing, ['config-family']);
      }
    }
    warnings.push(...expanded.warnings);
  }
  if (extras.length) await addToClosure(closure, extras, resolveOptions);
  return familyOf;
}

/** Find every file `options.binary` needs, each with its reasons and parents. */
export async function discover(options: DiscoverOptions): Promise<DiscoverResult> {
  const onProgress = options.onProgress ?? noProgress;
  const root = options.root ?? '/';
  const ownTree = options.ownTree?.replace(/\/+$/, '');
  const inOwnTree = (p: string) => ownTree !== undefined && p.startsWith(`${ownTree}/`);
  const ownToGuest = (p: string) => (ownTree !== undefined && inOwnTree(p) ? p.slice(ownTree.length) : p);
  const resolveOptions = { root, ...(options.cwd ? { cwd: options.cwd } : {}) };
  if (options.lingerMs !== undefined) checkLingerMs(options.lingerMs);
  // Fails with a typed error (not ELF, truncated, a directory...) before anything runs.
  const info = await parseElf(root === '/' ? options.binary : join(root, options.binary));
  const closure = await resolveClosure({ binaries: [options.binary], ...resolveOptions });
  const warnings: DiscoverWarning[] = closure.warnings.map((w) => ({
    code: w.code,
    message: w.message,
    ...(w.path ? { path: w.path } : {}),
    ...(w.parent ? { parent: w.parent } : {}),
  }));
  // The closure's later warnings (from what the probe and the families added) are taken from here on.
  const staticWarnings = closure.warnings.length;
  onProgress({ kind: 'update', step: 'discover', detail: `ELF closure: ${closure.files.length} files` });

  const { trace, probe, own } = await traceRuntime(options, info, root, warnings);
  if (trace) {
    for (const w of trace.warnings)
      warnings.push({ code: `trace-${w.kind}`, message: `${w.message} (${w.count}×)` });
    const hostOf = (p: string) => (root === '/' ? p : join(root, p));
    const sorted = await sortOpened(trace, options.binary, hostOf, inOwnTree, own ?? (() => false));
    await addTraced(closure, sorted, resolveOptions);
    warnings.push(...runsProgramsWarnings(trace.spawns));
    const listed = await listedFolders({
      trace,
      files: closure.files,
      binary: options.binary,
      hostOf,
      inOwnTree,
      include: options.includeListed ?? false,
    });
    warnings.push(...listed.warnings);
    if (listed.additions.length) await addToClosure(closure, listed.additions, resolveOptions);
  }
  const familyOf = await addLibrariesAndFamilies(closure, options, info, root, resolveOptions, warnings);
  for (const w of closure.warnings.slice(staticWarnings)) {
    if (!warnings.some((x) => x.message === w.message)) {
      warnings.push({
        code: w.code,
        message: w.message,
        ...(w.path ? { path: w.path } : {}),
        ...(w.parent ? { parent: w.parent } : {}),
      });
    }
  }

  // The recipe's own files are not dependencies; what they pulled in names them by their guest paths.
  const kept = closure.files
    .filter((f) => !inOwnTree(f.path))
    .map((f) => ({ ...f, parents: f.parents.map(ownToGuest) }));
  const files = (await Promise.all(kept.map((f) => toDiscovered(f, familyOf, root)))).sort((a, b) =>
    a.path < b.path ? -1 : 1,
  );
  return { binary: options.binary, root, files, warnings, ...(probe ? { probe } : {}) };
}
