/**
 * Reader for glibc's /etc/ld.so.cache.
 *
 * Accepts the new format (`glibc-ld.so.cache1.1`) alone and wrapped in the
 * old `ld.so-1.7.0` header, as ldconfig has written both. Every offset is
 * bounds-checked: a bad cache becomes a `problem`, never an exception, because
 * glibc itself just ignores an unusable cache and searches the default dirs.
 */
import { readFile } from 'node:fs/promises';
import { EM_386, EM_AARCH64, EM_X86_64 } from './parse.js';

/** One soname -> path entry of ld.so.cache. */
export interface LdCacheEntry {
  key: string;
  value: string;
  /** FLAG_* bits: type in the low byte (3 = libc6), architecture in the next. */
  flags: number;
  hwcap: bigint;
  /** The glibc-hwcaps subdirectory (e.g. 'x86-64-v3') when the entry lives in one. */
  hwcapSubdir?: string;
}

/** The result of reading an ld.so.cache file. */
export interface LdCache {
  path: string;
  format: 'new' | 'old+new' | 'none';
  entries: LdCacheEntry[];
  /** Why the cache (or part of it) could not be used; empty when all is well. */
  problems: string[];
}

const OLD_MAGIC = 'ld.so-1.7.0';
const NEW_MAGIC = 'glibc-ld.so.cache1.1';
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const OLD_ENTRY = 12;
const EXTENSION_MAGIC = 0xeaa42174;
const EXTENSION_TAG_GLIBC_HWCAPS = 1;
const HWCAP_EXTENSION_BIT = 1n << 62n;

/** Read and parse the ld.so.cache at `path`; a missing or bad file yields problems, not a throw. */
export async function readLdSoCache(path: string): Promise<LdCache> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { path, format: 'none', entries: [], problems: [`cannot read ${path}: ${code ?? String(error)}`] };
  }
  return parseLdSoCache(buf, path);
}

/** Parse the bytes of an ld.so.cache file. */
export function parseLdSoCache(buf: Buffer, path = '<buffer>'): LdCache {
  const result: LdCache = { path, format: 'none', entries: [], problems: [] };
  let base = -1;
  if (buf.subarray(0, NEW_MAGIC.length).toString('latin1') === NEW_MAGIC) {
    base = 0;
    result.format = 'new';
  } else if (buf.subarray(0, OLD_MAGIC.length).toString('latin1') === OLD_MAGIC) {
    if (buf.length < 16) {
      result.problems.push(`${path}: old-format header is truncated`);
      return result;
    }
    // The old table's byte order is unknown here; the count must make sense in one of them.
    for (const n of [buf.readUInt32LE(12), buf.readUInt32BE(12)]) {
      const end = 16 + n * OLD_ENTRY;
      for (const align of [8, 4]) {
        const at = Math.ceil(end / align) * align;
        if (
          at + NEW_HEADER <= buf.length &&
          buf.subarray(at, at + NEW_MAGIC.length).toString('latin1') === NEW_MAGIC
        ) {
          base = at;
          break;
        }
      }
      if (base >= 0) break;
    }
    if (base < 0) {
      result.problems.push(
        `${path}: old-format cache without a glibc-ld.so.cache1.1 section (not supported)`,
      );
      return result;
    }
    result.format = 'old+new';
  } else {
    result.problems.push(`${path}: not an ld.so.cache file (unknown magic)`);
    return result;
  }
  if (base + NEW_HEADER > buf.length) {
    result.problems.push(`${path}: header is truncated`);
    result.format = 'none';
    return result;
  }
  // flags byte: 2 little-endian, 3 big-endian, 0 unknown (written by old ldconfig; assume little).
  const endianFlag = buf[base + 28] ?? 0;
  const le = endianFlag !== 3;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const i32 = (o: number) => (le ? buf.readInt32LE(o) : buf.readInt32BE(o));
  const u64 = (o: number) => (le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o));
  const nlibs = u32(base + 20);
  const extensionOffset = u32(base + 32);
  const tableEnd = base + NEW_HEADER + nlibs * NEW_ENTRY;
  if (tableEnd > buf.length) {
    result.problems.push(`${path}: claims ${nlibs} entries but is only ${buf.length} bytes`);
    result.format = 'none';
    return result;
  }
  const str = (offset: number): string | undefined => {
    const at = base + offset;
    if (offset === 0 || at >= buf.length) return undefined;
    const end = buf.indexOf(0, at);
    if (end === -1) return undefined;
    return buf.subarray(at, end).toString('utf8');
  };

  const hwcapNames = readHwcapExtension(buf, base, extensionOffset, u32, str, result.problems, path);

  let bad = 0;
  for (let i = 0; i < nlibs; i++) {
    const o = base + NEW_HEADER + i * NEW_ENTRY;
    const flags = i32(o);
    const key = str(u32(o + 4));
    const value = str(u32(o + 8));
    const hwcap = u64(o + 16);
    if (key === undefined || value === undefined) {
      bad++;
      continue;
    }
    const entry: LdCacheEntry = { key, value, flags, hwcap };
    if ((hwcap & HWCAP_EXTENSION_BIT) !== 0n) {
      const index = Number(hwcap & 0xffffffffn);
      const name = hwcapNames[index];
      if (name !== undefined) entry.hwcapSubdir = name;
    }
    result.entries.push(entry);
  }
  if (bad > 0) result.problems.push(`${path}: ${bad} entries point outside the file and were ignored`);
  return result;
}

