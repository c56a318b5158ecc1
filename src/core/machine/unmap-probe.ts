/**
 * Does the installed Nanos kernel have the unmap deadlock? Nanos 0.1.55 (and every commit before nanovms/nanos
 * pull request 2179) deadlocks with more than one vCPU when one thread unmaps a file mapping while another takes
 * a page fault: munmap holds the process's vmap lock, interrupts off, while it waits in a TLB-shootdown
 * rendezvous that the faulting CPU, spinning for the same lock with interrupts off, never joins.
 *
 * The probe boots the reproducer (native/mmap-shared-threads.c, static) with 2 vCPUs under TCG for a few
 * seconds: a kernel with the fix ends it in seconds, an affected one stops within the first second and never
 * prints its last line. The verdict is kept per kernel digest (as the KVM verdict is per host), so each kernel
 * is probed once; a cached verdict whose kernel digest no longer matches is probed again.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUniproveError } from '../errors.js';
import { readJsonIfExists, writeJsonAtomic } from '../fs.js';
import { sha256File } from '../hash.js';
import { buildNative } from '../native.js';
import { opsBuild, removeImage, requireOpsAndNanos } from '../ops/build.js';
import { noProgress, type OnProgress } from '../progress.js';
import { QemuMachine } from './qemu-process.js';

/** The reproducer's C source, shipped with uniprove. */
export const UNMAP_REPRODUCER_SOURCE = fileURLToPath(
  new URL('../../../native/mmap-shared-threads.c', import.meta.url),
);

/** What a user does about an affected kernel. */
export const UNMAP_DEADLOCK_FIX =
  'Update Nanos to a release with the fix (nanovms/nanos pull request 2179): `ops update` online, or `uniprove setup --force` from a toolchain folder that offers one (0.1.55.1 or later).';

/** Whether a kernel has the deadlock: true, false, or undefined when the probe could not tell. */
export interface UnmapVerdict {
  affected: boolean | undefined;
  /** The kernel probed: its release and the sha256 of its kernel.img. */
  kernel: { version: string; sha256: string };
  /** One sentence: what the reproducer did. */
  detail: string;
  probedAt: string;
  /** The verdict came from the cache (no boot now). */
  cached: boolean;
}

