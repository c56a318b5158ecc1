/**
 * uniprove's small C helpers (native/*.c): compiled with the host's gcc the first time they are needed, and
 * kept in uniprove's cache under the digest of their source and flags, so a later run (or another uniprove
 * process) reuses them without a compiler.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from './errors.js';
import { run, which } from './exec.js';
import { sha256Of } from './hash.js';

/** What to compile: a C source shipped with uniprove (package.json `files`). */
export interface NativeSpec {
  /** Path of the C source. */
  source: string;
  /** The output's file name. */
  name: string;
  /** The cache folder it goes under: <cacheDir>/<folder>/<digest>/<name>. */
  folder: string;
  cflags: readonly string[];
  /** What it is for, for the message when gcc is missing ("compiles the small library that ..."). */
  purpose: string;
}

export interface NativeOptions {
  /** uniprove's cache folder. */
  cacheDir: string;
  /** The compiler (default gcc on PATH). */
  gcc?: string;
  /** PATH to look the compiler up in. */
  pathEnv?: string;
  signal?: AbortSignal;
}

export interface NativeBuild {
  /** The host path of the compiled file. */
  path: string;
  /** The folder that holds it alone. */
  dir: string;
  /** sha256 of the source and flags it was compiled from. */
  digest: string;
  /** false when a cached copy was used. */
  compiled: boolean;
  /** Why a cached copy was compiled again (it no longer matched the sha256 kept beside it). */
  damaged?: string;
}

/** A compiled helper: from the cache when its source and flags are unchanged, else built with gcc now. */
export async function buildNative(spec: NativeSpec, options: NativeOptions): Promise<NativeBuild> {
  const source = await readFile(spec.source);
  const digest = createHash('sha256')
    .update(source)
    .update(`\0${spec.cflags.join(' ')}`)
    .digest('hex');
  const dir = join(options.cacheDir, spec.folder, digest.slice(0, 32));
  const path = join(dir, spec.name);
  const seal = `${path}.sha256`;
  // A cached copy is used only while it is the one compiled: its sha256 kept beside it (a truncated or
  // overwritten helper would fail every run that preloads it). One read of a small file.
  let damaged: string | undefined;
  if ((await stat(path).catch(() => undefined))?.isFile()) {
    const want = (await readFile(seal, 'utf8').catch(() => '')).trim();
    const have = sha256Of(await readFile(path));
    if (want === have) return { path, dir, digest, compiled: false };
    damaged = want
      ? `the cached ${spec.name} no longer has the bytes it was compiled to (sha256 ${have.slice(0, 12)}…, not ${want.slice(0, 12)}…)`
      : `the cached ${spec.name} has no record of its sha256`;
  }
  const gccName = options.gcc ?? 'gcc';
  const gcc = await which(gccName, options.pathEnv);
  if (!gcc) {
    throw new UniproveError('E_TOOL_MISSING', {
      message: `${gccName} is not installed or not on PATH: it ${spec.purpose}`,
      hint: 'Install gcc (apt-get install gcc, or bash scripts/setup.sh), then run again; it is compiled once and cached.',
      details: { tool: 'gcc' },
    });
  }
  await mkdir(dir, { recursive: true });
  // Compiled beside its place and renamed in: a reader never sees half a file.
  const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temp = `${path}.tmp-${unique}`;
  // Parallel runs of one process may compile the same helper at once: each seal has a temp name of its own.
  const sealTemp = `${seal}.tmp-${unique}`;
  try {
    await run([gcc, ...spec.cflags, '-o', temp, spec.source], {
      timeoutMs: 120_000,
      ...(options.signal ? { signal: options.signal } : {}),
      timeoutReport: { what: `gcc compiling ${spec.source}` },
    });
    const sha = sha256Of(await readFile(temp));
    await writeFile(sealTemp, `${sha}\n`);
    await rename(sealTemp, seal);
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true }).catch(() => {});
    await rm(sealTemp, { force: true }).catch(() => {});
  }
  return { path, dir, digest, compiled: true, ...(damaged ? { damaged } : {}) };
}

/**
 * An LD_PRELOAD value with `library` last: the program's own preloads (zk_evm's stdin-from-file.so) keep their
 * place, and `library` appears once.
 */
export function preloadLast(current: string | undefined, library: string): string {
  const theirs = (current ?? '').split(/[\s:]+/).filter((p) => p && p !== library);
  return [...theirs, library].join(':');
}