function readHwcapExtension(
  buf: Buffer,
  base: number,
  extensionOffset: number,
  u32: (o: number) => number,
  str: (o: number) => string | undefined,
  problems: string[],
  path: string,
): string[] {
  if (extensionOffset === 0) return [];
  const at = base + extensionOffset;
  if (at + 8 > buf.length || u32(at) !== EXTENSION_MAGIC) {
    problems.push(`${path}: extension section is missing or malformed`);
    return [];
  }
  const count = u32(at + 4);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = at + 8 + i * 16;
    if (s + 16 > buf.length) {
      problems.push(`${path}: extension section is truncated`);
      break;
    }
    const tag = u32(s);
    const offset = u32(s + 8);
    const size = u32(s + 12);
    if (tag !== EXTENSION_TAG_GLIBC_HWCAPS) continue;
    // The section is an array of uint32 string offsets, one per hwcaps subdirectory.
    for (let j = 0; j + 4 <= size; j += 4) {
      const p = base + offset + j;
      if (p + 4 > buf.length) break;
      names.push(str(u32(p)) ?? '');
    }
  }
  return names;
}

const FLAG_ELF_LIBC6 = 0x0003;

/**
 * The cache flag values glibc accepts for a requester of this machine/class
 * (glibc's _DL_CACHE_DEFAULT_ID and _dl_cache_check_flags).
 */
export function acceptedCacheFlags(machine: number, elfClass: 32 | 64, eFlags = 0): number[] {
  if (machine === EM_X86_64) return elfClass === 64 ? [0x0303] : [0x0803];
  if (machine === EM_386) return [FLAG_ELF_LIBC6];
  if (machine === EM_AARCH64) return elfClass === 64 ? [0x0a03] : [FLAG_ELF_LIBC6];
  if (machine === 40) return eFlags & 0x400 ? [0x0903] : [0x0b03, FLAG_ELF_LIBC6]; // ARM hard/soft float
  if (machine === 21) return [0x0503]; // ppc64
  if (machine === 22) return elfClass === 64 ? [0x0403] : [FLAG_ELF_LIBC6]; // s390x / s390
  if (machine === 243) return elfClass === 64 ? [0x1003, 0x0f03] : [FLAG_ELF_LIBC6]; // riscv double/soft
  if (machine === 258) return [0x1203, 0x1103]; // loongarch double/soft
  if (machine === 2 || machine === 43 || machine === 20) return [FLAG_ELF_LIBC6];
  return [FLAG_ELF_LIBC6];
}

/**
 * The path ld.so.cache gives for `name`, as glibc's dl-cache.c picks it:
 * entries of the right flags, preferring glibc-hwcaps subdirectories in the
 * order given, then a plain entry.
 */
export function lookupLdCache(
  cache: LdCache,
  name: string,
  accepted: number[],
  hwcapSubdirs: string[],
): string | undefined {
  let best: LdCacheEntry | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const entry of cache.entries) {
    if (entry.key !== name || !accepted.includes(entry.flags)) continue;
    let rank: number;
    if (entry.hwcapSubdir !== undefined) {
      const i = hwcapSubdirs.indexOf(entry.hwcapSubdir);
      if (i === -1) continue;
      rank = i;
    } else {
      rank = hwcapSubdirs.length;
    }
    if (rank < bestRank) {
      best = entry;
      bestRank = rank;
    }
  }
  return best?.value;
}
