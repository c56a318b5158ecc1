/**
 * The shared-library closure of programs, found as glibc's ld.so finds it
 * (elf/dl-load.c, _dl_map_object), without running anything.
 *
 * For each DT_NEEDED: an already-loaded object with that name or SONAME;
 * a name with a slash as is; else DT_RPATH of the object and of its loaders up
 * to the executable (only when the object has no DT_RUNPATH), LD_LIBRARY_PATH,
 * DT_RUNPATH of the object, ld.so.cache, then the default dirs. Each directory
 * is searched in its glibc-hwcaps subdirectories first. Candidates of another
 * ELF class or machine are skipped. Objects are loaded breadth-first, and the
 * same file reached under two names is one object, as in glibc.
 */
import { posix } from 'node:path';
import { isUniproveError, UniproveError } from '../errors.js';
import { addReasons, type FileReasons, type Reason } from '../reasons.js';
import { acceptedCacheFlags, type LdCache, lookupLdCache, readLdSoCache } from './ldcache.js';
import { DF_1_NODEFLIB, type ElfInfo, EM_386, EM_AARCH64, EM_X86_64, parseElf } from './parse.js';
import { guestAbsolute, hostPath, type LinkCache, realpathInRoot } from './rootfs.js';

/** Why a file is in a closure: the one Reason vocabulary (the resolver gives all but the plan's symlink reasons). */
export type ClosureReason = Reason;

/** How to resolve a closure. */
export interface ResolveOptions {
  /** Programs (or libraries) to start from: guest paths, absolute or relative to `cwd`. */
  binaries: string[];
  /** Resolve inside this host folder (a sysroot or unpacked image); default '/' (the host). */
  root?: string;
  /** Guest folder that relative paths (binaries, relative RPATH entries) start from; default '/' under a root, else the process's cwd. */
  cwd?: string;
  /** LD_LIBRARY_PATH entries, in order. */
  ldLibraryPath?: string[];
  /** $PLATFORM; default from the binary's machine ('x86_64', 'aarch64', 'i686', ...). */
  platform?: string;
  /** $LIB; default 'lib/<multiarch triplet>' on Debian-style trees, 'lib64' or 'lib' on others. */
  lib?: string;
  /** glibc-hwcaps subdirectories to probe, best first; default all of the arch's (x86-64-v4, -v3, -v2 on x86_64). */
  hwcaps?: string[];
  /** The default search dirs; default glibc's for the arch and tree layout (Debian multiarch or lib64). */
  systemDirs?: string[];
  /** Guest path of ld.so.cache, or false to ignore it; default /etc/ld.so.cache. */
  ldSoCache?: string | false;
}

/** One file of a closure and why it is there (`path` as found, e.g. /lib/x86_64-linux-gnu/libc.so.6). */
export interface ClosureFile extends FileReasons {
  /** `path` with every symlink resolved inside the root. */
  realPath: string;
  /** The symlinks followed from `path` to `realPath`, in order (guest paths), folder links included. */
  symlinks: string[];
  soname?: string;
  /** The DT_NEEDED name that found it first. */
  needed?: string;
  /** ELF class and machine, when the file is an ELF object. */
  elf?: { class: 32 | 64; machine: string };
}

/** Something found while resolving that did not stop the work. */
export interface ClosureWarning {
  code:
    | 'unresolved-needed'
    | 'unresolved-interp'
    | 'bad-ld-cache'
    | 'wrong-class'
    | 'wrong-machine'
    | 'invalid-library'
    | 'symlink-escape'
    | 'not-found';
  message: string;
  /** The file (or library name) the warning is about. */
  path?: string;
  /** The object that asked for it. */
  parent?: string;
}

/** The closure of some programs. */
export interface ClosureResult {
  files: ClosureFile[];
  warnings: ClosureWarning[];
}

