/**
 * Importer for rust-fil-proofs' parameters.json and srs-inner-product.json:
 * `{ "<file name>": { cid, digest, sector_size } }`, where digest is the first
 * 32 hex characters of the file's BLAKE2b-512.
 */
import { z } from 'zod';
import { UniproveError } from '../errors.js';
import { type ParameterSetSpec, type ResolvedParameterSet, resolveParameterSet } from './spec.js';

/** Filecoin's public gateway; files are addressed by CID under it. */
export const DEFAULT_FILECOIN_BASE_URL = 'https://proofs.filecoin.io/ipfs/';

/** Where filecoin-proofs looks for parameters unless FIL_PROOFS_PARAMETER_CACHE says otherwise. */
export const FILECOIN_PARAMETER_DIR = '/var/tmp/filecoin-proof-parameters';

const entrySchema = z.object({
  cid: z.string().regex(/^[A-Za-z0-9]+$/),
  digest: z.string().regex(/^[0-9a-f]{32}$/),
  sector_size: z.number().int().nonnegative(),
});

/** The shape of parameters.json. */
export const filecoinParametersSchema = z.record(z.string().regex(/^[A-Za-z0-9._+-]+$/), entrySchema);

export type FilecoinParameters = z.infer<typeof filecoinParametersSchema>;

/** True when a parsed JSON value looks like parameters.json rather than a parameter set. */
export function isFilecoinParameters(value: unknown): boolean {
  if (!value || typeof value !== 'object' || Array.isArray(value) || 'files' in value) return false;
  const first = Object.values(value)[0] as Record<string, unknown> | undefined;
  return Boolean(first && typeof first === 'object' && 'cid' in first && 'sector_size' in first);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Parse a sector size: `2KiB`, `8MiB`, `512MiB`, `32GiB`, `64GiB` or a byte count. */
export function parseSectorSize(value: string): number {
  const match = /^\s*(\d+)\s*([A-Za-z]*)\s*$/.exec(value);
  const unit = SIZE_UNITS[(match?.[2] ?? 'x').toLowerCase()];
  if (!match || unit === undefined) {
    throw new UniproveError('E_USAGE', {
      message: `sector size ${JSON.stringify(value)} is not a size`,
      hint: 'Use 2KiB, 8MiB, 512MiB, 32GiB or 64GiB, or a number of bytes such as 2048.',
    });
  }
  return Number(match[1]) * unit;
}

/** Human name of a sector size (2048 -> 2KiB). */
export function formatSectorSize(bytes: number): string {
  for (const [unit, factor] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/** The URL of a file under a base URL: `{cid}`/`{name}` placeholders, else CID under `/ipfs/`, else the name. */
export function urlFor(baseUrl: string, file: { name: string; cid?: string | undefined }): string {
  if (baseUrl.includes('{cid}') || baseUrl.includes('{name}')) {
    if (baseUrl.includes('{cid}') && !file.cid) {
      throw new UniproveError('E_USAGE', {
        message: `base URL ${baseUrl} needs a CID but ${file.name} has none`,
        hint: 'Use {name} in --base-url for this set.',
      });
    }
    return baseUrl.replaceAll('{cid}', file.cid ?? '').replaceAll('{name}', encodeURIComponent(file.name));
  }
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  if (/\/ipfs\/$/.test(base) && file.cid) return `${base}${file.cid}`;
  return `${base}${encodeURIComponent(file.name)}`;
}

export interface ImportFilecoinOptions {
  /** Keep only files for this sector size in bytes (0 picks the SRS entries). Required when the input has several. */
  sectorSize?: number;
  /** See urlFor; default Filecoin's public gateway. */
  baseUrl?: string;
  /** Name of the set; default `filecoin-<size>`. */
  name?: string;
  mountPath?: string;
  /** Recorded in the set's `source.file`. */
  sourceFile?: string;
}

/** Turn parameters.json (already parsed) into a parameter set, filtered by sector size. */
export function importFilecoinParameters(
  value: unknown,
  origin: string,
  options: ImportFilecoinOptions = {},
): ResolvedParameterSet {
  const parsed = filecoinParametersSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new UniproveError('E_CONFIG', {
      message: `${origin} is not in rust-fil-proofs parameters.json format:\n  ${problems.slice(0, 10).join('\n  ')}`,
      hint: 'Expected { "<file>": { "cid", "digest" (32 hex), "sector_size" } }.',
      details: { problems },
    });
  }
  const entries = Object.entries(parsed.data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const sizes = [...new Set(entries.map(([, e]) => e.sector_size))].sort((a, b) => a - b);
  let sectorSize = options.sectorSize;
  if (sectorSize === undefined) {
    if (sizes.length !== 1) {
      throw new UniproveError('E_USAGE', {
        message: `${origin} lists files for ${sizes.length} sector sizes (${sizes.map(formatSectorSize).join(', ')}); pick one`,
        hint: `Pass --sector-size, e.g. --sector-size ${formatSectorSize(sizes[0] ?? 2048)}.`,
      });
    }
    sectorSize = sizes[0]!;
  }
  const picked = entries.filter(([, e]) => e.sector_size === sectorSize);
  if (picked.length === 0) {
    throw new UniproveError('E_USAGE', {
      message: `${origin} has no files for sector size ${formatSectorSize(sectorSize)} (${sectorSize} bytes)`,
      hint: `It has: ${sizes.map((s) => `${formatSectorSize(s)} (${s})`).join(', ')}.`,
    });
  }
  const baseUrl = options.baseUrl ?? DEFAULT_FILECOIN_BASE_URL;
  const label = sectorSize === 0 ? 'srs' : formatSectorSize(sectorSize);
  const spec: ParameterSetSpec = {
    name: options.name ?? `filecoin-${label}`,
    description:
      sectorSize === 0
        ? `Filecoin SRS files (sector_size 0 in ${options.sourceFile ?? origin}).`
        : `Filecoin Groth parameters and verifying keys for ${label} sectors, from rust-fil-proofs ${options.sourceFile ?? origin}.`,
    mountPath: options.mountPath ?? FILECOIN_PARAMETER_DIR,
    source: {
      kind: 'filecoin-parameters',
      sectorSize,
      ...(options.sourceFile ? { file: options.sourceFile } : {}),
    },
    files: picked.map(([name, e]) => ({
      name,
      digest: `blake2b512-trunc128:${e.digest}`,
      cid: e.cid,
      urls: [urlFor(baseUrl, { name, cid: e.cid })],
    })),
  };
  return resolveParameterSet(spec, `imported from ${origin}`);
}

/** The set as it is written to volumes/<name>.json (without resolved fields). */
export function toSetFile(set: ResolvedParameterSet): ParameterSetSpec {
  return {
    $schema: set.$schema ?? './parameter-set.schema.json',
    name: set.name,
    ...(set.description ? { description: set.description } : {}),
    mountPath: set.mountPath,
    ...(set.source ? { source: set.source } : {}),
    files: set.files.map(({ guestPath: _g, path, ...file }) => ({
      name: file.name,
      ...(path !== file.name ? { path } : {}),
      ...(file.size === undefined ? {} : { size: file.size }),
      digest: file.digest,
      ...(file.cid ? { cid: file.cid } : {}),
      urls: file.urls,
    })),
  };
}
