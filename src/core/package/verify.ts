/**
 * `uniprove verify`: run the packaged program from the package alone,
 * natively, with the package folder as its root file system, to prove the
 * closure complete without a VM. Under strace when it is there, so a failure
 * names the files the program looked for and did not find; under native/rusage.c
 * when it can be compiled, so the result says the CPU time and peak memory the
 * prover took (what the guest needs).
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { runsProgramsWarnings } from '../discover/programs.js';
import type { DiscoverWarning } from '../discover/types.js';
import { UniproveError } from '../errors.js';
import { run, which } from '../exec.js';
import { parseJsonFile, refuseSpecialFile } from '../fs.js';
import { sha256File, sha256Of } from '../hash.js';
import { parseOpsConfig } from '../manifest/schema.js';
import type { OnProgress } from '../progress.js';
import { noProgress } from '../progress.js';
import { failedSearches, parseStraceLog } from '../strace/parse.js';
import { runProbe } from '../strace/probe.js';
import type { TraceSpawn } from '../strace/types.js';
import { checkPackageFiles } from './check.js';
import { readPackageLock } from './layout.js';
import { buildUsageHelper, memoryWarning, readUsage, type VerifyUsage } from './usage.js';

export interface VerifyOptions {
  /** The package folder (from `uniprove package`). */
  package: string;
  /**
   * Run the package as it is on disk even where its files differ from its lock (to see what the program does
   * without a file); by default such a package is refused (E_PACKAGE_CHANGED).
   */
  asIs?: boolean;
  /** Where the run's writable folders (/tmp, volumes) and log go; default <package>/.uniprove/verify. */
  workDir?: string;
  /** Host folders to mount at guest paths (volume contents), guest -> host. */
  binds?: Record<string, string>;
  timeoutMs?: number;
  /** Trace with strace to name missing files (default: when strace is installed). */
  trace?: boolean;
  /** PATH to look tools up on. */
  pathEnv?: string;
  /** uniprove's cache folder, where the usage helper is compiled once (default <package>/.uniprove). */
  cacheDir?: string;
  /** true when running as root (chroot is possible without bubblewrap). */
  isRoot?: boolean;
  /** Console markers around a proof printed on stdout. */
  proofMarkers?: { begin: string; end: string };
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

export interface VerifyProof {
  /** Host path of the proof file brought back. */
  path: string;
  /** Guest path it was written to, or "console". */
  guestPath: string;
  sha256: string;
  size: number;
}

export interface VerifyResult {
  ok: boolean;
  exitCode: number;
  signal?: string;
  /** Files the program looked for and never found (guest paths probed, or names from loader errors). */
  missing: string[];
  sandbox: 'bwrap' | 'chroot';
  traced: boolean;
  durationMs: number;
  /** The CPU time and peak memory of the program's process tree; absent when they could not be measured. */
  usage?: VerifyUsage;
  /**
   * Findings that do not fail the run: figures not measured, a guest given less memory than the program took,
   * programs it ran (runs-programs: they fail inside Nanos).
   */
  warnings: DiscoverWarning[];
  workDir: string;
  /** Files the program wrote under its writable folders, and a console proof if markers were given. */
  proofs: VerifyProof[];
  stdoutTail: string;
  stderrTail: string;
  /** When not ok: why, as an E_VERIFY_FAILED error would say it (the run itself is the result, not thrown). */
  error?: { code: 'E_VERIFY_FAILED'; message: string; hint?: string };
}

/** A shared object's file name: libfoo.so, libfoo.so.1.2 (not ld.so.preload). */
const SHARED_OBJECT = /\.so(\.\d+)*$/;