/** An object loaded into one program's link map. */
export interface LoadedObject {
  /** Guest path as found (glibc's l_name). */
  path: string;
  realPath: string;
  symlinks: string[];
  info: ElfInfo;
  /** The object that caused this one to be loaded (glibc's l_loader); undefined for the executable. */
  loader?: LoadedObject;
  /** Names this object answers to: DT_NEEDED names that found it, its SONAME, its path. */
  names: Set<string>;
}

/** A successful single-library lookup. */
export interface FoundLibrary {
  path: string;
  realPath: string;
  symlinks: string[];
  info: ElfInfo;
}

/** Shared state of one resolution: caches of stats, parses, the ld.so.cache. Make one per call. */
export interface ResolveContext {
  root: string;
  cwd: string;
  options: ResolveOptions;
  links: LinkCache;
  elf: Map<string, Promise<ElfInfo | UniproveError>>;
  ldCache?: Promise<LdCache>;
  layouts: Map<string, Promise<MachineLayout>>;
  warnings: ClosureWarning[];
}

/** Per-arch defaults: $PLATFORM, $LIB, hwcaps subdirs and default search dirs. */
export interface MachineLayout {
  platform: string;
  lib: string;
  hwcaps: string[];
  systemDirs: string[];
}

/** Make the shared state for resolving against `options.root`. */
export function createResolveContext(
  options: Omit<ResolveOptions, 'binaries'> & { binaries?: string[] },
): ResolveContext {
  const root = options.root && options.root !== '/' ? posix.resolve(options.root) : '/';
  return {
    root,
    cwd: options.cwd ?? (root === '/' ? process.cwd() : '/'),
    options: { binaries: [], ...options },
    links: new Map(),
    elf: new Map(),
    layouts: new Map(),
    warnings: [],
  };
}

/** Resolve the whole closure (interpreter and DT_NEEDED, recursively) of `options.binaries`. */
export async function resolveClosure(options: ResolveOptions): Promise<ClosureResult> {
  const ctx = createResolveContext(options);
  const result: ClosureResult = { files: [], warnings: [] };
  const collector = new Collector(result);
  // Each program is its own process with its own link map; they share only caches.
  const programs = await Promise.all(
    options.binaries.map((binary) => loadProgram(ctx, guestAbsolute(binary, ctx.cwd))),
  );
  for (const events of programs) collector.apply(events);
  collector.warn(ctx.warnings);
  return result;
}

/**
 * Extend `result` with objects found at run time (dlopen, strace): each is
 * added with its reason and parent, and ELF objects pull in their own
 * DT_NEEDED closure, satisfied first by what the closure already holds.
 */
export async function addToClosure(
  result: ClosureResult,
  objects: { path: string; reason: ClosureReason; parent?: string }[],
  options: Omit<ResolveOptions, 'binaries'> = {},
): Promise<ClosureResult> {
  const ctx = createResolveContext(options);
  const collector = new Collector(result);
  const all = await Promise.all(
    objects.map(async (object) => {
      const path = guestAbsolute(object.path, ctx.cwd);
      const events: LoadEvent[] = [];
      const found = await realpathInRoot(ctx.root, path, ctx.links);
      if (!found) {
        ctx.warnings.push({
          code: 'not-found',
          message: `${path} does not exist${ctx.root === '/' ? '' : ` under ${ctx.root}`}`,
          path,
          ...(object.parent ? { parent: object.parent } : {}),
        });
        return events;
      }
      noteEscape(ctx, path, found.escapedVia);
      const info = found.kind === 'file' ? await parseCached(ctx, found.realPath) : undefined;
      const elf = info && !isUniproveError(info) ? info : undefined;
      if (info && isUniproveError(info) && info.code !== 'E_NOT_ELF') {
        ctx.warnings.push({ code: 'invalid-library', message: info.message, path });
      }
      events.push({
        path,
        realPath: found.realPath,
        symlinks: found.symlinks,
        reason: object.reason,
        ...(object.parent ? { parent: object.parent } : {}),
        ...(elf ? { info: elf } : {}),
      });
      if (!elf?.dynamic) return events;
      // The parent (when an ELF object of the closure) is the loader, for its RPATH.
      let loader: LoadedObject | undefined;
      const parentFile = object.parent ? result.files.find((f) => f.path === object.parent) : undefined;
      if (parentFile?.elf) {
        const parentInfo = await parseCached(ctx, parentFile.realPath);
        if (!isUniproveError(parentInfo)) {
          loader = { ...parentFile, info: parentInfo, names: new Set([parentFile.path]) };
        }
      }
      const self: LoadedObject = {
        path,
        realPath: found.realPath,
        symlinks: found.symlinks,
        info: elf,
        names: new Set([path]),
        ...(loader ? { loader } : {}),
      };
      const seed: LoadedObject[] = [];
      for (const f of result.files) {
        if (!f.elf) continue;
        const names = new Set([f.path]);
        if (f.soname) names.add(f.soname);
        if (f.needed) names.add(f.needed);
        const fi = await parseCached(ctx, f.realPath);
        if (!isUniproveError(fi))
          seed.push({ path: f.path, realPath: f.realPath, symlinks: f.symlinks, info: fi, names });
      }
      await loadDependencies(ctx, self, seed, events);
      return events;
    }),
  );
  for (const events of all) collector.apply(events);
  collector.warn(ctx.warnings);
  return result;
}

