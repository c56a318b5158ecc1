/**
 * File proofs through the console, in two calls for a run to make: `prepareConsoleRoute` before the image is
 * built (checks the limits, compiles or reuses the library, returns the config to build with), and
 * `receiveConsoleProof` once the console has ended (adds the proof, or why it is missing, to the record).
 * In between the run feeds the console to `route.receiver`.
 */
import { join } from 'node:path';
import { isUniproveError } from '../errors.js';
import type { OpsConfig } from '../manifest/schema.js';
import type { Recipe } from '../recipe/schema.js';
import type { RunRecord, RunWarning } from '../record/record.js';
import { FILE_PROOF_END, FILE_PROOF_ERROR, FileProofReceiver, prepareProofDest } from './console-file.js';
import { buildProofOutLibrary } from './preload.js';
import { checkProofFits, consoleRouteWarnings, withConsoleRoute } from './route.js';

export { FileProofReceiver, PROVER_EXIT } from './console-file.js';
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
    warnings: [
      ...(library.damaged
        ? [{ code: 'native-cache-damaged', message: `${library.damaged}: compiled again` }]
        : []),
      ...(await consoleRouteWarnings(options.programPath, proof.path)),
    ],
    receiver: new FileProofReceiver(dest),
    guestPath: proof.path,
  };
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

/**
 * What a run needs of the console route, in the shape the run lifecycle and its drivers call: `stage` while the
 * driver builds the image, `push` (pieces of console text) or `pushLine` (whole lines) while the machine runs,
 * `isEnd` for platforms that end a run at a marker, and `settle` once the console has ended.
 */
export interface ConsoleProofTap {
  /** The config to build with: the library mapped in and preloaded (limits checked, library compiled first). */
  stage: (config: OpsConfig, programPath: string) => Promise<OpsConfig>;
  /** Console text as it arrives; returns what is left to show live (the proof's base64 lines are not). */
  push: (text: string) => string;
  /** A whole console line; true when it was the proof's (not for the live console). */
  pushLine: (line: string) => boolean;
  /** The proof's end (or error) marker, after which the prover only exits. */
  isEnd: (line: string) => string | undefined;
  /** After the run: the proof into the record, or why none came; true when it came back. */
  settle: (record: RunRecord, stopped: boolean) => Promise<boolean>;
  /**
   * The prover's exit status as the library reported it on the console (its on_exit handler), or undefined
   * when no line said it (no exit(3), or a library without on_exit).
   */
  exitCode: () => number | undefined;
}

/**
 * The console route of one run of a file proof, or undefined for other proofs. Throws E_PROOF_TOO_LARGE at
 * once, before anything is built, when proof.maxBytes cannot cross the console within the timeout.
 */
export function consoleProofTap(
  proof: Recipe['proof'],
  o: {
    where: 'local' | 'gce';
    cacheDir: string;
    /** The run's limit (ms); none: nothing is refused. */
    timeoutMs?: number | undefined;
    /** The run record folder; the route's warnings (a static or Go prover) go into `record`. */
    record: RunRecord;
    pathEnv?: string | undefined;
    signal?: AbortSignal | undefined;
  },
): ConsoleProofTap | undefined {
  if (proof.kind !== 'file') return undefined;
  const timeoutMs = o.timeoutMs || undefined;
  checkProofFits({ maxBytes: proof.maxBytes, timeoutMs, where: o.where, guestPath: proof.path });
  let route: ConsoleRoute | undefined;
  return {
    stage: async (config, programPath) => {
      route = await prepareConsoleRoute({
        config,
        proof,
        programPath,
        cacheDir: o.cacheDir,
        ...(timeoutMs ? { timeoutMs } : {}),
        where: o.where,
        recordDir: o.record.dir,
        ...(o.pathEnv ? { pathEnv: o.pathEnv } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
      o.record.warnings.push(...(route?.warnings ?? []));
      return route?.config ?? config;
    },
    push: (text) => (route ? route.receiver.push(text) : text),
    pushLine: (line) => route?.receiver.pushLine(line) ?? false,
    isEnd: (line) =>
      line.includes(FILE_PROOF_END) || line.includes(FILE_PROOF_ERROR) ? line.trim() : undefined,
    settle: async (record, stopped) => {
      if (!route) return false;
      return receiveConsoleProof(route, record, stopped);
    },
    exitCode: () => route?.receiver.exitCode,
  };
}
