/**
 * KVM or TCG: KVM only when it actually works. /dev/kvm can exist and open on a
 * nested virtual machine whose guests then die ("KVM internal error") and hang,
 * so a probe boot decides, once per host (kernel, CPU model, QEMU version); the
 * verdict is cached. TCG otherwise, always with the reason.
 */
import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { run } from '../exec.js';
import { writeJsonAtomic } from '../fs.js';
import type { Accel } from '../record/record.js';
import { QemuMachine } from './qemu-process.js';

export type AccelChoice = 'auto' | Accel;

/** The facts about this host that decide whether KVM can work. */
export interface HostKey {
  kernel: string;
  cpuModel: string;
  qemuVersion: string;
  /** vmx or svm in /proc/cpuinfo. */
  hvFlag: boolean;
}

/** The accelerator a run uses and why. */
export interface AccelDecision {
  accel: Accel;
  /** One sentence for the user: which, and why. */
  reason: string;
  /** /dev/kvm exists. */
  kvmPresent: boolean;
  /** KVM works here: true/false when known, undefined when never probed. */
  kvmUsable: boolean | undefined;
  /** The verdict came from the cache. */
  cached: boolean;
  /** A probe boot ran for this decision. */
  probed: boolean;
}

export interface DetectAccelOptions {
  choice?: AccelChoice;
  /** uniprove's cache folder; the verdict is kept in <cacheDir>/kvm-probe.json. */
  cacheDir: string;
  /** An image to probe with (booted as a snapshot, no volumes); without one no probe runs. */
  probeImage?: string;
  /** Folder for the probe's console log. */
  probeDir?: string;
  qemu?: string;
  /** Probe time limit (ms, default 20 s: a failing KVM guest here dies after ~12 s, then hangs). */
  probeTimeoutMs?: number;
  /** Paths, replaceable for tests. */
  devKvm?: string;
  cpuinfo?: string;
  signal?: AbortSignal;
}

interface CachedVerdict {
  key: HostKey;
  usable: boolean;
  detail: string;
  probedAt: string;
}

/** Read this host's key (kernel release, CPU model, QEMU version, vmx/svm). */
export async function readHostKey(
  options: { qemu?: string; cpuinfo?: string; skipQemuWithoutHv?: boolean } = {},
): Promise<HostKey> {
  const cpuinfo = await readFile(options.cpuinfo ?? '/proc/cpuinfo', 'utf8').catch(() => '');
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const flags = /^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  let qemuVersion = 'absent';
  const hvFlag = flags.includes('vmx') || flags.includes('svm');
  // Without vmx/svm no probe runs and the version is not needed: spare a QEMU start.
  if (!hvFlag && options.skipQemuWithoutHv) return { kernel: release(), cpuModel, qemuVersion, hvFlag };
  try {
    const r = await run([options.qemu ?? 'qemu-system-x86_64', '--version'], { timeoutMs: 10_000 });
    qemuVersion = /version\s+(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0] ?? 'unknown';
  } catch {
    // QEMU missing: reported by doctor and by the run itself.
  }
  return { kernel: release(), cpuModel, qemuVersion, hvFlag: flags.includes('vmx') || flags.includes('svm') };
}

function sameKey(a: HostKey, b: HostKey): boolean {
  return (
    a.kernel === b.kernel &&
    a.cpuModel === b.cpuModel &&
    a.qemuVersion === b.qemuVersion &&
    a.hvFlag === b.hvFlag
  );
}

export function kvmCachePath(cacheDir: string): string {
  return join(cacheDir, 'kvm-probe.json');
}