/**
 * Resolve one library name for `requester` as ld.so would (without the
 * already-loaded check): returns the file found, or undefined. Skipped
 * candidates are reported in `ctx.warnings`.
 */
export async function resolveLibrary(
  name: string,
  requester: LoadedObject,
  ctx: ResolveContext,
): Promise<FoundLibrary | undefined> {
  const layout = await layoutFor(ctx, requester.info);
  const expanded = name.includes('$') ? expandDst(name, requester, layout) : name;
  if (expanded === undefined) return undefined;
  if (expanded.includes('/')) {
    const probe = await probeFile(ctx, guestAbsolute(expanded, ctx.cwd), requester);
    return probe.found;
  }
  const tryDirs = async (dirs: string[]): Promise<FoundLibrary | 'stop' | undefined> => {
    for (const dir of dirs) {
      for (const sub of [...layout.hwcaps.map((h) => `glibc-hwcaps/${h}/`), '']) {
        const candidate = posix.join(dir, sub, expanded);
        const probe = await probeFile(ctx, candidate, requester);
        if (probe.found) return probe.found;
        if (probe.fatal) return 'stop';
      }
    }
    return undefined;
  };
  const pick = (r: FoundLibrary | 'stop' | undefined): FoundLibrary | undefined | null =>
    r === 'stop' ? null : r;

  // 1. DT_RPATH of the object and its loaders, then of the executable, unless the object has DT_RUNPATH.
  if (requester.info.runpath.length === 0) {
    let main: LoadedObject = requester;
    while (main.loader) main = main.loader;
    const chain: LoadedObject[] = [];
    for (let l: LoadedObject | undefined = requester; l; l = l.loader) chain.push(l);
    if (!chain.includes(main)) chain.push(main);
    for (const l of chain) {
      if (l.info.runpath.length > 0 || l.info.rpath.length === 0) continue;
      const r = pick(await tryDirs(expandPathList(l.info.rpath, l, await layoutFor(ctx, l.info), ctx)));
      if (r !== undefined) return r ?? undefined;
    }
  }
  // 2. LD_LIBRARY_PATH ($ORIGIN there is the executable's).
  if (ctx.options.ldLibraryPath?.length) {
    let main: LoadedObject = requester;
    while (main.loader) main = main.loader;
    const r = pick(await tryDirs(expandPathList(ctx.options.ldLibraryPath, main, layout, ctx)));
    if (r !== undefined) return r ?? undefined;
  }
  // 3. DT_RUNPATH of the object itself.
  if (requester.info.runpath.length > 0) {
    const r = pick(await tryDirs(expandPathList(requester.info.runpath, requester, layout, ctx)));
    if (r !== undefined) return r ?? undefined;
  }
  const nodeflib = (requester.info.flags1 & DF_1_NODEFLIB) !== 0;
  // 4. ld.so.cache.
  if (ctx.options.ldSoCache !== false) {
    const cache = await loadLdCache(ctx);
    const accepted = acceptedCacheFlags(requester.info.machine, requester.info.class, requester.info.flags);
    const cached = lookupLdCache(cache, expanded, accepted, layout.hwcaps);
    const inSystemDir = cached !== undefined && layout.systemDirs.some((d) => posix.dirname(cached) === d);
    if (cached !== undefined && !(nodeflib && inSystemDir)) {
      const probe = await probeFile(ctx, cached, requester);
      if (probe.found) return probe.found;
      if (probe.fatal) return undefined;
    }
  }
  // 5. The default dirs.
  if (!nodeflib) return pick(await tryDirs(layout.systemDirs)) ?? undefined;
  return undefined;
}

