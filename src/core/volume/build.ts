/**
 * Ops volumes built from parameter sets: verified files laid out by hardlinks
 * from the cache, `ops volume create`, and a registry (name, UUID, set digest)
 * so the same set is built once and reused.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, lstat, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UniproveError } from '../errors.js';
import { parseJsonFile, withWriteErrors, writeJsonAtomic } from '../fs.js';
import { withLock } from '../lock.js';
import {
  type OpsOptions,
  type OpsVolume,
  opsVolumeCreate,
  opsVolumeDelete,
  opsVolumeList,
} from '../ops/volume.js';
import type { OnProgress } from '../progress.js';
import { type FetchParameterSetOptions, type FetchParameterSetResult, fetchParameterSet } from './fetch.js';
import { importFilecoinParameters, isFilecoinParameters } from './filecoin.js';
import {
  looksLikePath,
  type ResolvedParameterSet,
  readInputFile,
  resolveParameterSet,
  setFilePath,
} from './spec.js';

export interface LoadParameterSetOptions {
  /** Folder of named sets (the package's volumes/). */
  setsDir: string;
  /** Folder relative paths are resolved against. */
  cwd?: string;
  /** For parameters.json input: the sector size in bytes. */
  sectorSize?: number;
  /** For parameters.json input: where files are downloaded from. */
  baseUrl?: string;
}

/** Load a set by name (volumes/<name>.json), by path, or import a rust-fil-proofs parameters.json. */
export async function loadParameterSet(
  ref: string,
  options: LoadParameterSetOptions,
): Promise<ResolvedParameterSet> {
  const byPath = looksLikePath(ref);
  const file = byPath ? resolve(options.cwd ?? '.', ref) : setFilePath(options.setsDir, ref);
  const text = await readInputFile(
    file,
    byPath ? 'parameter file' : `parameter set ${ref}:`,
    byPath
      ? 'Give a parameter set file or a rust-fil-proofs parameters.json.'
      : 'List the sets with `uniprove volume ls --sets`.',
  );
  const value = parseJsonFile(text, file);
  if (isFilecoinParameters(value)) {
    return importFilecoinParameters(value, file, {
      ...(options.sectorSize === undefined ? {} : { sectorSize: options.sectorSize }),
      ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      sourceFile: file,
    });
  }
  if (options.sectorSize !== undefined) {
    throw new UniproveError('E_USAGE', {
      message: `--sector-size applies to a rust-fil-proofs parameters.json, not to the parameter set ${file}`,
      hint: 'Drop --sector-size, or pass the parameters.json file.',
    });
  }
  return resolveParameterSet(value, file);
}

/** One volume uniprove built, as kept in <cache>/volumes/registry.json. */
export interface VolumeRecord {
  name: string;
  uuid: string;
  set: string;
  setDigest: string;
  mountPath: string;
  size: string;
  files: number;
  bytes: number;
  /** The .raw file ops made. */
  location: string;
  createdAt: string;
}

interface Registry {
  version: 1;
  volumes: VolumeRecord[];
}

function registryPath(cacheDir: string): string {
  return join(cacheDir, 'volumes', 'registry.json');
}

/** The registry entry's fields every reader relies on. */
function isVolumeRecord(value: unknown): value is VolumeRecord {
  const v = value as Record<string, unknown> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    ['name', 'uuid', 'set', 'setDigest', 'mountPath', 'location'].every((key) => typeof v[key] === 'string')
  );
}

/**
 * The registry of volumes this cache built. A damaged one (not JSON, truncated, an entry without its fields) is
 * a cache entry that no longer matches: it is moved aside to registry.json.damaged and an empty one starts, so
 * every set's volume is built again when next needed (its old Ops volume, under the same name, is replaced);
 * `onDamaged` hears what happened.
 */
async function readRegistry(cacheDir: string, onDamaged?: (message: string) => void): Promise<Registry> {
  const path = registryPath(cacheDir);
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new UniproveError('E_CONFIG', {
      message: `cannot read the volume registry ${path}: ${error.message}`,
      hint: 'Check the permissions of the cache folder (UNIPROVE_CACHE), or point UNIPROVE_CACHE elsewhere.',
      cause: error,
    });
  });
  if (!info) return { version: 1, volumes: [] };
  // A FIFO or a folder in its place is damage too, and reading a FIFO would wait for a writer forever.
  let value: unknown;
  if (info.isFile()) {
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      value = undefined;
    }
  }
  const volumes = (value as Partial<Registry> | undefined)?.volumes;
  if (Array.isArray(volumes) && volumes.every(isVolumeRecord)) return { version: 1, volumes };
  const aside = `${path}.damaged`;
  // Another uniprove may have moved it first: then it is theirs to tell.
  await rm(aside, { recursive: true, force: true }).catch(() => {});
  const moved = await rename(path, aside).then(
    () => true,
    () => false,
  );
  if (moved) {
    onDamaged?.(
      `volume registry ${path} was damaged (${Array.isArray(volumes) ? 'an entry lacks its fields' : 'not a registry'}); moved it to ${aside} and started a new one: volumes are built again as they are needed`,
    );
  }
  return { version: 1, volumes: [] };
}

