/**
 * `uniprove setup`: install what local runs need and a new machine lacks — QEMU, Ops, a Nanos release and
 * Ops's common.tar.gz — where Ops itself looks for them (~/.ops). Each part comes from the first source that
 * has it: what is installed already (kept unless `force`), a toolchain folder (UNIPROVE_TOOLCHAIN, checked
 * against its SHA256SUMS), or the internet as Ops's own installer gets it (ops from Ops's release bucket,
 * then `ops update` for the release). Every part is staged beside its place and renamed in, so a failure
 * leaves the part as it was: never a latest.txt naming a release that is not there.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { arch as hostArch } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stripVTControlCharacters } from 'node:util';
import { isUniproveError, UniproveError } from '../errors.js';
import { run, which } from '../exec.js';
import { readJsonIfExists, writeFileAtomic, writeJsonAtomic } from '../fs.js';
import { findNanosRelease, findOps, opsInstallPath, opsVersion } from '../ops/build.js';
import { noProgress, type OnProgress } from '../progress.js';
import {
  checkedToolchainFile,
  compareVersions,
  openToolchainDir,
  type ToolchainDir,
  toolchainNames,
} from './toolchain-dir.js';

/** Where Ops's installer (ops.city/get.sh) downloads the Linux x86_64 ops program from. */
export const OPS_RELEASE_URL = 'https://storage.googleapis.com/cli/linux/ops';

/** What to do when Ops or the release cannot be had: the sources set-up knows, and the manual way. */
export const SETUP_SOURCES_HINT =
  "Ops and the Nanos release come from the internet (Ops's release bucket, then `ops update`) or from a toolchain folder: on a machine without internet, copy one holding ops-linux-amd64.xz, nanos-<version>.tar.xz and their SHA256SUMS, and run `UNIPROVE_TOOLCHAIN=DIR uniprove setup`. By hand, with internet: `curl https://ops.city/get.sh -sSfL | sh` installs both.";

/** The record of what `uniprove setup` installed, beside what it installed; doctor reads it. */
export const SETUP_RECORD = 'uniprove-setup.json';

export type SetupPart = 'qemu' | 'ops' | 'nanos' | 'common';

/** Where a part came from. */
export type SetupSource = 'installed' | 'toolchain' | 'online' | 'apt' | 'host';

export interface SetupStep {
  part: SetupPart;
  /**
   * kept: it was there and stays; installed: it was missing; replaced: --force put a new one over it; updated: a
   * newer release was installed beside the one there (which stays, as `ops update` keeps it).
   */
  action: 'kept' | 'installed' | 'replaced' | 'updated';
  source: SetupSource;
  /** The program, folder or file. */
  path: string;
  version?: string;
  /** The toolchain folder or URL it came from, when it came from one. */
  from?: string;
  detail: string;
}