interface LoadEvent {
  path: string;
  realPath: string;
  symlinks: string[];
  reason: ClosureReason;
  parent?: string;
  needed?: string;
  info?: ElfInfo;
}

/** Load one program: its interpreter, then its dependencies breadth-first. */
async function loadProgram(ctx: ResolveContext, path: string): Promise<LoadEvent[]> {
  const found = await realpathInRoot(ctx.root, path, ctx.links);
  if (!found) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `${path} does not exist${ctx.root === '/' ? '' : ` under ${ctx.root}`}`,
      hint: 'Check the path of the program to package.',
      details: { path, root: ctx.root },
    });
  }
  noteEscape(ctx, path, found.escapedVia);
  if (found.kind === 'directory') {
    throw new UniproveError('E_IS_DIRECTORY', {
      message: `${path} is a directory, not a program`,
      hint: 'Pass the program file itself.',
      details: { path },
    });
  }
  const info = await parseCached(ctx, found.realPath);
  if (isUniproveError(info)) {
    throw new UniproveError(info.code, {
      message: info.message.replace(hostPath(ctx.root, found.realPath), path),
      ...(info.hint ? { hint: info.hint } : {}),
      cause: info,
      details: { ...info.details, path },
    });
  }
  const main: LoadedObject = {
    path,
    realPath: found.realPath,
    symlinks: found.symlinks,
    info,
    names: new Set(info.soname ? [info.soname] : []),
  };
  const events: LoadEvent[] = [
    { path, realPath: found.realPath, symlinks: found.symlinks, reason: 'explicit', info },
  ];
  const loaded: LoadedObject[] = [main];
  if (info.interp) {
    const interp = await probeFile(ctx, guestAbsolute(info.interp, '/'), main);
    if (interp.found) {
      const names = new Set([info.interp, interp.found.path]);
      if (interp.found.info.soname) names.add(interp.found.info.soname);
      loaded.push({ ...interp.found, names });
      events.push({ ...interp.found, reason: 'interp', parent: path });
    } else {
      ctx.warnings.push({
        code: 'unresolved-interp',
        message: `${path} asks for the program interpreter ${info.interp}, which was not found`,
        path: info.interp,
        parent: path,
      });
    }
  }
  if (info.dynamic) await loadDependencies(ctx, main, loaded, events);
  return events;
}

