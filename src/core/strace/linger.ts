/**
 * The probe's linger (native/probe-linger.c): a library preloaded into the probed program only, which keeps
 * its process alive for a while after it calls exit, so that threads which lost the race with the exit
 * (a database client resolving `localhost`) run on and what they open is traced. Compiled with the host's
 * gcc the first time it is needed and kept in uniprove's cache (core/native.ts); never put in a package.
 */
import { fileURLToPath } from 'node:url';
import { isGoProgram } from '../elf/go.js';
import type { ElfInfo } from '../elf/parse.js';
import { UniproveError } from '../errors.js';
import { buildNative, type NativeBuild, type NativeOptions, preloadLast } from '../native.js';

/** The C source of the library, shipped with uniprove (package.json `files`). */
export const PROBE_LINGER_SOURCE = fileURLToPath(new URL('../../../native/probe-linger.c', import.meta.url));

/** The library's file name in the cache. */
export const PROBE_LINGER_NAME = 'uniprove-probe-linger.so';

/** The environment variable that tells the library how long to linger, in milliseconds. */
export const PROBE_LINGER_ENV = 'UNIPROVE_PROBE_LINGER_MS';

/** The longest linger asked for (recipe probe.lingerMs has the same bound). */
export const PROBE_LINGER_MAX_MS = 60_000;

const CFLAGS = ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror'];

/** The compiled linger library: from the cache when its source is unchanged, else built with gcc now. */
export function buildProbeLingerLibrary(options: NativeOptions): Promise<NativeBuild> {
  return buildNative(
    {
      source: PROBE_LINGER_SOURCE,
      name: PROBE_LINGER_NAME,
      folder: 'probe-linger',
      cflags: CFLAGS,
      purpose: "compiles the small library that keeps the probed program's threads running after it exits",
    },
    options,
  );
}

/** Refuse a linger that is not whole milliseconds from 0 to PROBE_LINGER_MAX_MS, before anything runs. */
export function checkLingerMs(lingerMs: number): void {
  if (Number.isInteger(lingerMs) && lingerMs >= 0 && lingerMs <= PROBE_LINGER_MAX_MS) return;
  throw new UniproveError('E_USAGE', {
    message: `the probe's linger must be whole milliseconds from 0 to ${PROBE_LINGER_MAX_MS}, not ${lingerMs}`,
    hint: 'Give a linger of at most 60 s (e.g. --linger 2s, or "probe": { "lingerMs": 2000 } in a recipe).',
  });
}

/**
 * The probe's environment with the library preloaded after the program's own preloads (a recipe's
 * stdin-from-file.so keeps its place) and told how long to linger.
 */
export function lingerEnv(
  env: Record<string, string> | undefined,
  library: string,
  lingerMs: number,
): Record<string, string> {
  return { ...env, LD_PRELOAD: preloadLast(env?.LD_PRELOAD, library), [PROBE_LINGER_ENV]: String(lingerMs) };
}

/** Why a linger cannot apply to this program (static: nothing is preloaded; Go: no exit handler runs), or undefined. */
export async function lingerBlocker(programPath: string, info: ElfInfo): Promise<string | undefined> {
  if (!info.interp) {
    return 'the program is statically linked (no program interpreter), so no library can be preloaded into it';
  }
  if (await isGoProgram(programPath).catch(() => false)) {
    return 'the program is a Go program, which leaves through the exit_group system call without running exit handlers';
  }
  return undefined;
}
