/**
 * `uniprove doctor`: is this host ready to prove? Each check says what it saw
 * and, when it fails, the fix. Local runs need ops, a Nanos release, QEMU and
 * disk; KVM, strace, hugepages, GPUs and Google Cloud are checked and reported.
 */
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { freemem, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { isUniproveError } from '../errors.js';
import { run, which } from '../exec.js';
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
import { IMAGE_CACHE_BYTES, IMAGE_CACHE_ENTRIES, ImageCache } from '../ops/image-cache.js';
import { readSetupRecord } from '../setup/index.js';

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

/** Run every check; never throws for a failed check. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorResult> {
  const checks: DoctorCheck[] = [];
  const env = options.env ?? {};
  const add = (c: Omit<DoctorCheck, 'fix'> & { fix?: string }) =>
    checks.push({ ...c, fix: c.ok ? '' : (c.fix ?? '') });

  // ops, and where it came from
  const record = await readSetupRecord(options.opsHome);
  const origin = (part: 'ops' | 'nanos', matches: boolean) => {
    const r = record[part];
    if (!r || !matches) return 'installed outside `uniprove setup`';
    return `from ${r.source === 'toolchain' ? `the toolchain folder ${r.from}` : r.source === 'online' ? `${r.from} (online)` : r.source} by \`uniprove setup\``;
  };
  const found = await findOps({
    ...(options.ops ? { ops: options.ops } : {}),
    env,
    opsHome: options.opsHome,
  });
  const opsOpts = { ...(found ? { ops: found.path } : {}), env: env as Record<string, string> };
  let opsOk = false;
  if (!found) {
    add({
      name: 'ops',
      ok: false,
      required: true,
      detail: `ops is not on PATH, nor in ${opsInstallPath(options.opsHome)}`,
      fix: OPS_INSTALL_HINT,
    });
  } else {
    const where = found.onPath
      ? found.path
      : `${found.path} (not on PATH; uniprove finds it there; to run ops yourself: export PATH="$HOME/.ops/bin:$PATH")`;
    try {
      const v = await opsVersion(opsOpts);
      opsOk = true;
      add({
        name: 'ops',
        ok: true,
        required: true,
        detail: `${where}: Ops ${v.ops}, ${origin('ops', record.ops?.path === found.path)}`,
      });
    } catch (error) {
      add({
        name: 'ops',
        ok: false,
        required: true,
        detail: `${where}: ${isUniproveError(error) ? error.message : String(error)}`,
        fix: isUniproveError(error) && error.hint ? error.hint : 'Run `ops version` by hand.',
      });
    }
  }

  // Nanos release
  let nanosOk = false;
  try {
    const rel = await findNanosRelease(options.opsHome);
    nanosOk = true;
    add({
      name: 'nanos',
      ok: true,
      required: true,
      detail: `Nanos ${rel.version} in ${rel.dir}, ${origin('nanos', record.nanos?.version === rel.version)}`,
    });
  } catch (error) {
    add({
      name: 'nanos',
      ok: false,
      required: true,
      detail: isUniproveError(error) ? error.message : String(error),
      fix: isUniproveError(error) && error.hint ? error.hint : NANOS_INSTALL_HINT,
    });
  }

  // QEMU
  const qemuPath = await which(options.qemu ?? 'qemu-system-x86_64', env.PATH);
  if (qemuPath) {
    const r = await run([qemuPath, '--version'], { allowFailure: true, timeoutMs: 10_000 }).catch(
      () => undefined,
    );
    add({
      name: 'qemu',
      ok: true,
      required: true,
      detail: `${qemuPath}: ${r?.stdout.split('\n')[0] ?? 'version unknown'}`,
    });
  } else {
    add({
      name: 'qemu',
      ok: false,
      required: true,
      detail: 'qemu-system-x86_64 is not on PATH',
      fix: 'Run `uniprove setup` (it runs apt-get install qemu-system-x86 qemu-utils), or install QEMU with your package manager (dnf install qemu-system-x86 on Fedora).',
    });
  }

  // KVM
  const dev = await checkDevKvm();
  let probeImage: string | undefined;
  let probeDir: string | undefined;
  const probeName = `uniprove-kvm-probe-${process.pid}`;
  try {
    if (options.probe !== false && dev.openable && opsOk && nanosOk && qemuPath) {
      const first = await detectAccel({
        cacheDir: options.cacheDir,
        ...(options.qemu ? { qemu: options.qemu } : {}),
      });
      if (first.kvmUsable === undefined) {
        // Build a tiny image (/bin/true, debug_exit) to boot once with KVM.
        probeDir = await mkdtemp(join(tmpdir(), 'uniprove-kvm-probe-'));
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
          opsOpts,
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
    add({
      name: 'kvm',
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
    });
  } catch (error) {
    add({
      name: 'kvm',
      ok: false,
      required: false,
      detail: `the KVM check failed: ${isUniproveError(error) ? error.message : String(error)}`,
      fix: 'Run `uniprove run --accel tcg` meanwhile.',
    });
  } finally {
    if (probeImage) await removeImage(options.opsHome, probeName).catch(() => {});
    if (probeDir) await rm(probeDir, { recursive: true, force: true });
  }

  // strace (discovery)
  const stracePath = await which('strace', env.PATH);
  add({
    name: 'strace',
    ok: Boolean(stracePath),
    required: false,
    detail: stracePath
      ? stracePath
      : 'strace is not on PATH: `uniprove discover`/`package` cannot see files opened at run time',
    fix: 'apt-get install strace',
  });

  // Disk for images, volumes and runs
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
  for (const { dir, free } of seen.values()) {
    add({
      name: 'disk',
      ok: free >= minFree,
      required: true,
      detail: `${(free / GiB).toFixed(1)} GiB free for ${dir}`,
      fix: `Free space there (ops image delete, old runs) or set OPS_HOME to a bigger disk; at least ${(minFree / GiB).toFixed(1)} GiB is wanted.`,
    });
  }

  // The image cache (run keeps the images ops build made): what it holds, and how to empty it.
  const imageCache = ImageCache.in(options.cacheDir);
  const cached = await imageCache.usage();
  add({
    name: 'image-cache',
    ok: true,
    required: false,
    detail: `${cached.images} image${cached.images === 1 ? '' : 's'}, ${(cached.bytes / 2 ** 20).toFixed(0)} MiB on disk in ${imageCache.dir} (at most ${IMAGE_CACHE_ENTRIES} and ${IMAGE_CACHE_BYTES / GiB} GiB; rm -rf it to empty)`,
  });

  // Memory
  const want = options.memory ? sizeToBytes(options.memory) : undefined;
  add({
    name: 'memory',
    ok: want === undefined || (Number.isFinite(want) && want + 256 * 2 ** 20 <= totalmem()),
    required: want !== undefined,
    detail: `${(totalmem() / GiB).toFixed(1)} GiB total, ${(freemem() / GiB).toFixed(1)} GiB free${want !== undefined ? `; the recipe asks for ${options.memory}` : ''}`,
    fix: 'Lower resources.memory in the recipe (or --memory), or run on a bigger host.',
  });

  if (options.hugepages) {
    const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
    const total = Number(/^HugePages_Total:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
    const free = Number(/^HugePages_Free:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
    add({
      name: 'hugepages',
      ok: free > 0,
      required: true,
      detail: `${free} of ${total} hugepages free`,
      fix: 'Reserve hugepages: `echo N | sudo tee /proc/sys/vm/nr_hugepages` (or hugepages=N on the kernel command line).',
    });
  }
  if (options.gpus && options.gpus > 0) {
    const vfio = await vfioGpus();
    add({
      name: 'gpus',
      ok: vfio.length >= options.gpus,
      required: true,
      detail: vfio.length ? `vfio-bound GPUs: ${vfio.join(', ')}` : 'no GPU is bound to vfio-pci',
      fix: `Bind ${options.gpus} GPU(s) to vfio-pci (driverctl set-override <PCI address> vfio-pci) and enable the IOMMU (intel_iommu=on / amd_iommu=on).`,
    });
  }

  // Google Cloud, for the gcp commands
  const credFile =
    env.GOOGLE_APPLICATION_CREDENTIALS ||
    join(
      env.CLOUDSDK_CONFIG || join(env.HOME || '/root', '.config', 'gcloud'),
      'application_default_credentials.json',
    );
  const credOk = Boolean(await stat(credFile).catch(() => undefined));
  add({
    name: 'gcp-credentials',
    ok: credOk,
    required: false,
    detail: credOk
      ? `credentials: ${credFile}`
      : `no Google Cloud credentials (${credFile} is missing); only needed for gcp commands`,
    fix: 'gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file.',
  });
  const project = env.GOOGLE_CLOUD_PROJECT || env.CLOUDSDK_CORE_PROJECT || (await gcloudProject(env));
  add({
    name: 'gcp-project',
    ok: Boolean(project),
    required: false,
    detail: project ? `project ${project}` : 'no Google Cloud project set; only needed for gcp commands',
    fix: 'gcloud config set project PROJECT_ID, or set GOOGLE_CLOUD_PROJECT.',
  });

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