export interface SetupOptions {
  opsHome: string;
  env: Record<string, string | undefined>;
  /** A toolchain folder (UNIPROVE_TOOLCHAIN) to install from before going online. */
  toolchainDir?: string;
  /** Replace what is installed (ops, the Nanos release, common.tar.gz) with what the sources have. */
  force?: boolean;
  /** Install QEMU with apt-get when it is missing (default true). */
  qemu?: boolean;
  /** Where ops is downloaded from when no toolchain folder has it (default OPS_RELEASE_URL). */
  opsUrl?: string;
  /** How long a download may take to start answering (default 20 s). */
  connectTimeoutMs?: number;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

export interface SetupResult {
  steps: SetupStep[];
  /** Something was installed or replaced. */
  changed: boolean;
  /** The ops uniprove runs. */
  ops: string;
  /** false when ops is only in ~/.ops/bin, which the user's PATH lacks. */
  opsOnPath: boolean;
}

/** What setup remembers of each part it installed. */
type SetupRecord = Partial<Record<SetupPart, Pick<SetupStep, 'source' | 'path' | 'version' | 'from'>>>;

/** What `uniprove setup` recorded in ~/.ops, or an empty record. */
export async function readSetupRecord(opsHome: string): Promise<SetupRecord> {
  return (await readJsonIfExists<SetupRecord>(join(opsHome, SETUP_RECORD))) ?? {};
}

/** A part that could not be installed, and what to do about it. */
interface Missing {
  part: SetupPart;
  why: string;
  fix: string;
}

/** Install QEMU, Ops, a Nanos release and common.tar.gz; throws E_TOOL_MISSING naming each part it could not. */
export async function setupToolchain(options: SetupOptions): Promise<SetupResult> {
  const onProgress = options.onProgress ?? noProgress;
  const say = (line: string) => onProgress({ kind: 'note', step: 'setup', detail: line });
  const steps: SetupStep[] = [];
  const missing: Missing[] = [];
  const toolchain = options.toolchainDir ? await openToolchainDir(options.toolchainDir) : undefined;
  const attempt = async (part: SetupPart, work: () => Promise<SetupStep>): Promise<SetupStep | undefined> => {
    options.signal?.throwIfAborted();
    try {
      const step = await work();
      steps.push(step);
      return step;
    } catch (error) {
      if (!isUniproveError(error) || error.code === 'E_INTERRUPTED' || options.signal?.aborted) throw error;
      if (error.code === 'E_DIGEST_MISMATCH') throw error;
      missing.push({ part, why: error.message, fix: error.hint ?? '' });
      return undefined;
    }
  };

  if (options.qemu !== false) await attempt('qemu', () => installQemu(options, say));
  const ops = await attempt('ops', () => installOps(options, toolchain, say));
  const nanos = ops
    ? await attempt('nanos', () => installNanos(options, toolchain, ops.path, say))
    : undefined;
  if (!ops) {
    missing.push({
      part: 'nanos',
      why: 'not installed: the release comes with Ops (`ops update`), and Ops is missing',
      fix: SETUP_SOURCES_HINT,
    });
  }
  // common.tar.gz completes an Ops install; alone it would only be a partial ~/.ops.
  if (ops && nanos) await attempt('common', () => installCommon(options));

  if (missing.length > 0) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `set-up could not install ${missing.map((m) => m.part).join(', ')}:\n${missing
        .map((m) => `  ${partName(m.part)}: ${m.why}`)
        .join('\n')}`,
      hint: [...new Set(missing.map((m) => m.fix).filter(Boolean))].join(' '),
      details: { missing, installed: steps },
    });
  }
  const opsStep = ops as SetupStep;
  if (opsStep.version === undefined) {
    opsStep.version = await opsVersion({ ops: opsStep.path, env: options.env as Record<string, string> })
      .then((v) => v.ops)
      .catch(() => undefined);
  }
  await writeSetupRecord(options.opsHome, steps);
  const located = await findOps({ env: options.env, opsHome: options.opsHome });
  return {
    steps,
    changed: steps.some((s) => s.action !== 'kept'),
    ops: opsStep.path,
    opsOnPath: located?.onPath ?? false,
  };
}

function partName(part: SetupPart): string {
  return { qemu: 'QEMU', ops: 'Ops', nanos: 'the Nanos release', common: '~/.ops/common.tar.gz' }[part];
}

/** Remember where each installed part came from; parts kept as they were keep what was recorded of them. */
async function writeSetupRecord(opsHome: string, steps: SetupStep[]): Promise<void> {
  const record = await readSetupRecord(opsHome);
  let changed = false;
  for (const s of steps) {
    if (s.action === 'kept') continue;
    record[s.part] = {
      source: s.source,
      path: s.path,
      ...(s.version ? { version: s.version } : {}),
      ...(s.from ? { from: s.from } : {}),
    };
    changed = true;
  }
  if (changed) await writeJsonAtomic(join(opsHome, SETUP_RECORD), record);
}

