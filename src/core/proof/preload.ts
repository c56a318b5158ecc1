/**
 * The proof-out library (native/proof-out.c): compiled with the host's gcc the first time a run needs the
 * console route, and kept in uniprove's cache (core/native.ts).
 */
import { fileURLToPath } from 'node:url';
import { buildNative, type NativeBuild, type NativeOptions } from '../native.js';

/** The C source of the library, shipped with uniprove (package.json `files`). */
export const PROOF_OUT_SOURCE = fileURLToPath(new URL('../../../native/proof-out.c', import.meta.url));

/** The library's file name, in the cache and in the image. */
export const PROOF_OUT_NAME = 'uniprove-proof-out.so';

const CFLAGS = ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror'];

/** uniprove's cache folder (the library goes under proof-out/<digest>/), the compiler, PATH, abort signal. */
export type ProofOutOptions = NativeOptions;

/** The compiled library; `dir` holds it alone (an Ops MapDirs source). */
export type ProofOutLibrary = NativeBuild;

/** The compiled proof-out library: from the cache when its source is unchanged, else built with gcc now. */
export function buildProofOutLibrary(options: ProofOutOptions): Promise<ProofOutLibrary> {
  return buildNative(
    {
      source: PROOF_OUT_SOURCE,
      name: PROOF_OUT_NAME,
      folder: 'proof-out',
      cflags: CFLAGS,
      purpose: 'compiles the small library that sends a file proof back through the console',
    },
    options,
  );
}