async function writeRegistry(cacheDir: string, registry: Registry): Promise<void> {
  await writeJsonAtomic(registryPath(cacheDir), registry);
}

/** A volume size for ops: the files plus room for the filesystem, in MiB. */
export function defaultVolumeSize(bytes: number): string {
  return `${Math.ceil((bytes * 1.05 + 32 * 1024 * 1024) / (1024 * 1024))}m`;
}

export interface BuildVolumeOptions extends FetchParameterSetOptions {
  /** Ops volume name; default `<set>-<first 8 hex of the set digest>`. */
  name?: string;
  /** Volume size for ops (`40g`); default the files plus 5% and 32 MiB. */
  size?: string;
  /** Build a new volume even when the registry has one for this set. */
  rebuild?: boolean;
  ops?: OpsOptions;
  onProgress?: OnProgress;
}

export interface BuildVolumeResult {
  volume: VolumeRecord;
  /** True when an existing volume was reused. */
  reused: boolean;
  fetch: FetchParameterSetResult;
  /** What was found and mended on the way (a damaged registry moved aside). */
  warnings: { code: string; message: string }[];
}

/** The Ops volume name uniprove gives a set: `<set>-<first 8 hex of the set digest>`. */
export function volumeNameFor(set: ResolvedParameterSet): string {
  return `${set.name}-${set.setDigest.replace(/^sha256:/, '').slice(0, 8)}`;
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await link(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyFile(from, to);
  }
}

/**
 * Fetch the set (cached files are not fetched again), lay it out and create
 * the Ops volume, or reuse the volume built before from the same set.
 */
export async function buildVolume(
  set: ResolvedParameterSet,
  options: BuildVolumeOptions,
): Promise<BuildVolumeResult> {
  const progress = options.onProgress ?? (() => {});
  const name = options.name ?? volumeNameFor(set);
  if (options.size !== undefined && !/^\d+[kmg]?$/i.test(options.size)) {
    throw new UniproveError('E_USAGE', {
      message: `volume size ${JSON.stringify(options.size)} is not a size`,
      hint: 'Use a whole number with k, m or g, e.g. --size 40g.',
    });
  }
  const fetched = await fetchParameterSet(set, options);
  // Two builds of one name at once would each create an Ops volume under it: the second waits, then reuses.
  return withLock(
    join(options.cacheDir, 'volumes', `${name}.lock`),
    () => buildLocked(set, options, name, fetched),
    {
      signal: options.signal,
      onWait: (pid) =>
        progress({
          kind: 'note',
          step: 'volume',
          detail: `another uniprove (pid ${pid}) is building volume ${name}; waiting for it`,
        }),
    },
  );
}

