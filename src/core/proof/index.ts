/**
 * File proofs through the console, in two calls for a run to make: `prepareConsoleRoute` before the image is
 * built (checks the limits, compiles or reuses the library, returns the config to build with), and
 * `receiveConsoleProof` once the console has ended (adds the proof, or why it is missing, to the record).
 * In between the run feeds the console to `route.receiver`.
 */
import { join } from 'node:path';
import { isUniproveError, UniproveError } from '../errors.js';
import type { OpsConfig } from '../ops/config/schema.js';
import type { Recipe } from '../recipe/schema.js';
import type { RunRecord, RunWarning } from '../run/record.js';
import { FILE_PROOF_END, FILE_PROOF_ERROR, FileProofReceiver, prepareProofDest } from './console-file.js';
import { buildProofOutLibrary } from './preload.js';
import { checkProofFits, consoleRouteWarnings, withConsoleRoute } from './route.js';

export { FileProofReceiver } from './console-file.js';
export { CONSOLE_BYTES_PER_SECOND, checkProofFits } from './route.js';

export interface ConsoleRouteOptions {
  /** The Ops config the image would be built with. */
  config: OpsConfig;
  proof: Recipe['proof'];
  /** The prover on the host (for the static / Go warnings). */
  programPath: string;
  cacheDir: string;
  /** The run's limit (ms); with proof.maxBytes, decides whether the console can carry the proof. */
  timeoutMs?: number;
  where: 'local' | 'gce';
  /** The run record folder: the proof goes to proofs/ there. */
  recordDir: string;
  pathEnv?: string;
  signal?: AbortSignal;
}

export interface ConsoleRoute {
  /** The config to build the image with: the library mapped in and preloaded, the proof path named. */
  config: OpsConfig;
  warnings: RunWarning[];
  /** Feed it the console (push: pieces of text; pushLine: whole lines). */
  receiver: FileProofReceiver;
  guestPath: string;
}

/** The record's file name for a guest proof path (the same as a proof copied off the image). */
export function proofFileName(guestPath: string): string {
  return guestPath.replace(/^\/+/, '').replaceAll('/', '__');
}

/**
 * Everything a run needs for a file proof to come back through the console, or undefined when its proof is
 * not a file. Throws E_PROOF_TOO_LARGE (nothing built) when proof.maxBytes cannot fit in the timeout, and
 * E_TOOL_MISSING when the library must be compiled and gcc is missing.
 */
