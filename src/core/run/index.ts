/**
 * `uniprove run`: the local front end of the run lifecycle (run/lifecycle.ts). The qemu driver builds the
 * image with `ops build` (or takes it from the image cache) and boots it in QEMU with the prover's exit status
 * wired to the host (debug_exit); the ops driver runs plain `ops run` for parity. Either way the run ends at
 * the timeout or on abort, and keeps its evidence in runs/<id>/: config, manifest, command line, console, exit
 * status, timings, proofs with their digests.
 */
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { parseJsonFile } from '../fs.js';
import { createDriver } from '../machine/drivers/index.js';
import type { LocalRunOptions } from '../machine/drivers/local.js';
import { UNMAP_DEADLOCK_FIX, type UnmapVerdict } from '../machine/unmap-probe.js';
import { type PreparedTarget, type PrepareTargetOptions, prepareTarget } from '../package/target.js';
import {
  RECORD_FILE,
  type RunOutcome,
  type RunProof,
  type RunRecord,
  type RunWarning,
} from '../record/record.js';
import { lifecycleOptions, runOnMachine } from './lifecycle.js';
import type { VcpuPolicy } from './vcpus.js';

export { cloneFile } from '../machine/drivers/local.js';
export {
  type PreparedTarget,
  type PrepareTargetOptions,
  prepareTarget,
  resolveRunConfig,
  TRACE_DEBUG_FLAGS,
} from '../package/target.js';
export { extractConsoleBlocks, isTraceLine } from './evidence.js';

/** Options of `uniprove run`. */
export interface RunProverOptions extends PrepareTargetOptions, LocalRunOptions {
  /** Ops's home (~/.ops). */
  opsHome: string;
  /** Folder of run records; proving_report.csv lives here (default <cwd>/runs). */
  runsDir?: string;
  /** This run's record folder (default <runsDir>/<id>). */
  out?: string;
  /** `ops`: run plain `ops run` for parity (the exit status is lost). */
  via?: 'qemu' | 'ops';
  /** Do not add the run to proving_report.csv. */
  noReport?: boolean;
  /** How a file proof comes back: copied off the image after the run (default), or through the console (the Compute Engine route). */
  proofVia?: 'copy' | 'console';
  /** Run with the vCPUs asked even on a kernel with the unmap deadlock (else such a run gets one vCPU). */
  allowUnmapDeadlock?: boolean;
  /** The vCPU policy, shared by parallel runs (one kernel probe for all); default kernelVcpuPolicy(options). */
  vcpuPolicy?: VcpuPolicy;
}

/** What the kernel's vCPU policy needs: where Ops and its release are, and uniprove's cache. */
export type KernelPolicyOptions = Pick<
  RunProverOptions,
  | 'opsHome'
  | 'cacheDir'
  | 'env'
  | 'ops'
  | 'qemu'
  | 'nanosVersion'
  | 'signal'
  | 'onProgress'
  | 'allowUnmapDeadlock'
>;

/** The vCPU policy of a run: the installed kernel probed once for the unmap deadlock (cached per kernel). */
export function kernelVcpuPolicy(options: KernelPolicyOptions): VcpuPolicy {
  let verdict: Promise<UnmapVerdict> | undefined;
  return {
    verdict: () => {
      verdict ??= import('../machine/unmap-probe.js').then(({ probeUnmapDeadlock }) =>
        probeUnmapDeadlock({
          opsHome: options.opsHome,
          cacheDir: options.cacheDir,
          ...(options.env ? { env: options.env } : {}),
          ...(options.ops ? { ops: options.ops } : {}),
          ...(options.qemu ? { qemu: options.qemu } : {}),
          ...(options.nanosVersion ? { nanosVersion: options.nanosVersion } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        }),
      );
      return verdict;
    },
    ...(options.allowUnmapDeadlock ? { allowUnmapDeadlock: true } : {}),
    fix: UNMAP_DEADLOCK_FIX,
  };
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

/**
 * Run a prover once on this host. Returns the record whatever the prover did (succeeded, failed, timed out);
 * throws UniproveError when uniprove could not run it, and on Ctrl-C, after keeping the record (details.runDir).
 */
export async function runProver(options: RunProverOptions, prepared?: PreparedTarget): Promise<RunResult> {
  const viaConsole = options.proofVia === 'console';
  if (viaConsole && options.via === 'ops') {
    throw new UniproveError('E_USAGE', {
      message:
        '--proof-via console needs --via qemu (the default): plain `ops run` gives uniprove no console to read',
      hint: 'Leave out --via ops, or --proof-via console.',
    });
  }
  const driver = await createDriver(options.via ?? 'qemu', options);
  const record = await runOnMachine(
    driver,
    lifecycleOptions(options, {
      prover: options.target,
      args: options.args ?? [],
      ...(options.trace ? { trace: true } : {}),
      elsewhere:
        'pass --out DIR in a folder you can write on a disk with room (runs/ is made in the current folder)',
      ...(prepared ? { prepared } : {}),
      prepare: () => prepareTarget(options),
      vcpus: options.vcpuPolicy ?? kernelVcpuPolicy(options),
      ...(viaConsole
        ? {
            consoleProof: {
              where: 'local' as const,
              cacheDir: options.cacheDir,
              ...(options.env?.PATH ? { pathEnv: options.env.PATH } : {}),
            },
          }
        : {}),
    }),
  );
  return {
    id: record.id,
    dir: record.dir,
    outcome: record.outcome as RunOutcome,
    exitCode: record.exitCode,
    accel: record.accel,
    accelReason: record.accelReason,
    proofs: record.proofs,
    timings: record.timings,
    warnings: record.warnings,
    record,
  };
}

/** Read a run record back (for `uniprove run --json` consumers and tests). */
export async function readRunRecord(dir: string): Promise<RunRecord> {
  const { readFile } = await import('node:fs/promises');
  const path = join(dir, RECORD_FILE);
  return parseJsonFile(await readFile(path, 'utf8'), path) as RunRecord;
}