/** The cached probe verdict for this host, when there is one. */
export async function readKvmVerdict(cacheDir: string, key: HostKey): Promise<CachedVerdict | undefined> {
  try {
    const v = JSON.parse(await readFile(kvmCachePath(cacheDir), 'utf8')) as CachedVerdict;
    return v && typeof v.usable === 'boolean' && v.key && sameKey(v.key, key) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether /dev/kvm exists, and whether this process may open it read-write. */
export async function checkDevKvm(
  devKvm = '/dev/kvm',
): Promise<{ present: boolean; openable: boolean; error?: string }> {
  try {
    await access(devKvm, constants.F_OK);
  } catch {
    return { present: false, openable: false };
  }
  try {
    const fh = await open(devKvm, 'r+');
    await fh.close();
    return { present: true, openable: true };
  } catch (error) {
    return { present: true, openable: false, error: (error as Error).message };
  }
}

/**
 * Boot `image` with KVM as a snapshot: usable when the guest gets to print
 * and exit, unusable on "KVM internal error", on a QEMU failure, or when it
 * is still running at the time limit.
 */
export async function probeKvm(options: {
  image: string;
  stateDir: string;
  qemu?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<{ usable: boolean; detail: string }> {
  const machine = new QemuMachine({
    name: 'kvm-probe',
    image: options.image,
    snapshot: true,
    disks: [],
    memory: '256M',
    cpus: 1,
    accel: 'kvm',
    debugExit: true,
    network: false,
    stateDir: options.stateDir,
    ...(options.qemu ? { qemu: options.qemu } : {}),
  });
  await machine.create();
  let sawLine = false;
  machine.onConsole = (chunk) => {
    if (chunk.includes('\n')) sawLine = true;
  };
  await machine.start();
  const status = await machine.wait({
    timeoutMs: options.timeoutMs ?? 20_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const stderr = status.qemuStderrTail ?? '';
  if (/KVM internal error/i.test(stderr)) {
    return {
      usable: false,
      detail: `a KVM guest dies here: ${stderr
        .split('\n')
        .find((l) => /KVM internal error/i.test(l))
        ?.trim()}`,
    };
  }
  if (status.state === 'timeout') {
    return {
      usable: false,
      detail: `a KVM probe guest did not finish in ${Math.round((options.timeoutMs ?? 20_000) / 1000)} s (it hangs)`,
    };
  }
  if (status.state === 'failed') return { usable: false, detail: status.reason ?? 'QEMU failed with KVM' };
  if (status.state === 'exited' && (status.exitCode !== undefined || sawLine)) {
    return { usable: true, detail: 'a probe guest booted and exited under KVM' };
  }
  return { usable: false, detail: status.reason ?? `the KVM probe ended as ${status.state}` };
}

/** Pick KVM or TCG for this host, probing KVM once when it might work. */
export async function detectAccel(options: DetectAccelOptions): Promise<AccelDecision> {
  const choice = options.choice ?? 'auto';
  const dev = await checkDevKvm(options.devKvm);
  const base = { kvmPresent: dev.present, cached: false, probed: false };
  if (choice === 'tcg') {
    return {
      ...base,
      accel: 'tcg',
      kvmUsable: undefined,
      reason: 'TCG (software emulation) because --accel tcg was given',
    };
  }
  if (choice === 'kvm' && !(dev.present && dev.openable)) {
    // Asked for by name: falling back to a TCG run many times slower would not be what was asked.
    const devKvm = options.devKvm ?? '/dev/kvm';
    throw new UniproveError('E_KVM', {
      message: dev.present
        ? `--accel kvm: ${devKvm} cannot be opened (${dev.error})`
        : `--accel kvm: ${devKvm} does not exist on this host`,
      hint: dev.present
        ? 'Add yourself to the kvm group (`sudo usermod -aG kvm $USER`, then log in again), or leave --accel out to fall back to TCG.'
        : 'Load the kvm module (`modprobe kvm_intel` or `kvm_amd`) on a host with hardware virtualisation, or leave --accel out to fall back to TCG.',
      details: { devKvm },
    });
  }
  if (!dev.present) {
    return {
      ...base,
      accel: 'tcg',
      kvmUsable: false,
      reason: `TCG (software emulation, slow): ${options.devKvm ?? '/dev/kvm'} does not exist on this host`,
    };
  }
  if (!dev.openable) {
    return {
      ...base,
      accel: 'tcg',
      kvmUsable: false,
      reason: `TCG (software emulation, slow): /dev/kvm cannot be opened (${dev.error}); add yourself to the kvm group`,
    };
  }
  if (choice === 'kvm') {
    return {
      ...base,
      accel: 'kvm',
      kvmUsable: undefined,
      reason: 'KVM because --accel kvm was given (not probed)',
    };
  }
  const key = await readHostKey({
    skipQemuWithoutHv: true,
    ...(options.qemu ? { qemu: options.qemu } : {}),
    ...(options.cpuinfo ? { cpuinfo: options.cpuinfo } : {}),
  });
  if (!key.hvFlag) {
    // As Ops does: no vmx/svm means a nested guest without virtualisation, where KVM guests die.
    return {
      ...base,
      accel: 'tcg',
      kvmUsable: false,
      reason:
        'TCG (software emulation, slow): /dev/kvm is present but unusable: the CPU shows no vmx/svm flag (a virtual machine without nested virtualisation), where a KVM guest dies with "KVM internal error" and hangs',
    };
  }
  const cached = await readKvmVerdict(options.cacheDir, key);
  if (cached) {
    return {
      ...base,
      cached: true,
      accel: cached.usable ? 'kvm' : 'tcg',
      kvmUsable: cached.usable,
      reason: cached.usable
        ? `KVM (probed ${cached.probedAt}: ${cached.detail})`
        : `TCG (software emulation, slow): /dev/kvm is present but unusable (probed ${cached.probedAt}: ${cached.detail})`,
    };
  }
  if (!options.probeImage) {
    return {
      ...base,
      accel: 'tcg',
      kvmUsable: undefined,
      reason: 'TCG: /dev/kvm is present but has not been probed yet',
    };
  }
  const verdict = await probeKvm({
    image: options.probeImage,
    stateDir: options.probeDir ?? join(options.cacheDir, 'kvm-probe'),
    ...(options.qemu ? { qemu: options.qemu } : {}),
    ...(options.probeTimeoutMs ? { timeoutMs: options.probeTimeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  options.signal?.throwIfAborted();
  const record: CachedVerdict = {
    key,
    usable: verdict.usable,
    detail: verdict.detail,
    probedAt: new Date().toISOString(),
  };
  await writeJsonAtomic(kvmCachePath(options.cacheDir), record);
  return {
    ...base,
    probed: true,
    accel: verdict.usable ? 'kvm' : 'tcg',
    kvmUsable: verdict.usable,
    reason: verdict.usable
      ? `KVM (${verdict.detail})`
      : `TCG (software emulation, slow): /dev/kvm is present but unusable: ${verdict.detail}`,
  };
}