/** The volume of a fetched set, holding the lock of its name: reused from the registry, or created. */
async function buildLocked(
  set: ResolvedParameterSet,
  options: BuildVolumeOptions,
  name: string,
  fetched: FetchParameterSetResult,
): Promise<BuildVolumeResult> {
  const ops = { ...options.ops, ...(options.signal ? { signal: options.signal } : {}) };
  const progress = options.onProgress ?? (() => {});
  const warnings: BuildVolumeResult['warnings'] = [];
  const registry = await readRegistry(options.cacheDir, (message) => {
    warnings.push({ code: 'volume-registry-damaged', message });
    progress({ kind: 'note', step: 'volume', detail: `warning: ${message}` });
  });
  // Only a volume under this very name: packages mount the name `volumeNameFor` gives this set, so a volume
  // another set with the same files (or a --name) was built under would leave this set's name unmounted.
  const existing = registry.volumes.find((v) => v.setDigest === set.setDigest && v.name === name);
  const listed = await opsVolumeList(ops);
  const keep =
    existing && !options.rebuild && listed.some((v) => v.uuid === existing.uuid) ? existing : undefined;
  // Packages mount volumes by name, so a name two volumes share cannot be mounted: clear the others first.
  const ours = new Set(registry.volumes.map((v) => v.uuid));
  const deleted = await clearNameClash(
    name,
    listed,
    keep?.uuid,
    ours,
    options.name !== undefined,
    ops,
    progress,
  );
  if (keep) {
    progress({ kind: 'note', step: 'volume', detail: `reusing volume ${keep.name}:${keep.uuid}` });
    return { volume: keep, reused: true, fetch: fetched, warnings };
  }
  const layout = join(options.cacheDir, 'volumes', `layout-${randomBytes(6).toString('hex')}`);
  const bytes = fetched.files.reduce((sum, f) => sum + f.size, 0);
  const size = options.size ?? defaultVolumeSize(bytes);
  let created: OpsVolume;
  try {
    const byName = new Map(fetched.files.map((f) => [f.name, f]));
    await withWriteErrors(
      {
        what: `the layout of volume ${name}`,
        path: layout,
        bytes,
        elsewhere: 'point UNIPROVE_CACHE at a folder on a disk with room',
      },
      async () => {
        for (const file of set.files) await linkOrCopy(byName.get(file.name)!.path, join(layout, file.path));
      },
    );
    progress({ kind: 'step-start', step: 'ops volume create', detail: `${name}, ${size}` });
    created = await opsVolumeCreate({ name, dataDir: layout, size }, ops);
    progress({ kind: 'step-done', step: 'ops volume create', detail: `${created.name}:${created.uuid}` });
  } finally {
    await rm(layout, { recursive: true, force: true }).catch(() => {});
  }
  const record: VolumeRecord = {
    name: created.name,
    uuid: created.uuid,
    set: set.name,
    setDigest: set.setDigest,
    mountPath: set.mountPath,
    size,
    files: set.files.length,
    bytes,
    location: created.location,
    createdAt: new Date().toISOString(),
  };
  const latest = await readRegistry(options.cacheDir);
  // The entry this build replaces (its volume deleted outside uniprove, or --rebuild) goes with it.
  const replaced = (v: VolumeRecord) =>
    v.uuid === record.uuid || v.uuid === existing?.uuid || deleted.has(v.uuid);
  latest.volumes = [...latest.volumes.filter((v) => !replaced(v)), record];
  await writeRegistry(options.cacheDir, latest);
  return { volume: record, reused: false, fetch: fetched, warnings };
}

/**
 * Other Ops volumes named `name` than `keepUuid`. This cache's own (`ours`: a --rebuild) are
 * deleted. Of the rest, under a name uniprove derived (`<set>-<set digest>`) is
 * uniprove's own: volumes left under it by another cache (a cleared ~/.cache/uniprove, another
 * UNIPROVE_CACHE) are deleted, as the set's files are laid out again. A name the user chose may be
 * theirs: uniprove refuses to touch it.
 */
async function clearNameClash(
  name: string,
  listed: OpsVolume[],
  keepUuid: string | undefined,
  ours: Set<string>,
  userNamed: boolean,
  ops: OpsOptions,
  progress: OnProgress,
): Promise<Set<string>> {
  const others = listed.filter((v) => v.name === name && v.uuid !== keepUuid);
  if (others.length === 0) return new Set();
  const foreign = others.filter((v) => !ours.has(v.uuid));
  if (userNamed && foreign.length > 0) {
    throw new UniproveError('E_VOLUME_EXISTS', {
      message: `an Ops volume named ${name} already exists (${foreign.map((v) => v.uuid).join(', ')}) that this cache did not build`,
      hint: `Pick another --name, or delete it first: ops volume delete ${foreign[0]?.uuid}. Packages mount volumes by name, so two volumes cannot share one.`,
      details: { name, uuids: foreign.map((v) => v.uuid) },
    });
  }
  for (const v of others) {
    progress({
      kind: 'note',
      step: 'volume',
      detail: ours.has(v.uuid)
        ? `deleting volume ${v.name}:${v.uuid}, built again`
        : `deleting volume ${v.name}:${v.uuid}, left by another uniprove cache (two volumes cannot share a name)`,
    });
    await opsVolumeDelete(v.uuid, ops);
  }
  return new Set(others.map((v) => v.uuid));
}

export interface EnsureVolumeOptions
  extends BuildVolumeOptions,
    Omit<LoadParameterSetOptions, 'sectorSize'> {}

/** For `run` and `gcp run`: the volume for a named set, built when missing, reused otherwise. */
export async function ensureVolume(
  setName: string,
  options: EnsureVolumeOptions,
): Promise<BuildVolumeResult> {
  const set = await loadParameterSet(setName, options);
  return buildVolume(set, options);
}