/** Breadth-first DT_NEEDED loading from `start`, as _dl_map_object_deps does. */
async function loadDependencies(
  ctx: ResolveContext,
  start: LoadedObject,
  loaded: LoadedObject[],
  events: LoadEvent[],
): Promise<void> {
  if (!loaded.includes(start)) loaded.push(start);
  const queue: LoadedObject[] = [start];
  const matchName = (name: string) => loaded.find((l) => l.names.has(name) || l.path === name);
  while (queue.length > 0) {
    const object = queue.shift()!;
    // Search for all names not yet loaded at once; apply the answers in DT_NEEDED order.
    const searches = object.info.needed.map((name) =>
      matchName(name) ? undefined : resolveLibrary(name, object, ctx),
    );
    for (const [i, name] of object.info.needed.entries()) {
      let target = matchName(name);
      if (!target) {
        const found = await searches[i];
        if (!found) {
          ctx.warnings.push({
            code: 'unresolved-needed',
            message: `${name}, needed by ${object.path}, was not found`,
            path: name,
            parent: object.path,
          });
          continue;
        }
        target = loaded.find((l) => l.realPath === found.realPath);
        if (target) target.names.add(name);
        else {
          target = { ...found, loader: object, names: new Set([name]) };
          if (found.info.soname) target.names.add(found.info.soname);
          loaded.push(target);
          queue.push(target);
        }
      }
      events.push({
        path: target.path,
        realPath: target.realPath,
        symlinks: target.symlinks,
        reason: 'elf-needed',
        parent: object.path,
        needed: name,
        info: target.info,
      });
    }
  }
}

interface Probe {
  found?: FoundLibrary;
  /** glibc stops the whole search on a candidate that exists but is not a loadable ELF object. */
  fatal?: boolean;
}

/** Check a candidate file as glibc's open_verify does. */
async function probeFile(ctx: ResolveContext, path: string, requester: LoadedObject): Promise<Probe> {
  const found = await realpathInRoot(ctx.root, path, ctx.links);
  if (!found) return {};
  noteEscape(ctx, path, found.escapedVia);
  const info = await parseCached(ctx, found.realPath);
  if (isUniproveError(info)) {
    ctx.warnings.push({
      code: 'invalid-library',
      message: `${path} (wanted by ${requester.path}) is not a loadable ELF object: ${info.message}`,
      path,
      parent: requester.path,
    });
    return { fatal: true };
  }
  const want = requester.info;
  if (info.class !== want.class) {
    ctx.warnings.push({
      code: 'wrong-class',
      message: `skipped ${path}: ELFCLASS${info.class}, but ${requester.path} is ELFCLASS${want.class}`,
      path,
      parent: requester.path,
    });
    return {};
  }
  if (info.machine !== want.machine) {
    ctx.warnings.push({
      code: 'wrong-machine',
      message: `skipped ${path}: built for ${info.machineName}, but ${requester.path} is ${want.machineName}`,
      path,
      parent: requester.path,
    });
    return {};
  }
  if (info.endianness !== want.endianness || (info.type !== 'dyn' && info.type !== 'exec')) {
    ctx.warnings.push({
      code: 'invalid-library',
      message: `${path} (wanted by ${requester.path}) cannot be loaded: ${info.endianness}-endian ${info.type} object`,
      path,
      parent: requester.path,
    });
    return { fatal: true };
  }
  return { found: { path, realPath: found.realPath, symlinks: found.symlinks, info } };
}

function parseCached(ctx: ResolveContext, realPath: string): Promise<ElfInfo | UniproveError> {
  let hit = ctx.elf.get(realPath);
  if (!hit) {
    hit = parseElf(hostPath(ctx.root, realPath)).then(
      (info) => ({ ...info, path: realPath }),
      (error: unknown) => {
        if (isUniproveError(error)) return error;
        return new UniproveError('E_NOT_ELF', {
          message: `cannot read ${realPath}: ${(error as Error).message}`,
          cause: error,
          details: { path: realPath },
        });
      },
    );
    ctx.elf.set(realPath, hit);
  }
  return hit;
}

