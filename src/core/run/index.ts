/**
 * `uniprove run`: build the image with `ops build`, boot it in QEMU with the
 * prover's exit status wired to the host (debug_exit), end it at the timeout or
 * on abort, and keep the evidence in runs/<id>/: config, manifest, command
 * line, console, exit status, timings, proofs with their digests.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { isUniproveError, UniproveError } from '../errors.js';
import { spawn, stopOnTimeoutOrAbort, which } from '../exec.js';
import { toWriteError, type WriteContext, withWriteErrors } from '../fs.js';
import { type AccelChoice, type AccelDecision, detectAccel } from '../machine/accel.js';
import { CONSOLE_LOG, QemuMachine } from '../machine/qemu.js';
import type { MachineDisk, MachineStatus } from '../machine/types.js';
import {
  type NanosRelease,
  OPS_INSTALL_HINT,
  opsBuild,
  opsCopyOut,
  opsProgram,
  removeImage,
  requireOpsAndNanos,
  stripAnsi,
} from '../ops/build.js';
import type { OpsConfig } from '../ops/config/schema.js';
import { copyImage, ImageCache, imageCacheKey, uncacheableReason } from '../ops/image-cache.js';
import { opsVolumeList } from '../ops/volume.js';
import { isPackageDir, packageBytes, readPackageConfig, readPackageLock } from '../package/layout.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import { localConsoleRoute, receiveConsoleProof } from '../proof/index.js';
import type { LoadRecipeOptions, ResolvedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import {
  finishRecord,
  newRunId,
  RECORD_FILE,
  type RunOutcome,
  type RunProof,
  type RunRecord,
  type RunWarning,
  writeRecord,
} from './record.js';

/** Debug flags equal to `ops run --trace`, plus the missing-files list and the syscall summary. */
export const TRACE_DEBUG_FLAGS = [
  'trace',
  'debugsyscalls',
  'fault',
  'futex_trace',
  'missing_files',
  'syscall_summary',
];

export interface RunProverOptions extends LoadRecipeOptions {
  /** A recipe (name, folder, recipe.json) or a package folder made by `uniprove package`. */
  target: string;
  /** Folder of run records; proving_report.csv lives here (default <cwd>/runs). */
  runsDir?: string;
  /** This run's record folder (default <runsDir>/<id>). */
  out?: string;
  /** Where a recipe is packaged (default <cwd>/build/<name>). */
  packageOut?: string;
  /** uniprove's cache (KVM verdict, parameter files). */
  cacheDir: string;
  /** Ops's home (~/.ops). */
  opsHome: string;
  /** Environment for ops (HOME, OPS_HOME, PATH). */
  env?: Record<string, string | undefined>;
  ops?: string;
  qemu?: string;
  nanosVersion?: string;
  accel?: AccelChoice;
  /** Kill the prover after this long (ms; 0 = never). */
  timeoutMs?: number;
  /** Nanos trace flags (ops run --trace and more); trace.log holds the trace lines. */
  trace?: boolean;
  /** `ops`: run plain `ops run` for parity (the exit status is lost). */
  via?: 'qemu' | 'ops';
  /** Replace the prover's arguments for this run. */
  args?: string[];
  /** How a file proof comes back: copied off the image after the run (default), or through the console (the Compute Engine route). */
  proofVia?: 'copy' | 'console';
  /** Guest paths to copy out after the run (from the image, or from a volume when under its mount). */
  copyOut?: string[];
  /** Keep the image in ~/.ops/images after the run. */
  keepImage?: boolean;
  /** false: always `ops build`, even when an image of the same inputs is cached. */
  imageCache?: boolean;
  /** Parameter sets folder (default uniprove's volumes/). */
  setsDir?: string;
  /** Do not add the run to proving_report.csv. */
  noReport?: boolean;
  /** Size of the image's root file system (Ops BaseVolumeSz, e.g. 256m); default the package plus 64 MiB of room. */
  imageSize?: string;
  /** Give each writable volume a private copy in the run folder (parallel runs must not share one). */
  volumeCopies?: boolean;
  /** Free bytes the image folder must keep beyond the image (default 64 MiB). */
  diskReserveBytes?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
  /** Console output as it arrives. */
  onConsole?: (chunk: string) => void;
}

