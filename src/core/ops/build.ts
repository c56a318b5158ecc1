/**
 * Ops commands a local run needs beyond volumes: finding the Nanos release in
 * ~/.ops, `ops version`, `ops build` (the image writer), and copying files out
 * of an image or a volume after a run. Every call goes through exec.ts.
 */
import { access, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { UniproveError } from '../errors.js';
import { run, which } from '../exec.js';

/** How to call ops: which program, with what environment, for how long. */
export interface OpsOptions {
  /** The ops program (default `ops` on PATH). */
  ops?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
}

/** The one way to install Ops and a Nanos release that uniprove names everywhere. */
export const OPS_INSTALL_HINT =
  "Run `uniprove setup`: it installs Ops into ~/.ops/bin with Ops's own installer and a Nanos release with `ops update` (offline: `UNIPROVE_TOOLCHAIN=DIR uniprove setup` installs both from a toolchain folder).";

/** What to do when no Nanos release is installed. */
export const NANOS_INSTALL_HINT =
  'Run `uniprove setup` (it runs `ops update`, or installs the release of a toolchain folder named by UNIPROVE_TOOLCHAIN), or unpack a release into ~/.ops/<version>/ and write <version> to ~/.ops/latest.txt.';

/** Ops's home folder: $OPS_HOME/.ops when set, else ~/.ops (as lepton.GetOpsHome does). */
export function opsHomeDir(env: { OPS_HOME?: string | undefined; HOME?: string | undefined }): string {
  return join(env.OPS_HOME || env.HOME || '/root', '.ops');
}

/** Where Ops's own installer puts the ops program: <opsHome>/bin/ops. */
export function opsInstallPath(opsHome: string): string {
  return join(opsHome, 'bin', 'ops');
}

/** The ops program uniprove will run, and whether the user's PATH finds it too. */
export interface OpsLocation {
  path: string;
  /** false when it was found only in <opsHome>/bin, which Ops's installer adds to a shell profile, not to PATH. */
  onPath: boolean;
}

/**
 * The ops program: the one named (`--ops`), else the first on PATH, else <opsHome>/bin/ops, where Ops's
 * installer and `uniprove setup` put it (a new shell has it on PATH; this one may not). undefined when none.
 */
export async function findOps(options: {
  ops?: string | undefined;
  env?: { PATH?: string | undefined } | undefined;
  opsHome: string;
}): Promise<OpsLocation | undefined> {
  const named = await which(options.ops ?? 'ops', options.env?.PATH);
  if (named) return { path: named, onPath: true };
  if (options.ops) return undefined;
  const installed = await which(opsInstallPath(options.opsHome));
  return installed ? { path: installed, onPath: false } : undefined;
}

/**
 * The ops program an Ops command runs: `options.ops`, else what findOps finds (PATH, then ~/.ops/bin), else
 * plain `ops`, whose absence the run then reports as E_TOOL_MISSING with the install hint.
 */
export async function opsProgram(options: OpsOptions): Promise<string> {
  if (options.ops) return options.ops;
  const env = options.env ?? process.env;
  return (await findOps({ env, opsHome: opsHomeDir({ HOME: homedir(), ...env }) }))?.path ?? 'ops';
}

/** A Nanos release Ops manages: ~/.ops/<version>/{kernel.img,boot.img,klibs}. */
export interface NanosRelease {
  version: string;
  dir: string;
  kernel: string;
  boot: string;
}

const VERSION = /^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/;

/** Text fit for a terminal: quoted, control and other unprintable characters as `?`, cut at 60 characters. */
function printable(text: string): string {
  const shown = text.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(shown.length > 60 ? `${shown.slice(0, 60)}…` : shown);
}

/**
 * The Nanos release Ops will use: `version` when given, else the one named in
 * ~/.ops/latest.txt (what Ops falls back to offline). Throws E_NANOS_MISSING.
 */
export async function findNanosRelease(opsHome: string, version?: string): Promise<NanosRelease> {
  let v = version;
  if (!v) {
    const latest = join(opsHome, 'latest.txt');
    v = (await readFile(latest, 'utf8').catch(() => '')).trim();
    if (!v) {
      throw new UniproveError('E_NANOS_MISSING', {
        message: `no Nanos release: ${latest} is missing or empty`,
        hint: NANOS_INSTALL_HINT,
        details: { opsHome },
      });
    }
    // A garbled latest.txt names no release, as an empty one does: the same error, never its raw bytes.
    if (!VERSION.test(v)) {
      throw new UniproveError('E_NANOS_MISSING', {
        message: `no Nanos release: ${latest} does not name one (it holds ${printable(v)})`,
        hint: NANOS_INSTALL_HINT,
        details: { opsHome },
      });
    }
  }
  if (!VERSION.test(v)) {
    throw new UniproveError('E_USAGE', {
      message: `Nanos version ${printable(v)} is not a version`,
      hint: 'Give a version such as 0.1.55 (see `ls ~/.ops`).',
    });
  }
  const dir = join(opsHome, v);
  const release: NanosRelease = {
    version: v,
    dir,
    kernel: join(dir, 'kernel.img'),
    boot: join(dir, 'boot.img'),
  };
  for (const file of [release.kernel, release.boot]) {
    if (!(await stat(file).catch(() => undefined))?.isFile()) {
      throw new UniproveError('E_NANOS_MISSING', {
        message: `Nanos release ${v} is incomplete or absent: ${file} is missing`,
        hint: version
          ? `Fetch it with \`ops update --nanos-version ${v}\` (online), or drop --nanos-version to use the release in ~/.ops/latest.txt.`
          : NANOS_INSTALL_HINT,
        details: { opsHome, version: v },
      });
    }
  }
  return release;
}

/** Ops (on PATH or in ~/.ops/bin) and the Nanos release it will use, checked before anything is built. */
export async function requireOpsAndNanos(options: {
  ops?: string | undefined;
  env?: { PATH?: string | undefined } | undefined;
  opsHome: string;
  nanosVersion?: string | undefined;
}): Promise<{ opsPath: string; release: NanosRelease }> {
  const found = await findOps(options);
  if (!found) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: options.ops
        ? `ops is not installed at ${options.ops}`
        : `ops is not installed: not on PATH, nor in ${opsInstallPath(options.opsHome)}`,
      hint: OPS_INSTALL_HINT,
      details: { tool: 'ops' },
    });
  }
  return { opsPath: found.path, release: await findNanosRelease(options.opsHome, options.nanosVersion) };
}

