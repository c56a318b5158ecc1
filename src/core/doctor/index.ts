/**
 * `uniprove doctor`: is this host ready to prove? Each check says what it saw
 * and, when it fails, the fix. Local runs need ops, a Nanos release, QEMU and
 * disk; KVM, strace, hugepages, GPUs and Google Cloud are checked and reported.
 */
import { mkdir, readdir, readFile, readlink, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { freemem, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { isUniproveError } from '../errors.js';
import { run, which } from '../exec.js';
import { makeTempDir } from '../fs.js';
import { IMAGE_CACHE_BYTES, IMAGE_CACHE_ENTRIES, ImageCache } from '../image/cache.js';
import { checkDevKvm, detectAccel } from '../machine/accel.js';
import {
  findNanosRelease,
  findOps,
  NANOS_INSTALL_HINT,
  OPS_INSTALL_HINT,
  opsBuild,
  opsInstallPath,
  opsVersion,
  removeImage,
} from '../ops/build.js';
import { newestToolchainRelease, readSetupRecord } from '../setup/index.js';
import { compareVersions, openToolchainDir } from '../setup/toolchain-dir.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when not ok (empty when ok). */
  fix: string;
  /** A local run cannot work without it. */
  required: boolean;
}

export interface DoctorOptions {
  opsHome: string;
  cacheDir: string;
  /** Folder runs are written to (its disk is checked too). */
  runsDir: string;
  env?: Record<string, string | undefined>;
  ops?: string;
  qemu?: string;
  /** Memory a recipe asks for (e.g. 2G): checked against this host's. */
  memory?: string;
  /** Check hugepages (a recipe asks for them). */
  hugepages?: boolean;
  /** GPUs a recipe asks for: vfio-bound devices are counted. */
  gpus?: number;
  /** Boot a probe image with KVM when /dev/kvm might work and no verdict is cached (default true). */
  probe?: boolean;
  /** Free bytes wanted for images and volumes (default 2 GiB). */
  minFreeBytes?: number;
  signal?: AbortSignal;
}

export interface DoctorResult {
  checks: DoctorCheck[];
  /** Every required check passed. */
  ok: boolean;
}

const GiB = 2 ** 30;

function sizeToBytes(size: string): number {
  const m = /^(\d+)([kmgt]?)$/i.exec(size.trim());
  if (!m) return Number.NaN;
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]?.toLowerCase() ?? ''] ?? 1;
  return Number(m[1]) * mult;
}