export interface RunResult {
  id: string;
  dir: string;
  outcome: RunOutcome;
  exitCode: number | null;
  accel: RunRecord['accel'];
  accelReason: string | undefined;
  proofs: RunProof[];
  timings: RunRecord['timings'];
  warnings: RunWarning[];
  record: RunRecord;
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
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** Package a recipe (or take a package as it is), and find or build its volumes. */
export async function prepareTarget(options: RunProverOptions): Promise<PreparedTarget> {
  const cwd = options.cwd ?? process.cwd();
  const onProgress = options.onProgress ?? noProgress;
  const asDir = resolve(cwd, options.target);
  let packageDir: string;
  let recipe: ResolvedRecipe | undefined;
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
      }
    }
    const { packageRecipe } = await import('../package/index.js');
    // Only what loading the recipe needs: `options.out` is the run record folder, never the package's.
    const packaged = await packageRecipe({
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.pathEnv ? { pathEnv: options.pathEnv } : {}),
      ...(options.proversDirs ? { proversDirs: options.proversDirs } : {}),
      ...(options.overrides ? { overrides: options.overrides } : {}),
      recipe: options.target,
      ...(options.packageOut ? { out: options.packageOut } : {}),
      ...(options.setsDir ? { setsDir: options.setsDir } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress,
    });
    packageDir = packaged.package;
  }
  const lock = await readPackageLock(packageDir);
  const config = await readPackageConfig(packageDir, lock, 'local');
  // A recipe took --env, --memory and --cpus when it was packaged; a package folder takes them here, for this
  // run only (its local.json stays as packaged), as it takes --arg.
  const o = recipe ? {} : (options.overrides ?? {});
  if (o.env) config.Env = { ...config.Env, ...o.env };
  if (o.memory || o.cpus) {
    config.RunConfig = {
      ...config.RunConfig,
      ...(o.memory ? { Memory: o.memory } : {}),
      ...(o.cpus ? { CPUs: o.cpus } : {}),
    };
  }
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
    config,
    recipe,
    proof: recipe?.proof ?? lock.proof ?? { kind: 'none' },
    volumes,
    bytes: packageBytes(lock),
  };
}

/** The config a run builds with: the package's, with the exit status wired out and no reboot loop. */
export function resolveRunConfig(
  base: OpsConfig,
  options: { args?: string[]; trace?: boolean; via?: 'qemu' | 'ops'; imageSize?: string },
): { config: OpsConfig; warnings: RunWarning[] } {
  const warnings: RunWarning[] = [];
  const config: OpsConfig = structuredClone(base);
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

/** Nanos trace lines: `[tid] call(...) = ret`, indented kernel trace, resumes, summaries, missing files. */
export function isTraceLine(line: string): boolean {
  return (
    /^\[\d+\]\s+\S/.test(line) ||
    /^\s{2,}\S/.test(line) ||
    /<\.\.\. \w+ resumed>|<unfinished \.\.\.>/.test(line) ||
    /^missing_files_(begin|end)$/.test(line) ||
    /^\s*(% time|syscall|-{6})/.test(line) ||
    /^\s*\w+\s+\d+ calls?(, \d+ errors?)?/.test(line)
  );
}

/** Text between `begin` and `end` marker lines, each block once. */
export function extractConsoleBlocks(text: string, begin: string, end: string): string[] {
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (current === undefined) {
      if (line.trim() === begin) current = [];
    } else if (line.trim() === end) {
      blocks.push(`${current.join('\n')}\n`);
      current = undefined;
    } else current.push(line);
  }
  return blocks;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function filesUnder(path: string): Promise<string[]> {
  const s = await stat(path);
  if (!s.isDirectory()) return [path];
  const out: string[] = [];
  for (const e of (await readdir(path)).sort()) out.push(...(await filesUnder(join(path, e))));
  return out;
}

function outcomeOf(status: MachineStatus, via: 'qemu' | 'ops'): RunOutcome {
  if (status.state === 'timeout') return 'timeout';
  if (status.state === 'stopped') return 'interrupted';
  if (status.state === 'failed') return 'error';
  if (via === 'ops' || status.exitCode === undefined) return 'unknown';
  return status.exitCode === 0 ? 'succeeded' : 'failed';
}

/** Check the image folder has room for the image. */
async function checkDiskSpace(dir: string, needBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < needBytes) {
    throw new UniproveError('E_DISK_SPACE', {
      message: `not enough free disk in ${dir}: ${Math.round(free / 2 ** 20)} MiB free, the image needs about ${Math.round(needBytes / 2 ** 20)} MiB`,
      hint: 'Free some space (old images: `ops image list`, `ops image delete NAME`; old runs under runs/), or set OPS_HOME to a bigger disk.',
      details: { dir, freeBytes: free, needBytes },
    });
  }
}