/** What `ops version` reports. */
export interface OpsVersion {
  ops: string;
  nanos: string | undefined;
  /** The ops program that answered. */
  path: string;
}

function execOptions(options: OpsOptions, timeoutMs: number) {
  return {
    installHint: OPS_INSTALL_HINT,
    timeoutMs: options.timeoutMs ?? timeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.env ? { env: options.env } : {}),
    timeoutReport: {
      hint: 'Ops did not answer in time: run the command by hand to see where it stops (a first run may be downloading a Nanos release; `uniprove doctor` checks ~/.ops).',
    },
  };
}

/** `ops version`, parsed ("Ops version: X", "Nanos version: Y"). */
export async function opsVersion(options: OpsOptions = {}): Promise<OpsVersion> {
  const ops = await opsProgram(options);
  const result = await run([ops, 'version'], { ...execOptions(options, 30_000), allowFailure: true });
  const text = stripVTControlCharacters(result.stdout + result.stderr);
  const opsV = /Ops version:\s*(\S+)/.exec(text)?.[1];
  if (result.exitCode !== 0 || !opsV) {
    const noBuild = /No local build found/i.test(text);
    throw new UniproveError(noBuild ? 'E_NANOS_MISSING' : 'E_OPS', {
      message: noBuild
        ? 'ops found no Nanos release (it says "No local build found")'
        : `\`${ops} version\` failed (exit ${result.exitCode})`,
      hint: noBuild
        ? 'Run `ops update` (online), or install a release into ~/.ops/<version>/ and name it in ~/.ops/latest.txt.'
        : 'Run `ops version` by hand to see what is wrong.',
      details: { stderrTail: text.slice(-2000) },
    });
  }
  return { ops: opsV, nanos: /Nanos version:\s*(\S+)/.exec(text)?.[1], path: ops };
}