function loadLdCache(ctx: ResolveContext): Promise<LdCache> {
  if (!ctx.ldCache) {
    const guest = typeof ctx.options.ldSoCache === 'string' ? ctx.options.ldSoCache : '/etc/ld.so.cache';
    ctx.ldCache = (async () => {
      const found = await realpathInRoot(ctx.root, guest, ctx.links);
      if (!found) return { path: guest, format: 'none' as const, entries: [], problems: [] };
      const cache = await readLdSoCache(hostPath(ctx.root, found.realPath));
      for (const problem of cache.problems) {
        ctx.warnings.push({
          code: 'bad-ld-cache',
          message: problem.replace(hostPath(ctx.root, found.realPath), guest),
          path: guest,
        });
      }
      return cache;
    })();
  }
  return ctx.ldCache;
}

function noteEscape(ctx: ResolveContext, path: string, via: string | undefined): void {
  if (via === undefined) return;
  ctx.warnings.push({
    code: 'symlink-escape',
    message: `${path}: the symlink ${via} points above the root ${ctx.root}; it was resolved as if at the root's top`,
    path,
  });
}

/** Debian multiarch triplet, $PLATFORM and glibc-hwcaps subdirs of a machine. */
function archOf(info: ElfInfo): { triplet?: string; platform: string; hwcaps: string[] } {
  const le = info.endianness === 'little';
  switch (info.machine) {
    case EM_X86_64:
      return info.class === 64
        ? { triplet: 'x86_64-linux-gnu', platform: 'x86_64', hwcaps: ['x86-64-v4', 'x86-64-v3', 'x86-64-v2'] }
        : { triplet: 'x86_64-linux-gnux32', platform: 'x86_64', hwcaps: [] };
    case EM_386:
      return { triplet: 'i386-linux-gnu', platform: 'i686', hwcaps: [] };
    case EM_AARCH64:
      return { triplet: le ? 'aarch64-linux-gnu' : 'aarch64_be-linux-gnu', platform: 'aarch64', hwcaps: [] };
    case 40:
      return {
        triplet: info.flags & 0x400 ? 'arm-linux-gnueabihf' : 'arm-linux-gnueabi',
        platform: 'v7l',
        hwcaps: [],
      };
    case 21:
      return le
        ? { triplet: 'powerpc64le-linux-gnu', platform: 'power9', hwcaps: ['power10', 'power9'] }
        : { triplet: 'powerpc64-linux-gnu', platform: 'power8', hwcaps: ['power10', 'power9'] };
    case 22:
      return info.class === 64
        ? { triplet: 's390x-linux-gnu', platform: 'z13', hwcaps: ['z16', 'z15', 'z14', 'z13'] }
        : { platform: 's390', hwcaps: [] };
    case 243:
      return {
        triplet: info.class === 64 ? 'riscv64-linux-gnu' : 'riscv32-linux-gnu',
        platform: 'riscv',
        hwcaps: [],
      };
    case 258:
      return { triplet: 'loongarch64-linux-gnu', platform: 'loongarch', hwcaps: [] };
    default:
      return { platform: info.machineName, hwcaps: [] };
  }
}

/** $PLATFORM, $LIB, hwcaps and default dirs for this object's arch, honouring the options. */
function layoutFor(ctx: ResolveContext, info: ElfInfo): Promise<MachineLayout> {
  const key = `${info.machine}/${info.class}/${info.endianness}/${info.flags & 0x400}`;
  let hit = ctx.layouts.get(key);
  if (!hit) {
    hit = (async () => {
      const arch = archOf(info);
      const o = ctx.options;
      let multiarch = false;
      if (arch.triplet) {
        // Debian-style trees have /usr/lib/<triplet>; others (Fedora, Alpine with glibc) use lib64 or lib.
        const probes = await Promise.all(
          [`/usr/lib/${arch.triplet}`, `/lib/${arch.triplet}`].map((d) =>
            realpathInRoot(ctx.root, d, ctx.links),
          ),
        );
        multiarch = probes.some((p) => p?.kind === 'directory');
      }
      const libdir =
        info.class === 64 && info.machine !== EM_AARCH64 && info.machine !== 243 ? 'lib64' : 'lib';
      const defaultDirs = multiarch
        ? [`/lib/${arch.triplet}`, `/usr/lib/${arch.triplet}`, '/lib', '/usr/lib']
        : libdir === 'lib64'
          ? ['/lib64', '/usr/lib64']
          : ['/lib', '/usr/lib'];
      return {
        platform: o.platform ?? arch.platform,
        lib: o.lib ?? (multiarch ? `lib/${arch.triplet}` : libdir),
        hwcaps: o.hwcaps ?? arch.hwcaps,
        systemDirs: o.systemDirs ?? defaultDirs,
      };
    })();
    ctx.layouts.set(key, hit);
  }
  return hit;
}

