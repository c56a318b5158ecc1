/**
 * Content digests of parameter files. A digest is written `<algorithm>:<hex>`
 * so a set file always says how it was computed.
 */
import { createHash, type Hash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { UniproveError } from '../errors.js';
import { type HashWorkers, readFileChunks } from '../hash.js';

/**
 * `blake2b512-trunc128`: the first 32 hex characters (128 bits) of BLAKE2b-512,
 * which is what rust-fil-proofs records in parameters.json.
 * `sha256`: the full SHA-256, for sets from other provers.
 */
export const DIGEST_ALGORITHMS = {
  'blake2b512-trunc128': { node: 'blake2b512', hexLength: 32 },
  sha256: { node: 'sha256', hexLength: 64 },
} as const;

export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** The pattern a digest string must match, for schema validation. */
export const DIGEST_PATTERN = /^(blake2b512-trunc128:[0-9a-f]{32}|sha256:[0-9a-f]{64})$/;

/** Parse `<algorithm>:<hex>`; throws E_CONFIG naming the value when malformed. */
export function parseDigest(value: string): Digest {
  const match = /^([a-z0-9-]+):([0-9a-f]+)$/.exec(value);
  const algorithm = match?.[1] as DigestAlgorithm | undefined;
  const info = algorithm ? DIGEST_ALGORITHMS[algorithm] : undefined;
  if (!match || !algorithm || !info || match[2]!.length !== info.hexLength) {
    throw new UniproveError('E_CONFIG', {
      message: `digest ${JSON.stringify(value)} is not <algorithm>:<lowercase hex>`,
      hint: `Use one of: ${Object.entries(DIGEST_ALGORITHMS)
        .map(([name, a]) => `${name}:<${a.hexLength} hex>`)
        .join(', ')}.`,
    });
  }
  return { algorithm, hex: match[2]! };
}

/** The string form of a digest. */
export function formatDigest(digest: Digest): string {
  return `${digest.algorithm}:${digest.hex}`;
}

/** An incremental hasher for one algorithm. */
export interface Hasher {
  update(chunk: Uint8Array): void;
  /** The digest of everything fed so far, as `<algorithm>:<hex>` (once). */
  digest(): string | Promise<string>;
  /** Forget the hash without a digest (a restarted download). */
  discard?(): void;
  /**
   * Present on hashers that read their file themselves (hashing threads): feed them the
   * range [position, position + length) once it is on disk, instead of calling update.
   */
  written?(position: number, length: number): void;
}

/**
 * Start hashing with the given algorithm; with `threads` and the `path` of the file being
 * written, on a worker thread that reads the written bytes back (see Hasher.written).
 */
export function createHasher(algorithm: DigestAlgorithm, threads?: HashWorkers, path?: string): Hasher {
  const info = DIGEST_ALGORITHMS[algorithm];
  if (threads && path !== undefined) {
    const h = threads.hashWritten(path, info.node);
    return {
      update: () => {
        throw new Error('a hashing-thread hasher reads its file: call written(position, length)');
      },
      written: (position, length) => h.written(position, length),
      digest: async () => `${algorithm}:${(await h.digest()).slice(0, info.hexLength)}`,
      discard: () => h.discard(),
    };
  }
  const hash: Hash = createHash(info.node);
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digest: () => `${algorithm}:${hash.digest('hex').slice(0, info.hexLength)}`,
  };
}

/** Feed bytes [0, end) of a file into a hasher (the whole file when end is undefined). */
export async function hashFileInto(
  path: string,
  hasher: Hasher,
  options: { end?: number; signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<number> {
  if (options.end === 0) return 0;
  if (hasher.written) {
    const end = options.end ?? (await stat(path)).size;
    hasher.written(0, end);
    options.onBytes?.(end);
    return end;
  }
  return readFileChunks(
    path,
    (chunk) => {
      hasher.update(chunk);
      options.onBytes?.(chunk.length);
    },
    options,
  );
}

/** The digest of a whole file as a parameter set writes it (`sha256:…`, `blake2b512-trunc128:…`). */
export async function digestOfFile(
  path: string,
  algorithm: DigestAlgorithm,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<string> {
  const hasher = createHasher(algorithm);
  await hashFileInto(path, hasher, options);
  return await hasher.digest();
}