/**
 * Run a prover once. Returns the record whatever the prover did (succeeded,
 * failed, timed out); throws UniproveError when uniprove could not run it, and
 * on Ctrl-C, after keeping the record (details.runDir).
 */
export async function runProver(options: RunProverOptions, prepared?: PreparedTarget): Promise<RunResult> {
  const onProgress = options.onProgress ?? noProgress;
  const cwd = options.cwd ?? process.cwd();
  const started = performance.now();
  const runsDir = resolve(cwd, options.runsDir ?? 'runs');
  const id = newRunId();
  const dir = options.out ? resolve(cwd, options.out) : join(runsDir, id);
  const via = options.via ?? 'qemu';
  const writing: WriteContext = {
    what: 'the run record',
    path: dir,
    elsewhere:
      'pass --out DIR in a folder you can write on a disk with room (runs/ is made in the current folder)',
  };
  await withWriteErrors(writing, () => mkdir(dir, { recursive: true }));
  const record: RunRecord = {
    id,
    dir,
    prover: options.target,
    args: options.args ?? [],
    via,
    outcome: 'running',
    exitCode: null,
    startedAt: new Date().toISOString(),
    timings: {},
    ...(options.timeoutMs ? { timeoutSeconds: options.timeoutMs / 1000 } : {}),
    volumes: [],
    proofs: [],
    files: {},
    warnings: [],
  };
  const opsOpts = {
    ...(options.ops ? { ops: options.ops } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const imageName = `uniprove-${id}`;
  let built = false;
  let machine: QemuMachine | undefined;
  const finish = (outcome: RunOutcome) =>
    finishRecord(record, outcome, { runsDir, startedAt: started, noReport: options.noReport });
  try {
    await writeRecord(record);
    // Tools first: nothing is built when the host cannot run it.
    const { opsPath, release } = await requireOpsAndNanos(options);
    record.nanosVersion = release.version;
    if (via === 'qemu' && !(await which(options.qemu ?? 'qemu-system-x86_64', options.env?.PATH))) {
      throw new UniproveError('E_TOOL_MISSING', {
        message: `${options.qemu ?? 'qemu-system-x86_64'} is not installed or not on PATH`,
        hint: 'Install QEMU: apt-get install qemu-system-x86.',
        details: { tool: 'qemu-system-x86_64' },
      });
    }
    let target = prepared ?? (await prepareTarget(options));
    record.prover = target.name;
    record.package = target.packageDir;
    record.volumes = target.volumes;
    let volumeOpsEnv: Record<string, string | undefined> | undefined;
    if (options.volumeCopies && target.volumes.some((v) => !v.readOnly)) {
      volumeOpsEnv = await privateVolumeCopies(dir, record, options.opsHome, release.version, options.env);
    }
    const pkgBytes = target.bytes;
    let { config, warnings } = resolveRunConfig(target.config, {
      imageSize: options.imageSize ?? target.config.BaseVolumeSz ?? `${Math.ceil(pkgBytes / 2 ** 20) + 64}m`,
      ...(options.args ? { args: options.args } : {}),
      ...(options.trace ? { trace: true } : {}),
      via,
    });
    // A file proof through the console: the library staged and preloaded, the limits checked before the build.
    const route =
      options.proofVia === 'console' ? await localConsoleRoute(options, target, config, dir) : undefined;
    if (route) [config, target] = [route.config, { ...target, proof: { kind: 'none' } }];
    record.args = config.Args ?? [];
    record.warnings.push(...warnings, ...(route?.warnings ?? []));
    if (via === 'ops') {
      record.warnings.push({
        code: 'via-ops',
        message:
          '--via ops: plain `ops run` loses the prover\'s exit status (Ops ignores QEMU\'s), reboots forever with RebootOnExit, and has no timeout of its own; the outcome can only be "unknown".',
      });
    }
    const configPath = join(dir, 'ops-config.json');
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    record.files.config = 'ops-config.json';
    const imagesDir = join(options.opsHome, 'images');
    await checkDiskSpace(imagesDir, pkgBytes * 1.1 + (options.diskReserveBytes ?? 64 * 2 ** 20));
    await writeRecord(record);

    const program = config.Program ?? '';
    // The accelerator is decided while the image builds (it may ask QEMU its version): neither waits on the other.
    const accelPending = detectAccel({
      choice: options.accel ?? 'auto',
      cacheDir: options.cacheDir,
      ...(options.qemu ? { qemu: options.qemu } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    accelPending.catch(() => {});

    if (via === 'ops') {
      await runViaOps({
        options,
        record,
        config: configPath,
        program,
        target,
        imageName,
        accel: await accelPending,
        dir,
        started,
      });
      built = true;
    } else {
      const image = await buildImage({
        options,
        record,
        opsPath,
        release,
        target,
        config,
        configPath,
        program,
        imageName,
        opsOpts,
        imageAfterRun: Boolean(options.keepImage) || readsImageAfterRun(target, options.copyOut ?? []),
      });
      built = true;
      record.image = image.image;
      record.timings.imageBuildMs = Math.round(image.durationMs);
      await writeFile(join(dir, 'manifest.txt'), `${image.manifest}\n`);
      record.files.manifest = 'manifest.txt';
      options.signal?.throwIfAborted();

      let decision = await accelPending;
      if (
        decision.kvmUsable === undefined &&
        decision.kvmPresent &&
        options.accel !== 'tcg' &&
        options.accel !== 'kvm'
      ) {
        // /dev/kvm is there and may work: probe with this image once; the verdict is cached for the host.
        onProgress({
          kind: 'step-start',
          step: 'kvm probe',
          detail: 'booting once with KVM to see if it works here',
        });
        decision = await detectAccel({
          choice: 'auto',
          cacheDir: options.cacheDir,
          probeImage: image.image,
          probeDir: join(dir, 'kvm-probe'),
          ...(options.qemu ? { qemu: options.qemu } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        onProgress({ kind: 'step-done', step: 'kvm probe', detail: decision.accel });
      }
      record.accel = decision.accel;
      record.accelReason = decision.reason;
      if (decision.accel === 'tcg') record.warnings.push({ code: 'accel-tcg', message: decision.reason });

      const disks: MachineDisk[] = record.volumes.map((v) => ({
        path: v.path,
        readOnly: v.readOnly,
        label: v.label,
      }));
      machine = new QemuMachine({
        name: id,
        image: image.image,
        disks,
        memory: config.RunConfig?.Memory ?? '2G',
        cpus: config.RunConfig?.CPUs ?? 1,
        accel: decision.accel,
        debugExit: true,
        stateDir: dir,
        ...(image.snapshot ? { snapshot: true } : {}),
        ...(options.qemu ? { qemu: options.qemu } : {}),
      });
      await machine.create();
      record.qemu = { argv: machine.argv };
      record.files.console = CONSOLE_LOG;
      record.files.qemuCmdline = 'qemu-cmdline.txt';
      await writeRecord(record);
      const show = options.onConsole;
      if (route || show) {
        // The proof's base64 lines go to the receiver (and console.log), not to the live console.
        machine.onConsole = (chunk) => {
          const shown = route ? route.receiver.push(chunk) : chunk;
          if (shown) show?.(shown);
        };
      }
      const bootStart = performance.now() - started;
      onProgress({
        kind: 'step-start',
        step: 'boot',
        detail: `${decision.accel}, timeout ${options.timeoutMs ? `${options.timeoutMs / 1000} s` : 'none'}`,
      });
      await machine.start();
      const status = await machine.wait({
        ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      onProgress({ kind: 'step-done', step: 'boot', detail: status.state });
      applyStatus(record, status, bootStart);
      record.outcome = outcomeOf(status, via);
      if (machine.consoleError) throw machine.consoleError;
    }

    const outcome = record.outcome as RunOutcome;
    if (route)
      await receiveConsoleProof(route, record, ['timeout', 'interrupted', 'error'].includes(outcome));
    if (outcome !== 'interrupted') {
      await collectProofs(record, target, options, imageName, opsOpts, volumeOpsEnv);
      if (options.trace) await writeTraceLog(dir, record);
      if (outcome !== 'succeeded') await addFindings(record, dir, options.signal);
      const consoleText = await readFile(join(dir, CONSOLE_LOG), 'utf8').catch(() => '');
      if (/No space left on device|ENOSPC/.test(consoleText)) {
        record.warnings.push({
          code: 'disk-full',
          message:
            'the prover ran out of disk in the guest ("No space left on device"): give the image more room with --image-size (Ops BaseVolumeSz), or the volume a bigger size',
        });
      }
    }
    if (outcome === 'error') {
      const reason = record.exitReason ?? 'QEMU failed';
      throw new UniproveError('E_RUN_FAILED', {
        message: `the VM could not run: ${reason}`,
        hint: 'Read qemu.stderr.log in the run folder; `uniprove doctor` checks QEMU and KVM.',
        details: { runDir: dir, stderrTail: record.qemu?.stderrTail ?? '' },
      });
    }
    if (outcome === 'interrupted') {
      throw new UniproveError('E_INTERRUPTED', {
        message: 'interrupted by Ctrl-C: QEMU was stopped',
        hint: `What the run produced so far is in ${dir}.`,
        details: { runDir: dir },
      });
    }
    if (outcome === 'timeout') {
      // Not thrown: a run that timed out still has its record, findings and proofs so far to return.
      const timeout = new UniproveError('E_RUN_TIMEOUT', {
        message: `the prover was still running after ${(options.timeoutMs ?? 0) / 1000} s and was stopped`,
        hint: `Give it arguments that make it end sooner, or raise --timeout. What it printed is in ${join(dir, CONSOLE_LOG)}.`,
      });
      record.error = {
        code: timeout.code,
        message: timeout.message,
        ...(timeout.hint ? { hint: timeout.hint } : {}),
      };
    }
    await finish(outcome);
    return {
      id,
      dir,
      outcome,
      exitCode: record.exitCode,
      accel: record.accel,
      accelReason: record.accelReason,
      proofs: record.proofs,
      timings: record.timings,
      warnings: record.warnings,
      record,
    };
  } catch (error) {
    await machine?.stop('interrupted');
    const aborted = options.signal?.aborted === true;
    const err = isUniproveError(error)
      ? error
      : aborted
        ? new UniproveError('E_INTERRUPTED', { message: 'interrupted by Ctrl-C', cause: error })
        : await toWriteError(error, writing);
    if (isUniproveError(err)) {
      record.error = { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
      (err.details as Record<string, unknown>).runDir = dir;
    } else record.error = { code: 'E_INTERNAL', message: String(error) };
    await finish(
      aborted || (isUniproveError(err) && err.code === 'E_INTERRUPTED') ? 'interrupted' : 'error',
    ).catch(() => {});
    throw err;
  } finally {
    if (built && !options.keepImage) await removeImage(options.opsHome, imageName).catch(() => {});
  }
}

/**
 * The run's image under <opsHome>/images/<imageName>: a copy of the cached one
 * when `ops build` already made it from the same inputs, else `ops build`
 * (and a copy kept for next time, taken before anything boots it).
 */
async function buildImage(a: {
  options: RunProverOptions;
  record: RunRecord;
  opsPath: string;
  release: NanosRelease;
  target: PreparedTarget;
  config: OpsConfig;
  configPath: string;
  program: string;
  imageName: string;
  opsOpts: { ops?: string; env?: Record<string, string | undefined>; signal?: AbortSignal };
  /** The image is read after the run (a proof or --copy-out on the root file system) or kept: never a snapshot. */
  imageAfterRun: boolean;
}): Promise<{ image: string; manifest: string; durationMs: number; snapshot: boolean }> {
  const { options, record, release, program } = a;
  const onProgress = options.onProgress ?? noProgress;
  const t0 = performance.now();
  const notCacheable = options.imageCache === false ? 'off (--no-image-cache)' : uncacheableReason(a.config);
  const cache = notCacheable ? undefined : ImageCache.in(options.cacheDir);
  const key = cache
    ? await imageCacheKey({
        opsPath: a.opsPath,
        release,
        packageDir: a.target.packageDir,
        config: a.config,
        volumes: a.target.volumes,
      })
    : undefined;
  const hit = cache && key ? await cache.get(key) : undefined;
  if (hit && !a.imageAfterRun) {
    // Nothing reads the image after this run: boot the cached one as a snapshot (writes go to a throwaway
    // overlay), with no copy to make. A 256 MB package's image took 0.08 s to copy.
    record.imageCache = { state: 'hit', key: key as string, boot: 'snapshot' };
    onProgress({ kind: 'note', step: 'image', detail: `cached, booted as a snapshot: ${hit.image}` });
    return { image: hit.image, manifest: hit.manifest, durationMs: performance.now() - t0, snapshot: true };
  }
  if (hit) {
    const image = join(options.opsHome, 'images', a.imageName);
    await mkdir(join(options.opsHome, 'images'), { recursive: true });
    onProgress({
      kind: 'step-start',
      step: 'image',
      detail: 'a copy of the one ops build made from the same inputs',
    });
    await copyImage(hit.image, image, options.signal);
    record.imageCache = { state: 'hit', key: key as string, boot: 'copy' };
    onProgress({ kind: 'step-done', step: 'image', detail: image });
    return { image, manifest: hit.manifest, durationMs: performance.now() - t0, snapshot: false };
  }
  onProgress({ kind: 'step-start', step: 'ops build', detail: `${program} (Nanos ${release.version})` });
  const built = await opsBuild(
    {
      cwd: a.target.packageDir,
      program,
      config: a.configPath,
      imageName: a.imageName,
      ...(options.nanosVersion ? { nanosVersion: options.nanosVersion } : {}),
    },
    a.opsOpts,
  );
  onProgress({ kind: 'step-done', step: 'ops build', detail: built.image });
  if (cache && key) {
    try {
      await cache.put(key, built, options.signal);
      record.imageCache = { state: 'stored', key };
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const reason = isUniproveError(error) ? error.message : String(error);
      record.imageCache = { state: 'off', reason: `could not keep a copy: ${reason}` };
      record.warnings.push({ code: 'image-cache', message: `the image was not cached: ${reason}` });
    }
  } else record.imageCache = { state: 'off', reason: notCacheable ?? 'off' };
  return {
    image: built.image,
    manifest: built.manifest,
    durationMs: performance.now() - t0,
    snapshot: false,
  };
}

/** The guest paths copied out after the run: a file proof, then each --copy-out. */
function copyOutPaths(target: PreparedTarget, copyOut: readonly string[]): string[] {
  return [...(target.proof.kind === 'file' ? [target.proof.path] : []), ...copyOut];
}

/** True when a proof or a --copy-out path lies on the image's own file system (not on a volume). */
function readsImageAfterRun(target: PreparedTarget, copyOut: readonly string[]): boolean {
  return copyOutPaths(target, copyOut).some((guest) => !volumeFor(target, guest));
}

/** The mounted volume a guest path lies on, if any. */
function volumeFor(target: PreparedTarget, guest: string): PreparedTarget['volumes'][number] | undefined {
  return target.volumes.find(
    (v) => guest === v.guestPath || guest.startsWith(`${v.guestPath.replace(/\/$/, '')}/`),
  );
}

function applyStatus(record: RunRecord, status: MachineStatus, bootStartMs: number): void {
  record.exitCode = status.exitCode ?? null;
  if (status.reason) record.exitReason = status.reason;
  record.qemu = {
    argv: record.qemu?.argv ?? [],
    ...(status.qemuExitCode !== undefined ? { exitCode: status.qemuExitCode } : {}),
    ...(status.signal ? { signal: status.signal } : {}),
    ...(status.qemuStderrTail ? { stderrTail: status.qemuStderrTail } : {}),
  };
  if (status.firstConsoleLineMs !== undefined) {
    record.timings.bootMs = Math.round(status.firstConsoleLineMs);
    record.timings.firstConsoleLineMs = Math.round(bootStartMs + status.firstConsoleLineMs);
    if (status.startedAt && status.endedAt) {
      record.timings.proverMs = Math.max(
        0,
        Math.round(status.endedAt - status.startedAt - status.firstConsoleLineMs),
      );
    }
  }
}

/** Plain `ops run` in the package folder, for parity: console captured, status unknown. */
async function runViaOps(a: {
  options: RunProverOptions;
  record: RunRecord;
  config: string;
  program: string;
  target: PreparedTarget;
  imageName: string;
  accel: AccelDecision;
  dir: string;
  started: number;
}): Promise<void> {
  const { options, record, dir } = a;
  const argv = [await opsProgram(options), 'run', a.program, '-c', a.config, '-i', a.imageName];
  if (a.accel.accel === 'tcg') argv.push('--accel=false');
  if (options.nanosVersion) argv.push('--nanos-version', options.nanosVersion);
  record.accel = a.accel.accel;
  record.accelReason = a.accel.reason;
  record.qemu = { argv };
  record.files.console = CONSOLE_LOG;
  const { createWriteStream } = await import('node:fs');
  const out = createWriteStream(join(dir, CONSOLE_LOG));
  let consoleError: Error | undefined;
  out.on('error', (error) => {
    consoleError ??= error;
  });
  const { child, ended } = spawn(argv, {
    cwd: a.target.packageDir,
    installHint: OPS_INSTALL_HINT,
    ...(options.env ? { env: options.env } : {}),
  });
  let first: number | undefined;
  const t0 = performance.now();
  const onData = (chunk: Buffer) => {
    if (first === undefined && chunk.includes(10)) first = performance.now();
    out.write(chunk);
    options.onConsole?.(stripAnsi(chunk.toString('utf8')));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let timedOut = false;
  const disarm = stopOnTimeoutOrAbort(options, (why) => {
    if (why === 'timeout') timedOut = true;
    child.kill('SIGKILL');
  });
  const result = await ended;
  disarm();
  await new Promise<void>((r) => out.end(r));
  // The console is the run's evidence: a log the disk could not take fails the run (as a typed error).
  if (consoleError) throw consoleError;
  const end = performance.now();
  if (first !== undefined) {
    record.timings.bootMs = Math.round(first - t0);
    record.timings.firstConsoleLineMs = Math.round(first - a.started);
    record.timings.proverMs = Math.round(end - first);
  }
  record.qemu.exitCode = result.exitCode ?? -1;
  record.exitCode = null;
  if (options.signal?.aborted) record.outcome = 'interrupted';
  else if (timedOut) record.outcome = 'timeout';
  else {
    record.outcome = 'unknown';
    record.exitReason = `ops run exited ${result.exitCode}; Ops ignores QEMU's status, so the prover's exit status is unknown`;
  }
  // `ops run` starts QEMU as its child: make sure none survives a kill of ops.
  if (timedOut || options.signal?.aborted) await killQemuFor(a.imageName);
}

/** Kill QEMU processes whose command line names this run's image (ops run's children). */
async function killQemuFor(imageName: string): Promise<void> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('qemu-system') && cmdline.includes(`/images/${imageName}`)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function collectProofs(
  record: RunRecord,
  target: PreparedTarget,
  options: RunProverOptions,
  imageName: string,
  opsOpts: { ops?: string; env?: Record<string, string | undefined>; signal?: AbortSignal },
  volumeOpsEnv?: Record<string, string | undefined>,
): Promise<void> {
  const dir = record.dir;
  const proofsDir = join(dir, 'proofs');
  const add = async (file: string, source: string) => {
    const s = await stat(file);
    record.proofs.push({ path: relative(dir, file), sha256: await sha256File(file), bytes: s.size, source });
  };
  if (target.proof.kind === 'console') {
    const text = await readFile(join(dir, CONSOLE_LOG), 'utf8').catch(() => '');
    const blocks = extractConsoleBlocks(text, target.proof.begin, target.proof.end);
    for (const [i, block] of blocks.entries()) {
      await mkdir(proofsDir, { recursive: true });
      const file = join(proofsDir, blocks.length === 1 ? 'console-proof.txt' : `console-proof-${i + 1}.txt`);
      await writeFile(file, block);
      await add(file, 'console');
    }
    if (blocks.length === 0 && record.outcome === 'succeeded') {
      record.warnings.push({
        code: 'proof-missing',
        message: `the prover exited 0 but printed no proof between ${target.proof.begin} and ${target.proof.end}`,
      });
    }
  }
  for (const guest of copyOutPaths(target, options.copyOut ?? [])) {
    const volume = volumeFor(target, guest);
    const dest = join(proofsDir, guest.replace(/^\/+/, '').replaceAll('/', '__'));
    await mkdir(proofsDir, { recursive: true });
    try {
      if (volume) {
        const inner = `/${relative(volume.guestPath, guest)}`.replace(/\/$/, '') || '/';
        await opsCopyOut(
          { from: 'volume', name: volume.label, path: inner, dest },
          volumeOpsEnv ? { ...opsOpts, env: volumeOpsEnv } : opsOpts,
        );
      } else {
        await opsCopyOut({ from: 'image', name: imageName, path: guest, dest }, opsOpts);
      }
      const files = await filesUnder(dest);
      if (files.length === 0) {
        record.warnings.push({ code: 'proof-missing', message: `${guest} came back empty` });
      }
      for (const file of files) await add(file, guest);
    } catch (error) {
      record.warnings.push({
        code: 'proof-missing',
        message: `${guest}: ${isUniproveError(error) ? error.message : String(error)}`,
      });
    }
  }
}

async function writeTraceLog(dir: string, record: RunRecord): Promise<void> {
  const text = await readFile(join(dir, CONSOLE_LOG), 'utf8').catch(() => '');
  const lines = text.split('\n').filter(isTraceLine);
  await writeFile(join(dir, 'trace.log'), lines.length ? `${lines.join('\n')}\n` : '');
  record.files.trace = 'trace.log';
}

/** What diagnoseLogs throws for a console with nothing to read: the VM died before printing, or never started. */
const UNREADABLE_CONSOLE = new Set(['E_LOG_INPUT', 'E_NOT_FOUND']);

async function addFindings(record: RunRecord, dir: string, signal?: AbortSignal): Promise<void> {
  const { diagnoseLogs } = await import('../diagnose/index.js');
  try {
    const result = await diagnoseLogs({ logs: [join(dir, CONSOLE_LOG)], ...(signal ? { signal } : {}) });
    record.findings = result.findings;
  } catch (error) {
    // An empty or absent console has nothing to say, and the record still has the exit status; anything else
    // (a bug in a reader, an abort) is not hidden here.
    if (!isUniproveError(error) || !UNREADABLE_CONSOLE.has(error.code)) throw error;
    record.warnings.push({ code: 'no-findings', message: `the console was not diagnosed: ${error.message}` });
  }
}

/**
 * Clone each writable volume into <dir>/ops-home/.ops/volumes (copy-on-write
 * where the file system can), so parallel VMs never share a writable disk, and
 * return an environment in which `ops volume cp` sees those copies (OPS_HOME).
 */
async function privateVolumeCopies(
  dir: string,
  record: RunRecord,
  opsHome: string,
  version: string,
  env: Record<string, string | undefined> | undefined,
): Promise<Record<string, string | undefined>> {
  const { symlink } = await import('node:fs/promises');
  const home = join(dir, 'ops-home');
  const dotOps = join(home, '.ops');
  await mkdir(join(dotOps, 'volumes'), { recursive: true });
  await writeFile(join(dotOps, 'latest.txt'), version);
  await symlink(join(opsHome, version), join(dotOps, version)).catch(() => {});
  record.volumes = await Promise.all(
    record.volumes.map(async (v) => {
      if (v.readOnly) return v;
      const copy = join(dotOps, 'volumes', basename(v.path));
      await cloneFile(v.path, copy);
      return { ...v, path: copy };
    }),
  );
  return { ...env, OPS_HOME: home };
}

/** Read a run record back (for `uniprove run --json` consumers and tests). */
export async function readRunRecord(dir: string): Promise<RunRecord> {
  return (await readJson(join(dir, RECORD_FILE))) as RunRecord;
}

/** Copy a file with copy-on-write when the file system can (a per-VM image or volume copy). */
export async function cloneFile(from: string, to: string): Promise<void> {
  const { constants } = await import('node:fs');
  await copyFile(from, to, constants.COPYFILE_FICLONE);
}
