/**
 * The console route for file proofs: what an image needs so that its prover's proof file comes back through
 * the console (Compute Engine cannot read an instance's disk; Nanos runs one process, so no shell copies it
 * out), what it cannot serve, and whether the console can carry the proof in the run's time.
 */
import { isGoProgram } from '../elf/go.js';
import { parseElf } from '../elf/parse.js';
import { UniproveError } from '../errors.js';
import type { OpsConfig } from '../manifest/schema.js';
import { preloadLast } from '../native.js';
import type { RunWarning } from '../record/record.js';
import { CONSOLE_BYTES_PER_PROOF_BYTE } from './console-file.js';
import { PROOF_OUT_NAME, type ProofOutLibrary } from './preload.js';

/** The environment variable that names the proof file to proof-out.c. */
export const PROOF_FILE_ENV = 'UNIPROVE_PROOF_FILE';
/** Where the library goes in the image. */
export const PROOF_OUT_GUEST_DIR = '/.uniprove-proof-out';

/**
 * Console bytes a second the route counts on, by where the run is (docs/run.md#limits).
 * local: bench/console-throughput.ts measured 283, 229 and 153 kB/s for 0.25, 1 and 4 MB proofs under QEMU
 * TCG on a 2-core host at load 10; 100 kB/s leaves room for a slower host. gce: Compute Engine documents no
 * rate for the serial port (only its 1 MB buffer); 11,520 B/s is what a 115200-baud UART carries, the
 * slowest it could be paced at.
 */
export const CONSOLE_BYTES_PER_SECOND = { local: 100_000, gce: 11_520 } as const;

/** The config with the library mapped into the image, preloaded, and told which file to send. */
export function withConsoleRoute(config: OpsConfig, library: ProofOutLibrary, guestPath: string): OpsConfig {
  const ours = `${PROOF_OUT_GUEST_DIR}/${PROOF_OUT_NAME}`;
  return {
    ...config,
    MapDirs: { ...config.MapDirs, [`${library.dir}/*`]: PROOF_OUT_GUEST_DIR },
    Env: {
      ...config.Env,
      LD_PRELOAD: preloadLast(config.Env?.LD_PRELOAD, ours),
      [PROOF_FILE_ENV]: guestPath,
    },
  };
}

/**
 * What the route cannot serve in this program, as warnings (the run goes on): a static program loads no
 * preloaded library, and a Go program leaves without running library destructors.
 */
export async function consoleRouteWarnings(programPath: string, guestPath: string): Promise<RunWarning[]> {
  const elf = await parseElf(programPath).catch(() => undefined);
  if (!elf) return [];
  if (!elf.interp) {
    return [
      {
        code: 'proof-route-static',
        message: `the prover is statically linked (no program interpreter), so no library can be preloaded into it: the file proof ${guestPath} will not come back through the console. Link it dynamically, or print the proof to the console (proof kind "console").`,
      },
    ];
  }
  if (await isGoProgram(programPath).catch(() => false)) {
    return [
      {
        code: 'proof-route-exit',
        message: `the prover is a Go program: Go leaves through the exit_group system call, not exit(3), so no library destructor runs and the file proof ${guestPath} will not come back through the console. Print the proof to the console (proof kind "console") instead.`,
      },
    ];
  }
  return [];
}

/** Seconds the console needs to carry a proof of `bytes` at `where`'s rate. */
export function consoleSecondsFor(bytes: number, where: keyof typeof CONSOLE_BYTES_PER_SECOND): number {
  return (bytes * CONSOLE_BYTES_PER_PROOF_BYTE) / CONSOLE_BYTES_PER_SECOND[where];
}

/**
 * Refuse, before anything is built or launched, a file proof whose declared largest size the console
 * cannot carry within the run's timeout.
 */
export function checkProofFits(a: {
  maxBytes: number | undefined;
  timeoutMs: number | undefined;
  where: keyof typeof CONSOLE_BYTES_PER_SECOND;
  guestPath: string;
}): void {
  if (a.maxBytes === undefined || !a.timeoutMs) return;
  const seconds = consoleSecondsFor(a.maxBytes, a.where);
  if (seconds * 1000 <= a.timeoutMs) return;
  const rate = CONSOLE_BYTES_PER_SECOND[a.where];
  throw new UniproveError('E_PROOF_TOO_LARGE', {
    message: `the file proof ${a.guestPath} may be ${a.maxBytes} bytes (proof.maxBytes): through the console (${rate} bytes a second ${a.where === 'gce' ? 'assumed on Compute Engine' : 'under local QEMU'}, base64) that takes ${Math.ceil(seconds)} s, more than the run's timeout of ${Math.round(a.timeoutMs / 1000)} s`,
    hint: `Raise --timeout to ${Math.ceil(seconds * 1.2)} s or more, lower proof.maxBytes if the proof is smaller${a.where === 'local' ? ', or run without --proof-via console (the proof is then copied off the image)' : ''}.`,
    details: { maxBytes: a.maxBytes, timeoutMs: a.timeoutMs, consoleBytesPerSecond: rate, seconds },
  });
}
