/**
 * The proof-out library (native/proof-out.c): compiled with the host's gcc the first time a run needs the
 * console route, and kept in uniprove's cache under the digest of its source and flags, so a later run (or
 * another uniprove process) reuses it without a compiler.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UniproveError } from '../errors.js';
import { run, which } from '../exec.js';

/** The C source of the library, shipped with uniprove (package.json `files`). */
export const PROOF_OUT_SOURCE = fileURLToPath(new URL('../../../native/proof-out.c', import.meta.url));

/** The library's file name, in the cache and in the image. */
export const PROOF_OUT_NAME = 'uniprove-proof-out.so';

const CFLAGS = ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror'];

export interface ProofOutOptions {
  /** uniprove's cache folder; the library goes under proof-out/<digest>/. */
  cacheDir: string;
  /** The compiler (default gcc on PATH). */
  gcc?: string;
  /** PATH to look the compiler up in. */
  pathEnv?: string;
  signal?: AbortSignal;
}

export interface ProofOutLibrary {
  /** The host path of the compiled library. */
  path: string;
  /** The folder that holds it alone (an Ops MapDirs source). */
  dir: string;
  /** sha256 of the source and flags it was compiled from. */
  digest: string;
  /** false when a cached copy was used. */
  compiled: boolean;
}

/** The compiled proof-out library: from the cache when its source is unchanged, else built with gcc now. */
export async function buildProofOutLibrary(options: ProofOutOptions): Promise<ProofOutLibrary> {
  const source = await readFile(PROOF_OUT_SOURCE);
  const digest = createHash('sha256')
    .update(source)
    .update(`\0${CFLAGS.join(' ')}`)
    .digest('hex');
  const dir = join(options.cacheDir, 'proof-out', digest.slice(0, 32));
  const path = join(dir, PROOF_OUT_NAME);
  if ((await stat(path).catch(() => undefined))?.isFile()) return { path, dir, digest, compiled: false };
  const gccName = options.gcc ?? 'gcc';
  const gcc = await which(gccName, options.pathEnv);
  if (!gcc) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `${gccName} is not installed or not on PATH: it compiles the small library that sends a file proof back through the console`,
      hint: 'Install gcc (apt-get install gcc, or bash scripts/setup.sh), then run again; it is compiled once and cached.',
      details: { tool: 'gcc' },
    });
  }
  await mkdir(dir, { recursive: true });
  // Compiled beside its place and renamed in: a reader never sees half a library.
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await run([gcc, ...CFLAGS, '-o', temp, PROOF_OUT_SOURCE], {
      timeoutMs: 120_000,
      ...(options.signal ? { signal: options.signal } : {}),
      timeoutReport: { what: `gcc compiling ${PROOF_OUT_SOURCE}` },
    });
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true }).catch(() => {});
  }
  return { path, dir, digest, compiled: true };
}