export interface OpsBuildSpec {
  /** The package folder: Ops runs there, so the config's relative paths resolve. */
  cwd: string;
  /** The program, relative to `cwd` (the config's Program). */
  program: string;
  /** The Ops config file (absolute). */
  config: string;
  /** Image name: the image lands at <opsHome>/images/<name>. No dots (Ops cuts the name at the first one). */
  imageName: string;
  /** Pin a Nanos release (ops --nanos-version). */
  nanosVersion?: string;
}

export interface OpsBuildResult {
  image: string;
  /** The manifest Ops generated (its --show-debug dump), for the run record. */
  manifest: string;
  output: string;
  durationMs: number;
}

/** `ops build PROGRAM -c CONFIG -i NAME --show-debug` in the package folder. */
export async function opsBuild(spec: OpsBuildSpec, options: OpsOptions = {}): Promise<OpsBuildResult> {
  if (!/^[A-Za-z0-9_-]+$/.test(spec.imageName)) {
    throw new UniproveError('E_USAGE', {
      message: `image name ${JSON.stringify(spec.imageName)} is not allowed`,
      hint: 'Use letters, digits, - and _ (Ops cuts image names at the first dot).',
    });
  }
  const argv = [await opsProgram(options), 'build', spec.program, '-c', spec.config, '-i', spec.imageName];
  if (spec.nanosVersion) argv.push('--nanos-version', spec.nanosVersion);
  argv.push('--show-debug');
  const result = await run(argv, { ...execOptions(options, 10 * 60_000), cwd: spec.cwd, allowFailure: true });
  const output = stripVTControlCharacters(result.stdout + result.stderr);
  const image = /Bootable image file:\s*(\S+)/.exec(output)?.[1];
  if (result.exitCode !== 0 || !image) {
    throw new UniproveError('E_OPS', {
      message: `ops build of ${spec.program} in ${spec.cwd} failed (exit ${result.exitCode})`,
      hint: 'Read the Ops output below. Check the package with `uniprove verify`, and the release with `uniprove doctor`.',
      details: { command: argv, stderrTail: output.slice(-3000) },
    });
  }
  await access(image);
  const manifest = /Manifest:\s*\n([\s\S]*?)\n(?=Bootable image file:)/.exec(output)?.[1]?.trim() ?? '';
  return { image, manifest, output, durationMs: result.durationMs };
}

export interface OpsCopyOutSpec {
  /** `image` reads a local image by name; `volume` a local volume by name or UUID. */
  from: 'image' | 'volume';
  /** Image name, or volume name/UUID. */
  name: string;
  /** Guest path inside that file system. */
  path: string;
  /** Host destination (a file, or a folder for a directory). */
  dest: string;
}

/**
 * `ops image cp -r NAME PATH DEST` / `ops volume cp -r NAME PATH DEST`. Ops logs
 * a missing source and still exits 0, so the destination is checked.
 */
export async function opsCopyOut(spec: OpsCopyOutSpec, options: OpsOptions = {}): Promise<void> {
  const argv = [await opsProgram(options), spec.from, 'cp', '-r', spec.name, spec.path, spec.dest];
  const result = await run(argv, { ...execOptions(options, 10 * 60_000), allowFailure: true });
  const present = await stat(spec.dest).then(
    () => true,
    () => false,
  );
  if (result.exitCode !== 0 || !present) {
    const output = stripVTControlCharacters(result.stdout + result.stderr);
    throw new UniproveError('E_NOT_FOUND', {
      message: `${spec.path} could not be copied out of ${spec.from} ${spec.name}`,
      hint: 'Check that the prover wrote it there (console.log), and that the path is the guest path.',
      details: { command: argv, stderrTail: output.slice(-2000) },
    });
  }
}

/** Delete a local image uniprove built (its file under <opsHome>/images). */
export async function removeImage(opsHome: string, name: string): Promise<void> {
  const { rm } = await import('node:fs/promises');
  if (!/^[A-Za-z0-9_-]+$/.test(name)) return;
  await rm(join(opsHome, 'images', name), { force: true });
}
