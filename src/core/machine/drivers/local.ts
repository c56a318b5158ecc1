/**
 * What the two local drivers (qemu, ops) share: Ops and a Nanos release on this host, the run's Ops config
 * (ops-config.json: the exit status wired out, no reboot loop), room for the image, the image built by
 * `ops build` or taken from the image cache, private volume copies for parallel runs, --copy-out and file
 * proofs read back from the image or a volume after the run, and the image removed at the end.
 */
import { copyFile, mkdir, readdir, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { isUniproveError, UniproveError } from '../../errors.js';
import { sha256File } from '../../hash.js';
import { opsConfigText } from '../../manifest/build.js';
import type { OpsConfig } from '../../manifest/schema.js';
import { type NanosRelease, opsCopyOut, removeImage, requireOpsAndNanos } from '../../ops/build.js';
import type { PreparedTarget } from '../../package/target.js';
import { resolveRunConfig } from '../../package/target.js';
import type { OnProgress } from '../../progress.js';
import type { RunProof, RunWarning } from '../../record/record.js';
import type { AccelChoice } from '../accel.js';
import type { DriverRun, MachineReport } from '../driver.js';

/** What a local run takes (`uniprove run`'s options, less what only the front end reads). */
export interface LocalRunOptions {
  /** uniprove's cache (KVM verdict, image cache). */
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
  /** Nanos trace flags (ops run --trace and more). */
  trace?: boolean;
  /** Replace the prover's arguments for this run. */
  args?: string[];
  /** Guest paths to copy out after the run (from the image, or from a volume when under its mount). */
  copyOut?: string[];
  /** Keep the image in ~/.ops/images after the run. */
  keepImage?: boolean;
  /** false: always `ops build`, even when an image of the same inputs is cached. */
  imageCache?: boolean;
  /** Size of the image's root file system (Ops BaseVolumeSz); default the package plus 64 MiB of room. */
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

type OpsOpts = { ops?: string; env?: Record<string, string | undefined>; signal?: AbortSignal };

/** The base of the qemu and ops drivers: everything but how the machine is started and watched. */
export abstract class LocalDriver {
  readonly machineWord = 'QEMU';
  protected readonly opsOpts: OpsOpts;
  protected release: NanosRelease | undefined;
  protected opsPath = '';
  protected config: OpsConfig | undefined;
  protected configPath = '';
  /** An image under ~/.ops/images that is this run's to remove. */
  protected built = false;
  protected volumeEnv: Record<string, string | undefined> | undefined;
  /** The volumes as the machine mounts them: the package's, or this run's private copies. */
  protected volumes: PreparedTarget['volumes'] | undefined;

  constructor(protected readonly options: LocalRunOptions) {
    this.opsOpts = {
      ...(options.ops ? { ops: options.ops } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };
  }

  abstract readonly name: 'qemu' | 'ops';

  protected imageName(run: DriverRun): string {
    return `uniprove-${run.record.id}`;
  }

  async check(_run: DriverRun): Promise<MachineReport> {
    const { opsPath, release } = await requireOpsAndNanos(this.options);
    this.opsPath = opsPath;
    this.release = release;
    return { nanosVersion: release.version };
  }

  /**
   * The run's Ops config in ops-config.json, private volume copies, and room for the image checked; `seen` gets
   * what the record should say of them.
   */
  protected async writeConfig(
    target: PreparedTarget,
    run: DriverRun,
    seen: MachineReport,
  ): Promise<OpsConfig> {
    const { options } = this;
    const { record } = run;
    if (options.volumeCopies && target.volumes.some((v) => !v.readOnly)) {
      const copies = await privateVolumeCopies(
        record.dir,
        target.volumes,
        options.opsHome,
        this.release?.version ?? '',
        options.env,
      );
      this.volumeEnv = copies.env;
      this.volumes = copies.volumes;
      seen.volumes = copies.volumes;
    }
    const pkgBytes = target.bytes;
    const resolved = resolveRunConfig(target.config, {
      packageDir: target.packageDir,
      imageSize: options.imageSize ?? target.config.BaseVolumeSz ?? `${Math.ceil(pkgBytes / 2 ** 20) + 64}m`,
      ...(options.args ? { args: options.args } : {}),
      ...(options.trace ? { trace: true } : {}),
      via: this.name,
    });
    seen.warnings = [...(seen.warnings ?? []), ...resolved.warnings];
    const programPath = join(target.packageDir, resolved.config.Program ?? '');
    const config = run.consoleProof
      ? await run.consoleProof.stage(resolved.config, programPath)
      : resolved.config;
    seen.args = config.Args ?? [];
    this.configPath = join(record.dir, 'ops-config.json');
    await writeFile(this.configPath, opsConfigText(config, record.dir));
    seen.files = { ...seen.files, config: 'ops-config.json' };
    await checkDiskSpace(
      join(options.opsHome, 'images'),
      pkgBytes * 1.1 + (options.diskReserveBytes ?? 64 * 2 ** 20),
    );
    this.config = config;
    return config;
  }

  async fetchProofs(target: PreparedTarget, run: DriverRun): Promise<MachineReport> {
    return copyOutProofs(run.record.dir, target, {
      copyOut: this.options.copyOut ?? [],
      imageName: this.imageName(run),
      opsOpts: this.opsOpts,
      volumeEnv: this.volumeEnv,
    });
  }

  /** Remove the run's image unless kept. */
  protected async removeImage(run: DriverRun): Promise<void> {
    if (!this.built || this.options.keepImage) return;
    this.built = false;
    await removeImage(this.options.opsHome, this.imageName(run)).catch(() => {});
  }
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

/** The guest paths copied out after the run: a file proof, then each --copy-out. */
function copyOutPaths(target: PreparedTarget, copyOut: readonly string[]): string[] {
  return [...(target.proof.kind === 'file' ? [target.proof.path] : []), ...copyOut];
}

/** True when a proof or a --copy-out path lies on the image's own file system (not on a volume). */
export function readsImageAfterRun(target: PreparedTarget, copyOut: readonly string[]): boolean {
  return copyOutPaths(target, copyOut).some((guest) => !volumeFor(target, guest));
}

/** The mounted volume a guest path lies on, if any. */
function volumeFor(target: PreparedTarget, guest: string): PreparedTarget['volumes'][number] | undefined {
  return target.volumes.find(
    (v) => guest === v.guestPath || guest.startsWith(`${v.guestPath.replace(/\/$/, '')}/`),
  );
}

async function filesUnder(path: string): Promise<string[]> {
  const s = await stat(path);
  if (!s.isDirectory()) return [path];
  const out: string[] = [];
  for (const e of (await readdir(path)).sort()) out.push(...(await filesUnder(join(path, e))));
  return out;
}

/**
 * Clone each writable volume into <dir>/ops-home/.ops/volumes (copy-on-write
 * where the file system can), so parallel VMs never share a writable disk, and
 * return an environment in which `ops volume cp` sees those copies (OPS_HOME).
 */
async function privateVolumeCopies(
  dir: string,
  volumes: PreparedTarget['volumes'],
  opsHome: string,
  version: string,
  env: Record<string, string | undefined> | undefined,
): Promise<{ env: Record<string, string | undefined>; volumes: PreparedTarget['volumes'] }> {
  const { symlink } = await import('node:fs/promises');
  const home = join(dir, 'ops-home');
  const dotOps = join(home, '.ops');
  await mkdir(join(dotOps, 'volumes'), { recursive: true });
  await writeFile(join(dotOps, 'latest.txt'), version);
  await symlink(join(opsHome, version), join(dotOps, version)).catch(() => {});
  const copies = await Promise.all(
    volumes.map(async (v) => {
      if (v.readOnly) return v;
      const copy = join(dotOps, 'volumes', basename(v.path));
      await cloneFile(v.path, copy);
      return { ...v, path: copy };
    }),
  );
  return { env: { ...env, OPS_HOME: home }, volumes: copies };
}

/** Copy a file with copy-on-write when the file system can (a per-VM image or volume copy). */
export async function cloneFile(from: string, to: string): Promise<void> {
  const { constants } = await import('node:fs');
  await copyFile(from, to, constants.COPYFILE_FICLONE);
}

/** The file proof and each --copy-out path, read back from the image or the volume it lies on, with digests. */
async function copyOutProofs(
  dir: string,
  target: PreparedTarget,
  a: {
    copyOut: readonly string[];
    imageName: string;
    opsOpts: OpsOpts;
    volumeEnv: Record<string, string | undefined> | undefined;
  },
): Promise<MachineReport> {
  const warnings: RunWarning[] = [];
  const proofs: RunProof[] = [];
  const proofsDir = join(dir, 'proofs');
  for (const guest of copyOutPaths(target, a.copyOut)) {
    const volume = volumeFor(target, guest);
    const dest = join(proofsDir, guest.replace(/^\/+/, '').replaceAll('/', '__'));
    await mkdir(proofsDir, { recursive: true });
    try {
      if (volume) {
        const inner = `/${relative(volume.guestPath, guest)}`.replace(/\/$/, '') || '/';
        await opsCopyOut(
          { from: 'volume', name: volume.label, path: inner, dest },
          a.volumeEnv ? { ...a.opsOpts, env: a.volumeEnv } : a.opsOpts,
        );
      } else {
        await opsCopyOut({ from: 'image', name: a.imageName, path: guest, dest }, a.opsOpts);
      }
      const files = await filesUnder(dest);
      if (files.length === 0) {
        warnings.push({ code: 'proof-missing', message: `${guest} came back empty` });
      }
      for (const file of files) {
        const s = await stat(file);
        proofs.push({
          path: relative(dir, file),
          sha256: await sha256File(file),
          bytes: s.size,
          source: guest,
        });
      }
    } catch (error) {
      warnings.push({
        code: 'proof-missing',
        message: `${guest}: ${isUniproveError(error) ? error.message : String(error)}`,
      });
    }
  }
  return { warnings, proofs };
}
