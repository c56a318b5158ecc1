/**
 * A toolchain folder (UNIPROVE_TOOLCHAIN): what machines without internet install Ops and Nanos from.
 * Its layout is that of the project's shared/toolchain: `ops-linux-<arch>.xz`, `nanos-<version>.tar.xz`,
 * and `SHA256SUMS` listing every file. A file is used only once its sha256 matches that list.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UniproveError } from '../errors.js';
import { sha256File } from '../hash.js';

/** A file of the toolchain folder whose digest was checked against SHA256SUMS. */
export interface ToolchainFile {
  path: string;
  sha256: string;
}

/** The folder, with the digests SHA256SUMS lists. */
export interface ToolchainDir {
  dir: string;
  sums: Map<string, string>;
}

/** Read a toolchain folder's SHA256SUMS (`<hex>  <name>` lines, as sha256sum writes them). */
export async function openToolchainDir(dir: string): Promise<ToolchainDir> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `toolchain folder ${dir} does not exist`,
      hint: 'Point UNIPROVE_TOOLCHAIN (or --toolchain) at a folder holding ops-linux-amd64.xz, nanos-<version>.tar.xz and SHA256SUMS, or unset it to install online.',
    });
  }
  const sumsPath = join(dir, 'SHA256SUMS');
  const text = await readFile(sumsPath, 'utf8').catch(() => undefined);
  if (text === undefined) {
    throw new UniproveError('E_NOT_FOUND', {
      message: `toolchain folder ${dir} has no SHA256SUMS`,
      hint: 'A toolchain folder lists the sha256 of every file in SHA256SUMS (`sha256sum * > SHA256SUMS`).',
    });
  }
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(\S.*)$/.exec(line.trim());
    if (m) sums.set(m[2] as string, m[1] as string);
  }
  return { dir, sums };
}

/** The names in the folder that match `pattern`, sorted (so the newest version of a series sorts last). */
export async function toolchainNames(toolchain: ToolchainDir, pattern: RegExp): Promise<string[]> {
  const names = await readdir(toolchain.dir).catch(() => [] as string[]);
  return names.filter((n) => pattern.test(n)).sort(compareVersionsIn);
}

/** Order versions (or names holding them) by their dotted numbers: 0.1.9 < 0.1.55 < 0.1.55.1. */
export function compareVersions(a: string, b: string): number {
  return compareVersionsIn(a, b);
}

/** Order names by the dotted numbers in them, so nanos-0.1.9 sorts before nanos-0.1.55. */
function compareVersionsIn(a: string, b: string): number {
  const nums = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
  const [x, y] = [nums(a), nums(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return a.localeCompare(b);
}

/**
 * A file of the folder, its sha256 checked against SHA256SUMS. A file the list does not name, or whose
 * digest differs, is refused: a toolchain is installed as it was made, or not at all.
 */
export async function checkedToolchainFile(
  toolchain: ToolchainDir,
  name: string,
  signal?: AbortSignal,
): Promise<ToolchainFile> {
  const path = join(toolchain.dir, name);
  const want = toolchain.sums.get(name);
  if (!want) {
    throw new UniproveError('E_DIGEST_MISMATCH', {
      message: `${path} is not listed in ${join(toolchain.dir, 'SHA256SUMS')}`,
      hint: 'Add its sha256 to SHA256SUMS if you made the file yourself, or take the folder again from its source.',
    });
  }
  const got = await sha256File(path, signal);
  if (got !== want) {
    throw new UniproveError('E_DIGEST_MISMATCH', {
      message: `${path} has sha256 ${got}, but SHA256SUMS says ${want}`,
      hint: 'The file is damaged or was replaced: copy the toolchain folder again from its source.',
      details: { expected: want, actual: got },
    });
  }
  return { path, sha256: got };
}