async function installQemu(options: SetupOptions, say: (line: string) => void): Promise<SetupStep> {
  const PATH = options.env.PATH;
  const present = async () => (await which('qemu-system-x86_64', PATH)) && (await which('qemu-img', PATH));
  const version = async (qemu: string) =>
    (await run([qemu, '--version'], { allowFailure: true, timeoutMs: 10_000 })).stdout.split('\n')[0]?.trim();
  const found = await which('qemu-system-x86_64', PATH);
  if (found && (await present())) {
    return {
      part: 'qemu',
      action: 'kept',
      source: 'installed',
      path: found,
      version: await version(found),
      detail: 'installed before',
    };
  }
  const fix =
    'Install QEMU with your package manager: `sudo apt-get install qemu-system-x86 qemu-utils` (Debian, Ubuntu), `sudo dnf install qemu-system-x86 qemu-img` (Fedora).';
  const aptGet = await which('apt-get', PATH);
  if (!aptGet)
    throw new UniproveError('E_TOOL_MISSING', {
      message:
        'qemu-system-x86_64 or qemu-img is not installed, and there is no apt-get here to install them',
      hint: fix,
    });
  const root = process.getuid?.() === 0;
  const sudo = root ? undefined : await which('sudo', PATH);
  if (
    !root &&
    !(sudo && (await run([sudo, '-n', 'true'], { allowFailure: true, timeoutMs: 10_000 })).exitCode === 0)
  ) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: 'QEMU is not installed, and installing it needs root (sudo asks for a password)',
      hint: fix,
    });
  }
  const asRoot = (argv: string[]) => (sudo ? [sudo, '-n', ...argv] : argv);
  const install = asRoot([aptGet, 'install', '-y', '-qq', 'qemu-system-x86', 'qemu-utils']);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const common = {
    env,
    allowFailure: true,
    timeoutMs: 15 * 60_000,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  say('qemu: installing qemu-system-x86 and qemu-utils with apt-get');
  let result = await run(install, common);
  if (result.exitCode !== 0) {
    // A fresh machine's package lists may be empty: read them once, then try again.
    await run(asRoot([aptGet, 'update', '-qq']), common);
    result = await run(install, common);
  }
  const qemu = await which('qemu-system-x86_64', PATH);
  if (result.exitCode !== 0 || !qemu || !(await present())) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `apt-get could not install QEMU (exit ${result.exitCode})`,
      hint: fix,
      details: { stderrTail: stripVTControlCharacters(result.stderr).slice(-2000) },
    });
  }
  return {
    part: 'qemu',
    action: 'installed',
    source: 'apt',
    path: qemu,
    version: await version(qemu),
    detail: 'apt-get install qemu-system-x86 qemu-utils',
  };
}

/** The toolchain's ops for this machine: ops-linux-amd64.xz on x86_64. */
function opsArchiveName(): string {
  return `ops-linux-${hostArch() === 'arm64' ? 'arm64' : 'amd64'}.xz`;
}

async function installOps(
  options: SetupOptions,
  toolchain: ToolchainDir | undefined,
  say: (line: string) => void,
): Promise<SetupStep> {
  const found = await findOps({ env: options.env, opsHome: options.opsHome });
  if (found && !options.force) {
    return {
      part: 'ops',
      action: 'kept',
      source: 'installed',
      path: found.path,
      detail: found.onPath ? 'installed before, on PATH' : 'installed before, in ~/.ops/bin',
    };
  }
  const target = opsInstallPath(options.opsHome);
  const action = (await stat(target).catch(() => undefined)) ? 'replaced' : 'installed';
  const archive = toolchain
    ? (await toolchainNames(toolchain, new RegExp(`^${opsArchiveName().replace('.', '\\.')}$`)))[0]
    : undefined;
  if (toolchain && archive) {
    const file = await checkedToolchainFile(toolchain, archive, options.signal);
    say(`ops: unpacking ${file.path} (sha256 matches SHA256SUMS)`);
    await stageInto(target, async (staged) => {
      await copyFile(file.path, `${staged}.xz`);
      await unxz(`${staged}.xz`, options);
    });
    return {
      part: 'ops',
      action,
      source: 'toolchain',
      path: target,
      from: toolchain.dir,
      detail: `from ${file.path}`,
    };
  }
  const url = options.opsUrl ?? OPS_RELEASE_URL;
  say(
    `ops: downloading ${url}${toolchain ? ` (the toolchain folder ${toolchain.dir} has no ${opsArchiveName()})` : ''}`,
  );
  await stageInto(target, (staged) => download(url, staged, options));
  return {
    part: 'ops',
    action,
    source: 'online',
    path: target,
    from: url,
    detail: `downloaded from ${url}, as Ops's installer does`,
  };
}

/**
 * Write a file through a staging path beside `target` (same folder, so the rename is atomic), make it
 * executable, check it is an ELF program, and rename it into place; on any failure the staged file goes.
 */