export interface ListVolumesOptions {
  cacheDir: string;
  ops?: OpsOptions;
}

/** A registered volume and whether ops still has it (undefined when ops is not installed). */
export interface VolumeStatus extends VolumeRecord {
  present: boolean | undefined;
}

/** The volumes uniprove built, checked against `ops volume list` when ops is there. */
export async function listVolumes(
  options: ListVolumesOptions,
): Promise<{ volumes: VolumeStatus[]; warnings: { code: string; message: string }[] }> {
  const warnings: { code: string; message: string }[] = [];
  const registry = await readRegistry(options.cacheDir, (message) =>
    warnings.push({ code: 'volume-registry-damaged', message }),
  );
  let uuids: Set<string> | undefined;
  try {
    uuids = new Set((await opsVolumeList(options.ops)).map((v) => v.uuid));
  } catch (error) {
    warnings.push({
      code: 'E_OPS',
      message: `cannot check volumes with ops: ${(error as Error).message}`,
    });
  }
  return {
    volumes: registry.volumes.map((v) => ({ ...v, present: uuids ? uuids.has(v.uuid) : undefined })),
    warnings,
  };
}

export interface RemoveVolumeOptions extends ListVolumesOptions {
  /** Folder a set file's relative path is resolved against. */
  cwd?: string;
  signal?: AbortSignal;
}

const REMOVE_HINT =
  'Give the set file the volume was built from, or a set name, volume name or UUID from `uniprove volume ls`.';

/** True when `ref` names a set file: a path (a slash, or ending in .json), or a file that exists. */
async function isSetFileRef(ref: string, cwd: string): Promise<boolean> {
  if (looksLikePath(ref)) return true;
  return (await stat(resolve(cwd, ref)).catch(() => undefined))?.isFile() ?? false;
}

/** The name of the set in a set file, or an error that names the file and says what to give instead. */
async function setNameOfFile(file: string): Promise<string> {
  const value = parseJsonFile(await readInputFile(file, 'set file', REMOVE_HINT), file, REMOVE_HINT);
  if (isFilecoinParameters(value)) {
    throw new UniproveError('E_CONFIG', {
      message: `${file} is a rust-fil-proofs parameters.json, not a parameter set, so it names no volume`,
      hint: 'Give the set name its volume was built under (`uniprove volume ls` lists them, e.g. filecoin-2KiB), or the set file `uniprove volume import` wrote from it.',
    });
  }
  try {
    return resolveParameterSet(value, file).name;
  } catch (error) {
    throw new UniproveError('E_CONFIG', {
      message: `${file} is not a parameter set, so it names no volume: ${(error as Error).message}`,
      hint: REMOVE_HINT,
      cause: error,
    });
  }
}

/**
 * Delete volumes by name, UUID, set name or set file (the volumes of the set it names): the Ops volume and its
 * registry entry.
 */
export async function removeVolume(
  ref: string,
  options: RemoveVolumeOptions,
): Promise<{ removed: VolumeRecord[] }> {
  const registry = await readRegistry(options.cacheDir);
  // A bare word that names a registered volume or set is that, even beside a file of the same name. The set
  // file is read before anything is deleted: a file that is no set deletes nothing.
  const named = (v: VolumeRecord) => v.name === ref || v.uuid === ref || v.set === ref;
  const byName = !looksLikePath(ref) && registry.volumes.some(named);
  const file =
    !byName && (await isSetFileRef(ref, options.cwd ?? '.')) ? resolve(options.cwd ?? '.', ref) : undefined;
  const setName = file ? await setNameOfFile(file) : undefined;
  const matches = registry.volumes.filter((v) => (setName !== undefined ? v.set === setName : named(v)));
  if (matches.length === 0) {
    throw new UniproveError('E_NOT_FOUND', {
      message:
        setName !== undefined
          ? `no volume built by uniprove is of set ${setName} (the set in ${file})`
          : `no volume built by uniprove matches ${JSON.stringify(ref)}`,
      hint: REMOVE_HINT,
    });
  }
  const ops = { ...options.ops, ...(options.signal ? { signal: options.signal } : {}) };
  const present = new Set((await opsVolumeList(ops)).map((v) => v.uuid));
  const removed: VolumeRecord[] = [];
  for (const volume of matches) {
    if (present.has(volume.uuid)) await opsVolumeDelete(volume.uuid, ops);
    const latest = await readRegistry(options.cacheDir);
    latest.volumes = latest.volumes.filter((v) => v.uuid !== volume.uuid);
    await writeRegistry(options.cacheDir, latest);
    removed.push(volume);
  }
  return { removed };
}