const LOADER_MISSING =
  /(?:error while loading shared libraries: )?([^\s:'"]+\.so[^\s:'"]*): cannot open shared object file/g;

/** Names of libraries the program's own loader messages say it could not open. */
export function missingFromLoaderMessages(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(LOADER_MISSING)) if (m[1]) names.add(m[1]);
  return [...names].sort();
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** The bubblewrap argv: the image tree as /, fresh /proc and /dev, writable /tmp and volume binds. */
function bwrapArgv(
  bwrap: string,
  pkg: string,
  top: string[],
  binds: [string, string, boolean][],
  env: Record<string, string>,
  argv: string[],
  cwd: string,
) {
  // An empty root holding only the image tree's top-level entries (not local.json and the lock), read-only.
  const args = [bwrap, '--tmpfs', '/'];
  for (const name of top) args.push('--ro-bind', join(pkg, name), `/${name}`);
  args.push('--proc', '/proc', '--dev', '/dev');
  for (const [guest, host, ro] of binds) args.push(ro ? '--ro-bind' : '--bind', host, guest);
  args.push(
    '--remount-ro',
    '/',
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--clearenv',
    '--chdir',
    cwd,
  );
  for (const [k, v] of Object.entries(env).sort()) args.push('--setenv', k, v);
  args.push('--', ...argv);
  return args;
}

type PackageLock = Awaited<ReturnType<typeof readPackageLock>>;
type OpsConfig = ReturnType<typeof parseOpsConfig>;
type Bind = [guest: string, host: string, readOnly: boolean];

/** A package folder's Ops config (local.json), refused with a hint when the folder is no package. */
async function readLocalConfig(pkg: string): Promise<OpsConfig> {
  const configPath = join(pkg, 'local.json');
  await refuseSpecialFile(configPath, 'Ops config', 'Package again with `uniprove package <recipe>`.');
  const configText = await readFile(configPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UniproveError('E_NOT_FOUND', {
      message: `${pkg} is not a uniprove package (${configPath}: ${error.code ?? error.message})`,
      hint: 'Make one with `uniprove package <recipe>` and pass its folder (build/<recipe>).',
      cause: error,
    });
  });
  return parseOpsConfig(parseJsonFile(configText, configPath), configPath);
}

/**
 * The folders the lock lists, each checked to be in the package tree (empty ones included), and the working
 * directory, which Nanos refuses to start without (unless a volume holds it).
 */
async function checkFolders(pkg: string, lock: PackageLock, config: OpsConfig, cwd: string) {
  const folders = (lock.files ?? []).filter((f) => f.type === 'dir');
  const absent: string[] = [];
  for (const f of folders) {
    const info = await stat(join(pkg, f.path)).catch(() => undefined);
    if (!info?.isDirectory()) absent.push(f.path);
  }
  const mountPoints = Object.values(config.Mounts ?? {}).map((m) => m.split(':')[0] ?? '');
  if (cwd !== '/' && !mountPoints.some((m) => cwd === m || cwd.startsWith(`${m}/`))) {
    const info = await stat(join(pkg, cwd)).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new UniproveError('E_VERIFY_FAILED', {
        message: `the working directory ${cwd} (manifestPassthrough.cwd) is not a folder in ${pkg}: Nanos would refuse to start the program ("unable to change cwd")`,
        hint: `Add the folder to the recipe's "dirs" ({ "guest": "${cwd}" }) and package again, or change manifestPassthrough.cwd.`,
        details: { cwd },
      });
    }
  }
  if (absent.length > 0) {
    throw new UniproveError('E_VERIFY_FAILED', {
      message: `${pkg} lacks folder${absent.length === 1 ? '' : 's'} its lock lists: ${absent.join(', ')}`,
      hint: 'Package again with `uniprove package <recipe>`: the tree was changed after it was made.',
      details: { absent },
    });
  }
  return folders;
}

/** Writable folders: /tmp and every volume mount point, empty unless the caller binds content. */
async function writableBinds(
  options: VerifyOptions,
  config: OpsConfig,
  workDir: string,
  folders: readonly { path: string }[],
): Promise<Bind[]> {
  const binds: Bind[] = [];
  const guestWritable = new Set<string>(['/tmp']);
  for (const value of Object.values(config.Mounts ?? {})) {
    const [guest = '', flag] = value.split(':');
    if (flag !== 'ro') guestWritable.add(guest);
  }
  for (const [guest, host] of Object.entries(options.binds ?? {})) binds.push([guest, host, false]);
  for (const guest of [...guestWritable].sort()) {
    if (binds.some(([g]) => g === guest)) continue;
    const host = join(workDir, 'fs', guest);
    await mkdir(host, { recursive: true });
    binds.push([guest, host, false]);
    // A writable folder is mounted fresh over the image's: the image's folders under it are made again there.
    for (const f of folders) {
      if (!f.path.startsWith(`${guest}/`)) continue;
      await mkdir(join(host, f.path.slice(guest.length)), { recursive: true });
    }
  }
  return binds;
}