async function existingAncestor(path: string): Promise<string> {
  let p = path;
  while (!(await stat(p).catch(() => undefined))) {
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  return p;
}

/** What one check saw: a DoctorCheck without its name (the list gives it) and with `fix` optional. */
type Outcome = Omit<DoctorCheck, 'name' | 'fix'> & { fix?: string };

/** What every check reads, and what earlier checks found for later ones (the KVM probe needs ops, Nanos, QEMU). */
interface DoctorContext {
  options: DoctorOptions;
  env: Record<string, string | undefined>;
  setup: Awaited<ReturnType<typeof readSetupRecord>>;
  ops?: NonNullable<Awaited<ReturnType<typeof findOps>>>;
  opsOk: boolean;
  nanosOk: boolean;
  qemuPath?: string;
}

/** A check: zero outcomes when it does not apply (hugepages not asked for), several for several disks. */
type Check = (ctx: DoctorContext) => Promise<Outcome[]>;

function opsOptions(ctx: DoctorContext) {
  return { ...(ctx.ops ? { ops: ctx.ops.path } : {}), env: ctx.env as Record<string, string> };
}

/** Where `uniprove setup` got ops or Nanos from, when the one found is the one it installed. */
function origin(ctx: DoctorContext, part: 'ops' | 'nanos', matches: boolean): string {
  const r = ctx.setup[part];
  if (!r || !matches) return 'installed outside `uniprove setup`';
  return `from ${r.source === 'toolchain' ? `the toolchain folder ${r.from}` : r.source === 'online' ? `${r.from} (online)` : r.source} by \`uniprove setup\``;
}

function errorDetail(error: unknown): string {
  return isUniproveError(error) ? error.message : String(error);
}

/** ops, and where it came from. */
async function checkOps(ctx: DoctorContext): Promise<Outcome[]> {
  const { options } = ctx;
  const found = await findOps({
    ...(options.ops ? { ops: options.ops } : {}),
    env: ctx.env,
    opsHome: options.opsHome,
  });
  if (!found) {
    return [
      {
        ok: false,
        required: true,
        detail: `ops is not on PATH, nor in ${opsInstallPath(options.opsHome)}`,
        fix: OPS_INSTALL_HINT,
      },
    ];
  }
  ctx.ops = found;
  const where = found.onPath
    ? found.path
    : `${found.path} (not on PATH; uniprove finds it there; to run ops yourself: export PATH="$HOME/.ops/bin:$PATH")`;
  try {
    const v = await opsVersion(opsOptions(ctx));
    ctx.opsOk = true;
    return [
      {
        ok: true,
        required: true,
        detail: `${where}: Ops ${v.ops}, ${origin(ctx, 'ops', ctx.setup.ops?.path === found.path)}`,
      },
    ];
  } catch (error) {
    return [
      {
        ok: false,
        required: true,
        detail: `${where}: ${errorDetail(error)}`,
        fix: isUniproveError(error) && error.hint ? error.hint : 'Run `ops version` by hand.',
      },
    ];
  }
}

/** A Nanos release. */
async function checkNanos(ctx: DoctorContext): Promise<Outcome[]> {
  try {
    const rel = await findNanosRelease(ctx.options.opsHome);
    ctx.nanosOk = true;
    return [
      {
        ok: true,
        required: true,
        detail: `Nanos ${rel.version} in ${rel.dir}, ${origin(ctx, 'nanos', ctx.setup.nanos?.version === rel.version)}`,
      },
    ];
  } catch (error) {
    return [
      {
        ok: false,
        required: true,
        detail: errorDetail(error),
        fix: isUniproveError(error) && error.hint ? error.hint : NANOS_INSTALL_HINT,
      },
    ];
  }
}

async function checkQemu(ctx: DoctorContext): Promise<Outcome[]> {
  const qemuPath = await which(ctx.options.qemu ?? 'qemu-system-x86_64', ctx.env.PATH);
  if (!qemuPath) {
    return [
      {
        ok: false,
        required: true,
        detail: 'qemu-system-x86_64 is not on PATH',
        fix: 'Run `uniprove setup` (it runs apt-get install qemu-system-x86 qemu-utils), or install QEMU with your package manager (dnf install qemu-system-x86 on Fedora).',
      },
    ];
  }
  ctx.qemuPath = qemuPath;
  const r = await run([qemuPath, '--version'], { allowFailure: true, timeoutMs: 10_000 }).catch(
    () => undefined,
  );
  return [
    { ok: true, required: true, detail: `${qemuPath}: ${r?.stdout.split('\n')[0] ?? 'version unknown'}` },
  ];
}

/** KVM: present, openable, and (booting a tiny image once, when no verdict is cached) working. */
async function checkKvm(ctx: DoctorContext): Promise<Outcome[]> {
  const { options } = ctx;
  const dev = await checkDevKvm();
  let probeImage: string | undefined;
  let probeDir: string | undefined;
  const probeName = `uniprove-kvm-probe-${process.pid}`;
  try {
    if (options.probe !== false && dev.openable && ctx.opsOk && ctx.nanosOk && ctx.qemuPath) {
      const first = await detectAccel({
        cacheDir: options.cacheDir,
        ...(options.qemu ? { qemu: options.qemu } : {}),
      });
      if (first.kvmUsable === undefined) {
        // Build a tiny image (/bin/true, debug_exit) to boot once with KVM.
        probeDir = await makeTempDir('uniprove-kvm-probe-');
        await writeFile(
          join(probeDir, 'config.json'),
          JSON.stringify({ ManifestPassthrough: { debug_exit: 't' } }),
        );
        const built = await opsBuild(
          {
            cwd: probeDir,
            program: '/bin/true',
            config: join(probeDir, 'config.json'),
            imageName: probeName,
          },
          opsOptions(ctx),
        );
        probeImage = built.image;
      }
    }
    const decision = await detectAccel({
      cacheDir: options.cacheDir,
      ...(probeImage ? { probeImage, probeDir: join(probeDir ?? tmpdir(), 'boot') } : {}),
      ...(options.qemu ? { qemu: options.qemu } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const usable = decision.accel === 'kvm' && decision.kvmUsable !== false;
    return [
      {
        ok: usable,
        required: false,
        detail: dev.present
          ? `/dev/kvm present, ${usable ? 'usable' : decision.kvmUsable === false ? 'unusable' : 'not probed'}: runs use ${decision.reason}`
          : `/dev/kvm absent: runs use ${decision.reason}`,
        fix: !dev.present
          ? 'Enable virtualisation (VT-x/AMD-V) in the BIOS, or on a cloud VM enable nested virtualisation; load the kvm_intel or kvm_amd module. Runs work without it under TCG, much slower.'
          : !dev.openable
            ? 'Add your user to the kvm group (`sudo usermod -aG kvm $USER`, then log in again).'
            : 'This host is a virtual machine whose KVM guests die (no nested virtualisation): enable nested virtualisation on the host hypervisor, or accept TCG (runs pass --accel tcg automatically).',
      },
    ];
  } catch (error) {
    return [
      {
        ok: false,
        required: false,
        detail: `the KVM check failed: ${errorDetail(error)}`,
        fix: 'Run `uniprove run --accel tcg` meanwhile.',
      },
    ];
  } finally {
    if (probeImage) await removeImage(options.opsHome, probeName).catch(() => {});
    if (probeDir) await rm(probeDir, { recursive: true, force: true });
  }
}

/** strace, for discovery. */
async function checkStrace(ctx: DoctorContext): Promise<Outcome[]> {
  const stracePath = await which('strace', ctx.env.PATH);
  return [
    {
      ok: Boolean(stracePath),
      required: false,
      detail: stracePath
        ? stracePath
        : 'strace is not on PATH: `uniprove discover`/`package` cannot see files opened at run time',
      fix: 'apt-get install strace',
    },
  ];
}

/** Disk for images, volumes and runs: one outcome per file system. */
async function checkDisk(ctx: DoctorContext): Promise<Outcome[]> {
  const { options } = ctx;
  const minFree = options.minFreeBytes ?? 2 * GiB;
  const places = [join(options.opsHome, 'images'), join(options.opsHome, 'volumes'), options.runsDir];
  const seen = new Map<string, { dir: string; free: number }>();
  for (const p of places) {
    const at = await existingAncestor(p);
    const fs = await statfs(at).catch(() => undefined);
    if (!fs) continue;
    const key = `${fs.type}:${fs.blocks}:${fs.bfree}`;
    if (!seen.has(key)) seen.set(key, { dir: p, free: fs.bavail * fs.bsize });
  }
  return [...seen.values()].map(({ dir, free }) => ({
    ok: free >= minFree,
    required: true,
    detail: `${(free / GiB).toFixed(1)} GiB free for ${dir}`,
    fix: `Free space there (ops image delete, old runs) or set OPS_HOME to a bigger disk; at least ${(minFree / GiB).toFixed(1)} GiB is wanted.`,
  }));
}

/** The image cache (run keeps the images ops build made): what it holds, and how to empty it. */
async function checkImageCache(ctx: DoctorContext): Promise<Outcome[]> {
  const imageCache = ImageCache.in(ctx.options.cacheDir);
  const cached = await imageCache.usage();
  return [
    {
      ok: true,
      required: false,
      detail: `${cached.images} image${cached.images === 1 ? '' : 's'}, ${(cached.bytes / 2 ** 20).toFixed(0)} MiB on disk in ${imageCache.dir} (at most ${IMAGE_CACHE_ENTRIES} and ${IMAGE_CACHE_BYTES / GiB} GiB; rm -rf it to empty)`,
    },
  ];
}

/** Memory: reported always, required when a recipe asks for some. */
async function checkMemory(ctx: DoctorContext): Promise<Outcome[]> {
  const { memory } = ctx.options;
  const want = memory ? sizeToBytes(memory) : undefined;
  return [
    {
      ok: want === undefined || (Number.isFinite(want) && want + 256 * 2 ** 20 <= totalmem()),
      required: want !== undefined,
      detail: `${(totalmem() / GiB).toFixed(1)} GiB total, ${(freemem() / GiB).toFixed(1)} GiB free${want !== undefined ? `; the recipe asks for ${memory}` : ''}`,
      fix: 'Lower resources.memory in the recipe (or --memory), or run on a bigger host.',
    },
  ];
}

/** Hugepages, when a recipe asks for them. */
async function checkHugepages(ctx: DoctorContext): Promise<Outcome[]> {
  if (!ctx.options.hugepages) return [];
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const total = Number(/^HugePages_Total:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const free = Number(/^HugePages_Free:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return [
    {
      ok: free > 0,
      required: true,
      detail: `${free} of ${total} hugepages free`,
      fix: 'Reserve hugepages: `echo N | sudo tee /proc/sys/vm/nr_hugepages` (or hugepages=N on the kernel command line).',
    },
  ];
}

/** GPUs bound to vfio-pci, when a recipe asks for some. */
async function checkGpus(ctx: DoctorContext): Promise<Outcome[]> {
  const { gpus } = ctx.options;
  if (!gpus || gpus <= 0) return [];
  const vfio = await vfioGpus();
  return [
    {
      ok: vfio.length >= gpus,
      required: true,
      detail: vfio.length ? `vfio-bound GPUs: ${vfio.join(', ')}` : 'no GPU is bound to vfio-pci',
      fix: `Bind ${gpus} GPU(s) to vfio-pci (driverctl set-override <PCI address> vfio-pci) and enable the IOMMU (intel_iommu=on / amd_iommu=on).`,
    },
  ];
}

/** Google Cloud credentials, for the gcp commands. */
async function checkGcpCredentials(ctx: DoctorContext): Promise<Outcome[]> {
  const { env } = ctx;
  const credFile =
    env.GOOGLE_APPLICATION_CREDENTIALS ||
    join(
      env.CLOUDSDK_CONFIG || join(env.HOME || '/root', '.config', 'gcloud'),
      'application_default_credentials.json',
    );
  const credOk = Boolean(await stat(credFile).catch(() => undefined));
  return [
    {
      ok: credOk,
      required: false,
      detail: credOk
        ? `credentials: ${credFile}`
        : `no Google Cloud credentials (${credFile} is missing); only needed for gcp commands`,
      fix: 'gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file.',
    },
  ];
}

/** A Google Cloud project, for the gcp commands. */
async function checkGcpProject(ctx: DoctorContext): Promise<Outcome[]> {
  const { env } = ctx;
  const project = env.GOOGLE_CLOUD_PROJECT || env.CLOUDSDK_CORE_PROJECT || (await gcloudProject(env));
  return [
    {
      ok: Boolean(project),
      required: false,
      detail: project ? `project ${project}` : 'no Google Cloud project set; only needed for gcp commands',
      fix: 'gcloud config set project PROJECT_ID, or set GOOGLE_CLOUD_PROJECT.',
    },
  ];
}

/**
 * A newer Nanos release than the installed one, offered by the toolchain folder set-up used (or
 * UNIPROVE_TOOLCHAIN): `uniprove setup` installs it beside the old one. Nothing to say without such a folder.
 */
async function checkNanosUpdate(ctx: DoctorContext): Promise<Outcome[]> {
  if (!ctx.nanosOk) return [];
  const dir =
    ctx.env.UNIPROVE_TOOLCHAIN ||
    (ctx.setup.nanos?.source === 'toolchain' ? ctx.setup.nanos.from : undefined);
  if (!dir) return [];
  const toolchain = await openToolchainDir(dir).catch(() => undefined);
  const offered = toolchain ? await newestToolchainRelease(toolchain) : undefined;
  const installed = await findNanosRelease(ctx.options.opsHome).catch(() => undefined);
  if (!offered || !installed) return [];
  if (compareVersions(offered.version, installed.version) <= 0) {
    return [
      {
        ok: true,
        required: false,
        detail: `Nanos ${installed.version} is the newest release the toolchain folder ${dir} offers`,
      },
    ];
  }
  return [
    {
      ok: false,
      required: false,
      detail: `Nanos ${installed.version} is installed, and the toolchain folder ${dir} offers ${offered.version}, a newer release`,
      fix: `Run \`UNIPROVE_TOOLCHAIN=${dir} uniprove setup\`: it installs ${offered.version} beside ${installed.version} and makes it the one runs use.`,
    },
  ];
}

/**
 * Whether the installed kernel has Nanos's unmap deadlock with more than one vCPU: a 2-vCPU reproducer booted
 * once per kernel (cached by its digest); with --no-probe only a cached verdict is read.
 */
async function checkUnmapDeadlock(ctx: DoctorContext): Promise<Outcome[]> {
  const { options } = ctx;
  if (!ctx.opsOk || !ctx.nanosOk || !ctx.qemuPath) return [];
  try {
    const { probeUnmapDeadlock, UNMAP_DEADLOCK_FIX } = await import('../machine/unmap-probe.js');
    const v = await probeUnmapDeadlock({
      opsHome: options.opsHome,
      cacheDir: options.cacheDir,
      env: ctx.env,
      ...(ctx.ops ? { ops: ctx.ops.path } : {}),
      ...(options.qemu ? { qemu: options.qemu } : {}),
      ...(options.probe === false ? { cacheOnly: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const when = v.cached ? ` (probed ${v.probedAt})` : '';
    if (v.affected === false) {
      return [
        {
          ok: true,
          required: false,
          detail: `Nanos ${v.kernel.version} has no unmap deadlock: ${v.detail}${when}; runs use every vCPU they ask for`,
        },
      ];
    }
    if (v.affected === true) {
      return [
        {
          ok: false,
          required: false,
          detail: `Nanos ${v.kernel.version} HAS the unmap deadlock: ${v.detail}${when}. A prover that unmaps file mappings while another thread faults stops the whole guest, so runs that ask for more than one vCPU get one`,
          fix: UNMAP_DEADLOCK_FIX,
        },
      ];
    }
    return [
      {
        ok: false,
        required: false,
        detail: `whether Nanos ${v.kernel.version} has the unmap deadlock is not known: ${v.detail}`,
        fix:
          options.probe === false
            ? 'Run `uniprove doctor` without --no-probe: it boots a 2-vCPU reproducer once (a few seconds) and keeps the verdict.'
            : 'Run `uniprove doctor` again; if it still cannot tell, read the reproducer in native/mmap-shared-threads.c and run it by hand with 2 vCPUs.',
      },
    ];
  } catch (error) {
    return [
      {
        ok: false,
        required: false,
        detail: `the unmap-deadlock check failed: ${errorDetail(error)}`,
        fix: isUniproveError(error) && error.hint ? error.hint : 'Run `uniprove doctor` again.',
      },
    ];
  }
}

/** Every check, in the order doctor runs and prints them; later ones may read what earlier ones found. */
const CHECKS: readonly { name: string; check: Check }[] = [
  { name: 'ops', check: checkOps },
  { name: 'nanos', check: checkNanos },
  { name: 'qemu', check: checkQemu },
  { name: 'kvm', check: checkKvm },
  { name: 'nanos-update', check: checkNanosUpdate },
  { name: 'unmap-deadlock', check: checkUnmapDeadlock },
  { name: 'strace', check: checkStrace },
  { name: 'disk', check: checkDisk },
  { name: 'image-cache', check: checkImageCache },
  { name: 'memory', check: checkMemory },
  { name: 'hugepages', check: checkHugepages },
  { name: 'gpus', check: checkGpus },
  { name: 'gcp-credentials', check: checkGcpCredentials },
  { name: 'gcp-project', check: checkGcpProject },
];

/** The names of doctor's checks, in order (disk may appear once per file system, hugepages and gpus when asked). */
export const DOCTOR_CHECKS: readonly string[] = CHECKS.map((c) => c.name);

/** Run every check; never throws for a failed check. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorResult> {
  const ctx: DoctorContext = {
    options,
    env: options.env ?? {},
    setup: await readSetupRecord(options.opsHome),
    opsOk: false,
    nanosOk: false,
  };
  const checks: DoctorCheck[] = [];
  for (const { name, check } of CHECKS) {
    for (const outcome of await check(ctx)) {
      checks.push({ name, ...outcome, fix: outcome.ok ? '' : (outcome.fix ?? '') });
    }
  }
  await mkdir(options.cacheDir, { recursive: true }).catch(() => {});
  return { checks, ok: checks.every((c) => c.ok || !c.required) };
}

async function gcloudProject(env: Record<string, string | undefined>): Promise<string | undefined> {
  const dir = env.CLOUDSDK_CONFIG || join(env.HOME || '/root', '.config', 'gcloud');
  const active =
    (await readFile(join(dir, 'active_config'), 'utf8').catch(() => 'default')).trim() || 'default';
  const text = await readFile(join(dir, 'configurations', `config_${active}`), 'utf8').catch(() => '');
  return /^\s*project\s*=\s*(\S+)/m.exec(text)?.[1];
}

/** PCI display controllers (class 0x03) whose driver is vfio-pci. */
async function vfioGpus(): Promise<string[]> {
  const base = '/sys/bus/pci/devices';
  const out: string[] = [];
  for (const dev of await readdir(base).catch(() => [] as string[])) {
    const cls = (await readFile(join(base, dev, 'class'), 'utf8').catch(() => '')).trim();
    if (!cls.startsWith('0x03')) continue;
    const driver = await readlink(join(base, dev, 'driver')).catch(() => '');
    if (driver.endsWith('/vfio-pci')) out.push(dev);
  }
  return out;
}