export async function prepareConsoleRoute(options: ConsoleRouteOptions): Promise<ConsoleRoute | undefined> {
  const proof = options.proof;
  if (proof.kind !== 'file') return undefined;
  checkProofFits({
    maxBytes: proof.maxBytes,
    timeoutMs: options.timeoutMs,
    where: options.where,
    guestPath: proof.path,
  });
  const library = await buildProofOutLibrary({
    cacheDir: options.cacheDir,
    ...(options.pathEnv ? { pathEnv: options.pathEnv } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const dest = join(options.recordDir, 'proofs', proofFileName(proof.path));
  await prepareProofDest(dest);
  return {
    config: withConsoleRoute(options.config, library, proof.path),
    warnings: await consoleRouteWarnings(options.programPath, proof.path),
    receiver: new FileProofReceiver(dest),
    guestPath: proof.path,
  };
}

/**
 * The console route of a local run (`run --proof-via console`), from the run's options, its package and the
 * config it builds with; QEMU only (plain `ops run` has no console hook).
 */
export async function localConsoleRoute(
  options: {
    via?: 'qemu' | 'ops';
    cacheDir: string;
    timeoutMs?: number;
    env?: Record<string, string | undefined>;
    signal?: AbortSignal;
  },
  target: { proof: Recipe['proof']; packageDir: string },
  config: OpsConfig,
  recordDir: string,
): Promise<ConsoleRoute | undefined> {
  if (options.via === 'ops') {
    throw new UniproveError('E_USAGE', {
      message: '--proof-via console needs --via qemu (the default)',
      hint: 'Leave out --via ops, or --proof-via console.',
    });
  }
  return prepareConsoleRoute({
    config,
    proof: target.proof,
    programPath: join(target.packageDir, config.Program ?? ''),
    cacheDir: options.cacheDir,
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    where: 'local',
    recordDir,
    ...(options.env?.PATH ? { pathEnv: options.env.PATH } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/**
 * Settle what came through the console: the proof (with its sha256, checked against the guest's) goes into
 * the record, or a warning says why none came. A transfer that began and arrived damaged or cut throws
 * E_PROOF_CORRUPT / E_PROOF_TRUNCATED, except in a run that was stopped (timeout, Ctrl-C, QEMU failed),
 * where it is a warning beside the stop's own error. Returns true when the proof came back.
 */
export async function receiveConsoleProof(
  route: ConsoleRoute,
  record: RunRecord,
  stopped: boolean,
): Promise<boolean> {
  let status: Awaited<ReturnType<FileProofReceiver['finish']>>;
  try {
    status = await route.receiver.finish();
  } catch (error) {
    if (!stopped || !isUniproveError(error)) throw error;
    record.warnings.push({ code: 'proof-missing', message: error.message });
    return false;
  }
  if (status.state === 'received') {
    record.proofs.push({
      path: join('proofs', proofFileName(route.guestPath)),
      sha256: status.sha256,
      bytes: status.bytes,
      source: route.guestPath,
    });
    return true;
  }
  record.warnings.push({
    code: 'proof-missing',
    message:
      status.state === 'guest-error'
        ? `the prover's proof file ${status.guestPath} could not be read in the guest at exit: ${status.message} (errno ${status.errno})`
        : `nothing came back through the console for the file proof ${route.guestPath}: the prover did not reach exit(3) (it crashed, was killed, or left through _exit), or the library was not loaded (a static prover)`,
  });
  return false;
}

/** What a Compute Engine run needs of the route, in the shape its image build and console watcher call. */
export interface GceFileProof {
  /** Stage the route into the config the image is built with (buildGcpRecipeImage's `stage`). */
  stage: (config: OpsConfig, programPath: string) => Promise<OpsConfig>;
  /** Give it a console line; true when the line was the proof's data (not for the live console). */
  take: (line: string) => boolean;
  /** The watcher's end detector: the proof's end (or error) marker, after which the prover only exits. */
  isEnd: (line: string) => string | undefined;
  /** After the run: the proof into the record; 'succeeded' when it came back, else 'failed'. */
  settle: (record: RunRecord) => Promise<'succeeded' | 'failed'>;
}

/** gcp run's own limit when none is given (commands.ts DEFAULT_RUN_TIMEOUT_MS). */
const GCE_DEFAULT_TIMEOUT_MS = 6 * 3600_000;

/**
 * The console route of a Compute Engine run of a file proof, or undefined for other proofs. Throws
 * E_PROOF_TOO_LARGE at once, before anything is built, when proof.maxBytes cannot fit in the timeout.
 */
export function gceFileProof(
  proof: Recipe['proof'],
  o: {
    cacheDir: string;
    timeoutMs?: number | undefined;
    recordDir: string;
    /** The run's record: the route's warnings (a static prover) go into it when the image is built. */
    record?: RunRecord;
    signal?: AbortSignal;
  },
): GceFileProof | undefined {
  if (proof.kind !== 'file') return undefined;
  const timeoutMs = o.timeoutMs ?? GCE_DEFAULT_TIMEOUT_MS;
  checkProofFits({ maxBytes: proof.maxBytes, timeoutMs, where: 'gce', guestPath: proof.path });
  let route: ConsoleRoute | undefined;
  return {
    stage: async (config, programPath) => {
      route = await prepareConsoleRoute({
        config,
        proof,
        programPath,
        cacheDir: o.cacheDir,
        timeoutMs,
        where: 'gce',
        recordDir: o.recordDir,
        ...(o.signal ? { signal: o.signal } : {}),
      });
      o.record?.warnings.push(...(route?.warnings ?? []));
      return route?.config ?? config;
    },
    take: (line) => route?.receiver.pushLine(line) ?? false,
    isEnd: (line) =>
      line.includes(FILE_PROOF_END) || line.includes(FILE_PROOF_ERROR) ? line.trim() : undefined,
    settle: async (record) => {
      if (!route) return 'failed';
      return (await receiveConsoleProof(route, record, false)) ? 'succeeded' : 'failed';
    },
  };
}