async function stageInto(target: string, write: (staged: string) => Promise<void>): Promise<void> {
  const created = await mkdirCreated(dirname(target));
  const staged = `${target}.staging-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await write(staged);
    const head = Buffer.alloc(4);
    const fh = await open(staged, 'r');
    try {
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
      throw new UniproveError('E_TOOL_MISSING', {
        message: `what was fetched for ${target} is not a program (no ELF header)`,
        hint: SETUP_SOURCES_HINT,
      });
    }
    await chmod(staged, 0o755);
    await rename(staged, target);
  } catch (error) {
    await rm(staged, { force: true });
    await rm(`${staged}.xz`, { force: true });
    if (created) await rm(created, { recursive: true, force: true });
    throw error;
  }
}

/** mkdir -p, returning the topmost folder it created (to remove on failure), or undefined. */
async function mkdirCreated(dir: string): Promise<string | undefined> {
  return (await mkdir(dir, { recursive: true })) ?? undefined;
}

/** The program that unpacks toolchain archives (tar, xz), or E_TOOL_MISSING before anything is unpacked. */
async function requireUnpacker(name: 'tar' | 'xz', options: SetupOptions): Promise<string> {
  const found = await which(name, options.env.PATH);
  if (found) return found;
  throw new UniproveError('E_TOOL_MISSING', {
    message: `${name} is not installed: it unpacks the toolchain folder`,
    hint: 'apt-get install tar xz-utils',
    details: { tool: name },
  });
}

/** `xz -d FILE.xz` (leaves FILE), through exec; xz is what unpacks every toolchain archive. */
async function unxz(file: string, options: SetupOptions): Promise<void> {
  const xz = await requireUnpacker('xz', options);
  await run([xz, '-d', '-f', '--', file], {
    timeoutMs: 5 * 60_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Download `url` to `dest`, streamed; any failure is E_TOOL_MISSING naming the URL (set-up is offline). */
async function download(url: string, dest: string, options: SetupOptions): Promise<void> {
  const connect = AbortSignal.timeout(options.connectTimeoutMs ?? 20_000);
  const signal = options.signal ? AbortSignal.any([options.signal, connect]) : connect;
  try {
    const response = await fetch(url, { signal, redirect: 'follow' });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    await pipeline(
      Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
      createWriteStream(dest),
    );
  } catch (error) {
    options.signal?.throwIfAborted();
    const cause = error as Error & { cause?: { code?: string; message?: string } };
    const why = cause.cause?.code ?? cause.cause?.message ?? cause.message;
    throw new UniproveError('E_TOOL_MISSING', {
      message: `could not download ${url} (${why})`,
      hint: SETUP_SOURCES_HINT,
      cause: error,
    });
  }
}

async function installNanos(
  options: SetupOptions,
  toolchain: ToolchainDir | undefined,
  ops: string,
  say: (line: string) => void,
): Promise<SetupStep> {
  const current = await findNanosRelease(options.opsHome).catch(() => undefined);
  const offered = toolchain ? await newestToolchainRelease(toolchain) : undefined;
  const newer = current && offered && compareVersions(offered.version, current.version) > 0;
  if (current && !options.force && newer && toolchain && offered) {
    // A newer release offered (0.1.55.1, with the unmap-deadlock fix, over 0.1.55): installed beside the old.
    const file = await checkedToolchainFile(toolchain, offered.archive, options.signal);
    say(
      `nanos: ${file.path} is newer than the installed ${current.version}; unpacking it (sha256 matches SHA256SUMS)`,
    );
    const dir = await installRelease(options, file.path, offered.version);
    return {
      part: 'nanos',
      action: 'updated',
      source: 'toolchain',
      path: dir,
      version: offered.version,
      from: toolchain.dir,
      detail: `Nanos ${offered.version} from ${file.path}, newer than ${current.version} (which stays in ${current.dir}; \`--nanos-version ${current.version}\` still runs it)`,
    };
  }
  if (current && !options.force) {
    return {
      part: 'nanos',
      action: 'kept',
      source: 'installed',
      path: current.dir,
      version: current.version,
      detail: `Nanos ${current.version}, installed before`,
    };
  }
  if (toolchain && offered) {
    const { archive, version } = offered;
    const file = await checkedToolchainFile(toolchain, archive, options.signal);
    say(`nanos: unpacking ${file.path} (sha256 matches SHA256SUMS)`);
    const dir = await installRelease(options, file.path, version);
    return {
      part: 'nanos',
      action: current ? 'replaced' : 'installed',
      source: 'toolchain',
      path: dir,
      version,
      from: toolchain.dir,
      detail: `Nanos ${version} from ${file.path}`,
    };
  }
  say(
    `nanos: running \`${ops} update\`${toolchain ? ` (the toolchain folder ${toolchain.dir} has no nanos-<version>.tar.xz)` : ''}`,
  );
  const result = await run([ops, 'update'], {
    allowFailure: true,
    timeoutMs: 15 * 60_000,
    env: options.env,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const release = await findNanosRelease(options.opsHome).catch(() => undefined);
  if (result.exitCode !== 0 || !release) {
    const output = stripVTControlCharacters(result.stdout + result.stderr).trim();
    throw new UniproveError('E_NANOS_MISSING', {
      message: `\`ops update\` could not download a Nanos release (exit ${result.exitCode}${output ? `: ${output.split('\n').at(-1)}` : ''})`,
      hint: SETUP_SOURCES_HINT,
      details: { stderrTail: output.slice(-2000) },
    });
  }
  return {
    part: 'nanos',
    action: current ? 'replaced' : 'installed',
    source: 'online',
    path: release.dir,
    version: release.version,
    from: 'ops update',
    detail: `Nanos ${release.version} from \`ops update\``,
  };
}

/** The newest Nanos release a toolchain folder offers (the highest nanos-<version>.tar.xz), if any. */
export async function newestToolchainRelease(
  toolchain: ToolchainDir,
): Promise<{ archive: string; version: string } | undefined> {
  const archive = (await toolchainNames(toolchain, /^nanos-\d+(\.\d+)*\.tar\.xz$/)).at(-1);
  if (!archive) return undefined;
  return { archive, version: /^nanos-(.+)\.tar\.xz$/.exec(archive)?.[1] as string };
}

/**
 * Unpack a release tarball (its top folder is the version) into ~/.ops/<version> and name it in
 * latest.txt, in that order: latest.txt never names a folder that is not whole.
 */
async function installRelease(options: SetupOptions, tarball: string, version: string): Promise<string> {
  const { opsHome } = options;
  const created = await mkdirCreated(opsHome);
  const staging = await mkdtemp(join(opsHome, '.nanos-staging-'));
  const dir = join(opsHome, version);
  const old = `${dir}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const tar = await requireUnpacker('tar', options);
    await requireUnpacker('xz', options); // tar -J runs it
    await run([tar, '-xJf', tarball, '-C', staging, '--no-same-owner', '--no-same-permissions'], {
      timeoutMs: 5 * 60_000,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const unpacked = join(staging, version);
    for (const part of ['kernel.img', 'boot.img']) {
      if (!(await stat(join(unpacked, part)).catch(() => undefined))?.isFile()) {
        throw new UniproveError('E_NANOS_MISSING', {
          message: `${tarball} holds no ${version}/${part}`,
          hint: 'A Nanos release tarball holds one folder named after its version, with kernel.img, boot.img and klibs/.',
        });
      }
    }
    const had = Boolean(await stat(dir).catch(() => undefined));
    if (had) await rename(dir, old);
    await rename(unpacked, dir);
    await writeFileAtomic(join(opsHome, 'latest.txt'), `${version}\n`);
    if (had) await rm(old, { recursive: true, force: true });
    return dir;
  } catch (error) {
    if (!(await stat(dir).catch(() => undefined)) && (await stat(old).catch(() => undefined)))
      await rename(old, dir);
    if (created) await rm(created, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Where hosts keep the two files Ops's common.tar.gz holds. */
const COMMON_FILES: Record<string, string[]> = {
  'libnss_dns.so.2': ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64'].map((d) =>
    join(d, 'libnss_dns.so.2'),
  ),
  'ca-certificates.crt': ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'],
};

/**
 * ~/.ops/common.tar.gz, which Ops unpacks into every image (and downloads when it is missing, so offline
 * every build would fail): made from this host's libnss_dns.so.2 and CA bundle, as the toolchain's README says.
 */
async function installCommon(options: SetupOptions): Promise<SetupStep> {
  const target = join(options.opsHome, 'common.tar.gz');
  const present = await stat(target).catch(() => undefined);
  if (present && !options.force) {
    return { part: 'common', action: 'kept', source: 'installed', path: target, detail: 'installed before' };
  }
  const staging = await mkdtemp(join(options.opsHome, '.common-staging-'));
  try {
    const names: string[] = [];
    for (const [name, candidates] of Object.entries(COMMON_FILES)) {
      for (const candidate of candidates) {
        const data = await readFile(candidate).catch(() => undefined);
        if (!data) continue;
        await writeFileAtomic(join(staging, name), data);
        names.push(name);
        break;
      }
    }
    if (!names.includes('libnss_dns.so.2')) {
      throw new UniproveError('E_TOOL_MISSING', {
        message: `this host has no libnss_dns.so.2 (looked in ${COMMON_FILES['libnss_dns.so.2']?.join(', ')}) for ~/.ops/common.tar.gz`,
        hint: "Install glibc's NSS modules (apt-get install libc6), or copy common.tar.gz from a machine that has it into ~/.ops.",
      });
    }
    const { create } = await import('tar');
    const archive = join(staging, 'common.tar.gz');
    await create({ gzip: true, file: archive, cwd: staging, portable: true, mtime: new Date(0) }, names);
    await rename(archive, target);
    return {
      part: 'common',
      action: present ? 'replaced' : 'installed',
      source: 'host',
      path: target,
      detail: `${names.join(' and ')} from this host`,
    };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