/** The argv that runs the program with the package as its root: bubblewrap, or chroot when root without it. */
async function sandboxCommand(
  options: VerifyOptions,
  lock: PackageLock,
  config: OpsConfig,
  binds: Bind[],
  argv: string[],
  cwd: string,
): Promise<{ sandbox: VerifyResult['sandbox']; command: string[] }> {
  const pkg = options.package;
  const bwrap = await which('bwrap', options.pathEnv);
  if (bwrap) {
    const top = [...new Set(lock.files.map((f) => f.path.split('/')[1] ?? ''))].filter(Boolean).sort();
    return { sandbox: 'bwrap', command: bwrapArgv(bwrap, pkg, top, binds, config.Env ?? {}, argv, cwd) };
  }
  if (options.isRoot) {
    if (binds.length > 0 && Object.keys(options.binds ?? {}).length > 0) {
      throw new UniproveError('E_TOOL_MISSING', {
        message: 'mounting volume contents needs bubblewrap (bwrap), which is not installed',
        hint: 'apt-get install bubblewrap',
      });
    }
    return {
      sandbox: 'chroot',
      command: [
        (await which('chroot', options.pathEnv)) ?? 'chroot',
        pkg,
        'env',
        '-i',
        ...(cwd !== '/' ? ['-C', cwd] : []),
        ...Object.entries(config.Env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...argv,
      ],
    };
  }
  throw new UniproveError('E_TOOL_MISSING', {
    message: 'verify needs bubblewrap (bwrap) to run the package as its own root without being root',
    hint: 'apt-get install bubblewrap (or run as root, where chroot is used).',
  });
}

type Warning = VerifyResult['warnings'][number];

/**
 * The sandbox command under the usage helper (native/rusage.c), which writes the tree's CPU time and peak memory
 * to `reportPath`; the command as it is, with a warning, when the helper can be neither found nor compiled.
 */
async function measuredCommand(
  options: VerifyOptions,
  command: string[],
  workDir: string,
): Promise<{ command: string[]; reportPath?: string; warning?: Warning }> {
  try {
    const helper = await buildUsageHelper({
      cacheDir: options.cacheDir ?? join(options.package, '.uniprove'),
      ...(options.pathEnv ? { pathEnv: options.pathEnv } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const reportPath = join(workDir, 'rusage.json');
    return { command: [helper, reportPath, ...command], reportPath };
  } catch (error) {
    if (!(error instanceof UniproveError) || error.code === 'E_INTERRUPTED') throw error;
    const message = `the program's CPU time and peak memory were not measured: ${error.message}`;
    return { command, warning: { code: 'usage-unmeasured', message } };
  }
}

/** How the sandboxed program ended, and the libraries it looked for and never found when it failed. */
interface SandboxEnd {
  exitCode: number;
  signal?: string;
  stdout: string;
  stderr: string;
  missing: string[];
  /** Programs the program started, when traced. */
  spawns: TraceSpawn[];
}

/** Run the sandbox command, under strace when `traced`, so a failure names what the program lacked. */
async function runSandboxed(
  options: VerifyOptions,
  command: string[],
  argv: string[],
  workDir: string,
  traced: boolean,
): Promise<SandboxEnd> {
  // The packaged prover itself ran too long: not a probe, not an external tool.
  const timeoutReport = {
    code: 'E_RUN_TIMEOUT' as const,
    what: `the packaged program (${argv.join(' ')})`,
    hint: 'Give it arguments that make it end sooner (a small proof size), or raise --timeout.',
  };
  const limits = {
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs, timeoutReport } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  if (!traced) {
    const r = await run(command, { allowFailure: true, ...limits });
    const missing = r.exitCode !== 0 ? missingFromLoaderMessages(r.stderr) : [];
    return {
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: r.stdout,
      stderr: r.stderr,
      missing,
      spawns: [],
    };
  }
  const probe = await runProbe({
    argv: command,
    logPath: join(workDir, 'strace.log'),
    allowFailure: true,
    ...limits,
  });
  const end: SandboxEnd = {
    exitCode: probe.exitCode,
    signal: probe.signal,
    stdout: probe.stdoutTail,
    stderr: probe.stderrTail,
    missing: [],
    spawns: [],
  };
  // The sandbox's own processes run first: what the program starts comes after its exec.
  const trace = await parseStraceLog(probe.logPath, { cwd: '/', program: argv[0] as string });
  end.spawns = trace.spawns;
  if (end.exitCode !== 0) {
    const searched = failedSearches(trace).filter((s) => SHARED_OBJECT.test(s.basename));
    const fromLoader = missingFromLoaderMessages(end.stderr);
    const names = new Set([...searched.map((s) => s.basename), ...fromLoader]);
    end.missing = [...names].sort().map((name) => {
      const search = searched.find((s) => s.basename === name);
      return search?.probed.at(-1) ?? name;
    });
  }
  return end;
}

/** The files the program wrote under its writable folders, and the proof it printed between console markers. */
async function collectProofs(
  binds: Bind[],
  markers: { begin: string; end: string } | undefined,
  stdout: string,
  workDir: string,
): Promise<VerifyProof[]> {
  const proofs: VerifyProof[] = [];
  for (const [guest, host] of binds) {
    for (const file of await listFiles(host)) {
      const s = await stat(file);
      proofs.push({
        path: file,
        guestPath: posix.join(guest, relative(host, file)),
        sha256: await sha256File(file),
        size: s.size,
      });
    }
  }
  if (markers) {
    const { begin, end } = markers;
    const from = stdout.indexOf(begin);
    const to = from >= 0 ? stdout.indexOf(end, from + begin.length) : -1;
    if (from >= 0 && to > from) {
      const body = stdout.slice(from + begin.length, to).trim();
      const path = join(workDir, 'console-proof.txt');
      await writeFile(path, `${body}\n`);
      proofs.push({
        path,
        guestPath: 'console',
        sha256: sha256Of(`${body}\n`),
        size: Buffer.byteLength(`${body}\n`),
      });
    }
  }
  return proofs;
}

/** Run a package's program from the package alone and report what it lacked. */
export async function verifyPackage(options: VerifyOptions): Promise<VerifyResult> {
  const onProgress = options.onProgress ?? noProgress;
  const pkg = options.package;
  const config = await readLocalConfig(pkg);
  const lock = await readPackageLock(pkg);
  // What runs is what the lock says, or nothing: a file changed since `package` is named, not run as it is.
  if (!options.asIs) await checkPackageFiles(pkg, lock, options.signal ? { signal: options.signal } : {});
  const program = `/${(config.Program ?? lock.program).replace(/^\/+/, '')}`;
  const argv = [program, ...(config.Args ?? [])];
  const workDir = options.workDir ?? join(pkg, '.uniprove', 'verify');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(join(workDir, 'fs'), { recursive: true });
  // Nanos starts the program in the manifest's cwd (Ops: ManifestPassthrough.cwd), else in /.
  const passCwd = config.ManifestPassthrough?.cwd;
  const cwd = typeof passCwd === 'string' && passCwd.startsWith('/') ? passCwd : '/';
  const folders = await checkFolders(pkg, lock, config, cwd);
  const binds = await writableBinds(options, config, workDir, folders);
  const sandboxed = await sandboxCommand(options, lock, config, binds, argv, cwd);
  const { sandbox } = sandboxed;
  const { command, reportPath, warning } = await measuredCommand(options, sandboxed.command, workDir);

  const traced = options.trace ?? Boolean(await which('strace', options.pathEnv));
  onProgress({
    kind: 'step-start',
    step: 'verify',
    detail: `${argv.join(' ')} in ${sandbox}${traced ? ' under strace' : ''}`,
  });
  const started = performance.now();
  const { exitCode, signal, stdout, stderr, missing, spawns } = await runSandboxed(
    options,
    command,
    argv,
    workDir,
    traced,
  );
  const durationMs = performance.now() - started;
  const usage = reportPath ? await readUsage(reportPath) : undefined;
  const warnings: DiscoverWarning[] = [...(warning ? [warning] : []), ...runsProgramsWarnings(spawns)];
  if (reportPath && !usage) {
    const message = `the program's CPU time and peak memory were not measured: the helper left no report in ${reportPath} (its output above may say why)`;
    warnings.push({ code: 'usage-unmeasured', message });
  }
  const memory = usage && memoryWarning(usage, config.RunConfig?.Memory);
  if (memory) warnings.push(memory);

  const markers = options.proofMarkers ?? (lock.proof?.kind === 'console' ? lock.proof : undefined);
  const proofs = await collectProofs(binds, markers, stdout, workDir);
  onProgress({ kind: 'note', step: 'verify', detail: `the program exited with ${exitCode}` });
  const failed =
    exitCode === 0
      ? undefined
      : new UniproveError('E_VERIFY_FAILED', {
          message: `the packaged program exited with ${signal ? `signal ${signal}` : `status ${exitCode}`}${missing.length ? `; missing from the package: ${missing.join(', ')}` : ''}`,
          hint: missing.length
            ? 'Add them to the recipe ("libraries" or "files"), or run `uniprove debug <log> --fix`.'
            : traced
              ? 'No missing file was seen: read the last lines it printed; check its arguments and the volumes it reads (--bind).'
              : 'Run without --no-trace to see the files it searched for and never found.',
        });
  return {
    ...(failed
      ? { error: { code: 'E_VERIFY_FAILED' as const, message: failed.message, hint: failed.hint } }
      : {}),
    ok: exitCode === 0,
    exitCode,
    ...(signal ? { signal } : {}),
    missing,
    sandbox,
    traced,
    durationMs,
    ...(usage ? { usage } : {}),
    warnings,
    workDir,
    proofs,
    stdoutTail: stdout.slice(-8192),
    stderrTail: stderr.slice(-8192),
  };
}