/** Expand $ORIGIN, $LIB and $PLATFORM; undefined when the path must be dropped. */
function expandDst(value: string, object: LoadedObject, layout: MachineLayout): string | undefined {
  let dropped = false;
  const out = value.replace(
    /\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/g,
    (_m, a, b) => {
      const token = a ?? b;
      if (token === 'ORIGIN') {
        // glibc: the executable's origin is its real location; a library's is the folder it was found in.
        const base = object.loader === undefined ? object.realPath : object.path;
        return posix.dirname(base);
      }
      if (token === 'LIB') return layout.lib;
      if (token === 'PLATFORM') return layout.platform;
      dropped = true;
      return '';
    },
  );
  return dropped ? undefined : out;
}

/** Turn RPATH/RUNPATH/LD_LIBRARY_PATH entries into absolute guest folders. */
function expandPathList(
  entries: string[],
  object: LoadedObject,
  layout: MachineLayout,
  ctx: ResolveContext,
): string[] {
  const dirs: string[] = [];
  for (const entry of entries) {
    const expanded = entry === '' ? '' : expandDst(entry, object, layout);
    if (expanded === undefined) continue;
    if (entry !== '' && expanded === '') continue;
    const dir = guestAbsolute(expanded === '' ? '.' : expanded, ctx.cwd);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

/** Folds load events from several programs into one list of files keyed by path. */
class Collector {
  private readonly byPath = new Map<string, ClosureFile>();
  private readonly warningKeys = new Set<string>();

  constructor(private readonly result: ClosureResult) {
    for (const f of result.files) this.byPath.set(f.path, f);
    for (const w of result.warnings) this.warningKeys.add(warningKey(w));
  }

  apply(events: LoadEvent[]): void {
    for (const e of events) {
      let file = this.byPath.get(e.path);
      if (!file) {
        file = { path: e.path, realPath: e.realPath, symlinks: e.symlinks, reasons: [], parents: [] };
        if (e.info?.soname) file.soname = e.info.soname;
        if (e.needed) file.needed = e.needed;
        if (e.info) file.elf = { class: e.info.class, machine: e.info.machineName };
        this.byPath.set(e.path, file);
        this.result.files.push(file);
      }
      addReasons(file, [e.reason], e.parent === undefined ? [] : [e.parent]);
    }
  }

  warn(warnings: ClosureWarning[]): void {
    for (const w of warnings) {
      const key = warningKey(w);
      if (this.warningKeys.has(key)) continue;
      this.warningKeys.add(key);
      this.result.warnings.push(w);
    }
  }
}

function warningKey(w: ClosureWarning): string {
  return `${w.code}\0${w.path ?? ''}\0${w.parent ?? ''}`;
}

/**
 * Resolve library names as `binary` itself would (its RPATH/RUNPATH, $ORIGIN, the cache,
 * the default folders): for dlopen-style lookups on behalf of a program.
 */
export function libraryResolverFor(
  binary: string,
  info: ElfInfo,
  options: Omit<ResolveOptions, 'binaries'> = {},
): (name: string) => Promise<FoundLibrary | undefined> {
  const ctx = createResolveContext({ ...options, binaries: [binary] });
  const requester: LoadedObject = {
    path: binary,
    realPath: binary,
    symlinks: [],
    info,
    names: new Set([binary]),
  };
  return (name) => resolveLibrary(name, requester, ctx);
}