export interface UnmapProbeOptions {
  opsHome: string;
  /** uniprove's cache; verdicts go to <cacheDir>/unmap-probe/<kernel digest>.json. */
  cacheDir: string;
  env?: Record<string, string | undefined>;
  ops?: string;
  qemu?: string;
  nanosVersion?: string;
  /** Only read the cache: never boot (doctor --no-probe). */
  cacheOnly?: boolean;
  /** How long the reproducer may take before it counts as stalled (default 20 s; it ends in a few here). */
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

interface CachedUnmapVerdict {
  kernel: { version: string; sha256: string };
  affected: boolean;
  detail: string;
  probedAt: string;
}

/** The reproducer's arguments: 2 threads over 2 MiB shared windows of a 32 MiB file, 4 passes (64 windows). */
const PROBE_ARGS = ['-t', '2', '-s', '-p', '4', '/data.bin'];
const PROBE_FILE_BYTES = 32 << 20;

function verdictPath(cacheDir: string, sha256: string): string {
  return join(cacheDir, 'unmap-probe', `${sha256.slice(0, 32)}.json`);
}

/**
 * The installed kernel's verdict: from the cache when its digest matches, else by booting the reproducer once
 * (unless `cacheOnly`). Never throws for a probe that could not tell: `affected` is then undefined, with why.
 */
export async function probeUnmapDeadlock(options: UnmapProbeOptions): Promise<UnmapVerdict> {
  const { release, opsPath } = await requireOpsAndNanos({
    ops: options.ops,
    env: options.env,
    opsHome: options.opsHome,
    nanosVersion: options.nanosVersion,
  });
  const kernel = { version: release.version, sha256: await sha256File(release.kernel, options.signal) };
  const path = verdictPath(options.cacheDir, kernel.sha256);
  const cached = await readJsonIfExists<CachedUnmapVerdict>(path).catch(() => undefined);
  if (
    cached &&
    typeof cached.affected === 'boolean' &&
    cached.kernel?.sha256 === kernel.sha256 &&
    typeof cached.detail === 'string'
  ) {
    return { ...cached, kernel, cached: true };
  }
  const now = new Date().toISOString();
  if (options.cacheOnly) {
    return { affected: undefined, kernel, detail: 'not probed yet', probedAt: now, cached: false };
  }
  const onProgress = options.onProgress ?? noProgress;
  onProgress({
    kind: 'step-start',
    step: 'kernel probe',
    detail: `Nanos ${kernel.version}: does it have the unmap deadlock? (booting a reproducer with 2 vCPUs, once)`,
  });
  // A probe that cannot boot (no gcc, no QEMU here) takes nothing away: the verdict is unknown, with why.
  const verdict = await bootReproducer(options, opsPath, release.version).catch((error: unknown) => {
    if (options.signal?.aborted || !isUniproveError(error) || error.code === 'E_INTERRUPTED') throw error;
    return { affected: undefined, detail: `the reproducer could not be booted: ${error.message}` };
  });
  onProgress({
    kind: 'step-done',
    step: 'kernel probe',
    detail:
      verdict.affected === undefined ? 'could not tell' : verdict.affected ? 'affected' : 'not affected',
  });
  if (verdict.affected !== undefined) {
    const record: CachedUnmapVerdict = {
      kernel,
      affected: verdict.affected,
      detail: verdict.detail,
      probedAt: now,
    };
    await writeJsonAtomic(path, record).catch(() => {});
  }
  return { ...verdict, kernel, probedAt: now, cached: false };
}

/** Build the reproducer's image and boot it with 2 vCPUs: it ends (not affected) or stalls (affected). */
async function bootReproducer(
  options: UnmapProbeOptions,
  opsPath: string,
  nanosVersion: string,
): Promise<{ affected: boolean | undefined; detail: string }> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  await mkdir(options.cacheDir, { recursive: true });
  const stage = await mkdtemp(join(options.cacheDir, '.unmap-probe-'));
  const imageName = `uniprove-unmap-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    const binary = await buildNative(
      {
        source: UNMAP_REPRODUCER_SOURCE,
        name: 'mmap-shared-threads',
        folder: 'unmap-probe-bin',
        cflags: ['-O1', '-pthread', '-static'],
        purpose: 'compiles the reproducer that tells whether this Nanos kernel has the unmap deadlock',
      },
      {
        cacheDir: options.cacheDir,
        ...(options.env?.PATH ? { pathEnv: options.env.PATH } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
    await copyFile(binary.path, join(stage, 'mstt'));
    const data = Buffer.alloc(PROBE_FILE_BYTES);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 0xff;
    await writeFile(join(stage, 'data.bin'), data);
    await writeFile(
      join(stage, 'config.json'),
      JSON.stringify({
        Args: PROBE_ARGS,
        Files: ['data.bin'],
        ManifestPassthrough: { debug_exit: 't' },
      }),
    );
    const opsOpts = {
      ops: opsPath,
      ...(options.env ? { env: options.env } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };
    const built = await opsBuild(
      { cwd: stage, program: 'mstt', config: join(stage, 'config.json'), imageName, nanosVersion },
      opsOpts,
    );
    const machine = new QemuMachine({
      name: 'unmap-probe',
      image: built.image,
      snapshot: true,
      disks: [],
      memory: '256M',
      cpus: 2,
      accel: 'tcg',
      debugExit: true,
      network: false,
      stateDir: join(stage, 'boot'),
      ...(options.qemu ? { qemu: options.qemu } : {}),
    });
    await machine.create();
    let console = '';
    machine.onConsole = (chunk) => {
      if (console.length < 1 << 20) console += chunk;
    };
    const started = performance.now();
    await machine.start();
    const status = await machine.wait({ timeoutMs, ...(options.signal ? { signal: options.signal } : {}) });
    options.signal?.throwIfAborted();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const began = /MSTT-START /.test(console);
    const windows = console.split('\n').filter((l) => l.startsWith('MSTT worker=')).length;
    if (/MSTT-DONE /.test(console)) {
      return {
        affected: false,
        detail: `the reproducer (2 threads mapping, reading and unmapping file windows) ended with 2 vCPUs in ${seconds} s`,
      };
    }
    if (status.state === 'timeout' && began) {
      return {
        affected: true,
        detail: `the reproducer stalled with 2 vCPUs: ${windows} of 64 windows done, then nothing for the rest of ${Math.round(timeoutMs / 1000)} s (munmap of a file mapping racing a page fault)`,
      };
    }
    return {
      affected: undefined,
      detail: `the reproducer did not run to a verdict (${status.state}${status.reason ? `: ${status.reason}` : ''}${began ? '' : ', it never started'})`,
    };
  } finally {
    await removeImage(options.opsHome, imageName).catch(() => {});
    await rm(stage, { recursive: true, force: true }).catch(() => {});
  }
}
