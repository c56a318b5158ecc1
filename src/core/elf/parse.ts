/**
 * ELF header and dynamic-section reader.
 *
 * Only the headers, the program headers, the dynamic section and its string
 * table are read, with positional reads: prover binaries can be gigabytes and
 * we never need their code. The parser is written once as a generator that
 * asks for byte ranges, then driven synchronously over a Buffer or
 * asynchronously over a file handle.
 */
import { open, stat } from 'node:fs/promises';
import { UniproveError } from '../errors.js';
import { notRegularFile } from '../fs.js';

/** What uniprove needs to know about one ELF file. */
export interface ElfInfo {
  path: string;
  class: 32 | 64;
  endianness: 'little' | 'big';
  /** e_machine. */
  machine: number;
  /** A short name for e_machine: 'x86_64', 'aarch64', 'i386', or `machine-<n>`. */
  machineName: string;
  /** e_ident[EI_OSABI] (0 System V, 3 GNU/Linux). */
  osAbi: number;
  /** e_flags (the float ABI of 32-bit ARM lives here). */
  flags: number;
  type: 'exec' | 'dyn' | 'rel' | 'core';
  /** A position-independent executable (DF_1_PIE, or ET_DYN with a PT_INTERP). */
  isPie: boolean;
  /** True when there is a dynamic section: false for static executables. */
  dynamic: boolean;
  /** PT_INTERP: the program interpreter (dynamic loader) path. */
  interp?: string;
  /** DT_NEEDED entries, in order. */
  needed: string[];
  /** DT_RPATH split on ':'; glibc ignores it when DT_RUNPATH is present. */
  rpath: string[];
  /** DT_RUNPATH split on ':'. */
  runpath: string[];
  soname?: string;
  /** DT_FLAGS_1 (DF_1_NODEFLIB = 0x800 turns off ld.so.cache and the default dirs). */
  flags1: number;
}

/** e_machine values uniprove names. */
export const ELF_MACHINES: Record<number, string> = {
  2: 'sparc',
  3: 'i386',
  8: 'mips',
  20: 'ppc',
  21: 'ppc64',
  22: 's390',
  40: 'arm',
  43: 'sparcv9',
  50: 'ia64',
  62: 'x86_64',
  183: 'aarch64',
  243: 'riscv',
  258: 'loongarch',
};

export const EM_386 = 3;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const DF_1_NODEFLIB = 0x800;
const DF_1_PIE = 0x08000000;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const SHT_DYNAMIC = 6;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_FLAGS_1 = 0x6ffffffb;

/** Caps on table sizes so a corrupt header cannot make us allocate gigabytes. */
const MAX_PHDRS = 65535;
const MAX_DYNAMIC_BYTES = 4 * 1024 * 1024;
const MAX_STRTAB_BYTES = 64 * 1024 * 1024;

interface ReadRequest {
  offset: number;
  length: number;
  what: string;
}

type Steps = Generator<ReadRequest, ElfInfo, Buffer>;

/** Parse the ELF file at `path` (positional reads only). */
export async function parseElf(path: string): Promise<ElfInfo> {
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) {
      throw new UniproveError('E_IS_DIRECTORY', {
        message: `${path} is a directory, not an ELF file`,
        hint: 'Pass the program file itself, not the folder that holds it.',
        details: { path },
      });
    }
    // Opening a FIFO waits for a writer: what is not a regular file is refused before it is opened.
    if (!st.isFile()) throw notRegularFile(st, path, 'ELF file', 'Pass the program file itself.');
    size = st.size;
  } catch (error) {
    throw fsError(error, path);
  }
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fsError(error, path);
  }
  try {
    const steps = parseSteps(path, size);
    let next = steps.next();
    while (!next.done) {
      const { offset, length } = next.value;
      const want = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await handle.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      next = steps.next(got === want ? buf : buf.subarray(0, got));
    }
    return next.value;
  } finally {
    await handle.close();
  }
}

/** Parse an ELF image held in memory; `path` only names it in errors. */
export function parseElfBuffer(buf: Buffer, path = '<buffer>'): ElfInfo {
  const steps = parseSteps(path, buf.length);
  let next = steps.next();
  while (!next.done) {
    const { offset, length } = next.value;
    next = steps.next(buf.subarray(Math.min(offset, buf.length), Math.min(offset + length, buf.length)));
  }
  return next.value;
}

function fsError(error: unknown, path: string): unknown {
  if (error instanceof UniproveError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new UniproveError('E_NOT_FOUND', {
      message: `${path} does not exist`,
      hint: 'Check the path; relative paths are taken from the current folder.',
      cause: error,
      details: { path },
    });
  }
  if (code === 'EISDIR') {
    return new UniproveError('E_IS_DIRECTORY', {
      message: `${path} is a directory, not an ELF file`,
      hint: 'Pass the program file itself, not the folder that holds it.',
      cause: error,
      details: { path },
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new UniproveError('E_PERMISSION', {
      message: `${path} cannot be read: permission denied`,
      hint: `Make it readable for this user (ls -l ${path}).`,
      cause: error,
      details: { path },
    });
  }
  return error;
}

function truncated(path: string, what: string, offset: number, length: number, size: number): UniproveError {
  return new UniproveError('E_ELF_TRUNCATED', {
    message: `${path} is truncated: its ${what} (bytes ${offset}..${offset + length}) lie past the end of the file (${size} bytes)`,
    hint: 'The file was probably cut off while copying or downloading; copy it again.',
    details: { path, what, offset, length, size },
  });
}

function notElf(path: string, head: Buffer): UniproveError {
  const shebang = head.length >= 2 && head[0] === 0x23 && head[1] === 0x21;
  if (shebang) {
    const line = head.subarray(2, head.indexOf(0x0a) === -1 ? head.length : head.indexOf(0x0a));
    const interpreter = line.toString('utf8').trim();
    return new UniproveError('E_NOT_ELF', {
      message: `${path} is a script (#!${interpreter}), not an ELF binary`,
      hint:
        'Pass the real program: for shims (pyenv, asdf, rbenv) find the binary they exec, ' +
        'e.g. `pyenv which python`, or `readlink -f $(command -v NAME)`.',
      details: { path, script: true, interpreter },
    });
  }
  return new UniproveError('E_NOT_ELF', {
    message: `${path} is not an ELF file (no \\x7fELF magic)`,
    hint: 'Point uniprove at the compiled program: `readlink -f $(command -v NAME)`.',
    details: { path, script: false },
  });
}

function* parseSteps(path: string, size: number): Steps {
  const read = function* (
    offset: number,
    length: number,
    what: string,
  ): Generator<ReadRequest, Buffer, Buffer> {
    if (offset < 0 || length < 0 || !Number.isSafeInteger(offset + length)) {
      throw truncated(path, what, offset, length, size);
    }
    const buf: Buffer = yield { offset, length, what };
    if (buf.length < length) throw truncated(path, what, offset, length, size);
    return buf;
  };

  // The magic first, so a short text file is "not ELF" rather than "truncated".
  const head: Buffer = yield { offset: 0, length: 128, what: 'ELF header' };
  if (head.length < 4 || head.readUInt32BE(0) !== 0x7f454c46) throw notElf(path, head);
  const eiClass = head[4];
  const eiData = head[5];
  if (eiClass !== 1 && eiClass !== 2) {
    throw new UniproveError('E_ELF_UNSUPPORTED', {
      message: `${path} has an unknown ELF class ${eiClass}`,
      hint: 'The file is corrupt or not a program for Linux.',
      details: { path },
    });
  }
  if (eiData !== 1 && eiData !== 2) {
    throw new UniproveError('E_ELF_UNSUPPORTED', {
      message: `${path} has an unknown ELF data encoding ${eiData}`,
      hint: 'The file is corrupt or not a program for Linux.',
      details: { path },
    });
  }
  const is64 = eiClass === 2;
  const le = eiData === 1;
  const ehsize = is64 ? 64 : 52;
  if (head.length < ehsize) throw truncated(path, 'ELF header', 0, ehsize, size);

  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number) => {
    const v = le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o);
    // Offsets and sizes beyond 2^53 cannot be real in a file we can read.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const addr = (b: Buffer, o: number) => (is64 ? u64(b, o) : u32(b, o));
  const sword = (b: Buffer, o: number) => (is64 ? u64(b, o) : u32(b, o));

  const eType = u16(head, 16);
  const machine = u16(head, 18);
  const phoff = addr(head, is64 ? 32 : 28);
  const shoff = addr(head, is64 ? 40 : 32);
  const flags = u32(head, is64 ? 48 : 36);
  const phentsize = u16(head, is64 ? 54 : 42);
  const phnum = u16(head, is64 ? 56 : 44);
  const shentsize = u16(head, is64 ? 58 : 46);
  const shnum = u16(head, is64 ? 60 : 48);

  const typeName = ({ 1: 'rel', 2: 'exec', 3: 'dyn', 4: 'core' } as const)[eType as 1 | 2 | 3 | 4];
  if (typeName === undefined || typeName === 'core') {
    throw new UniproveError('E_ELF_UNSUPPORTED', {
      message:
        typeName === 'core'
          ? `${path} is a core dump, not a program`
          : `${path} has ELF type ${eType}, which is not a program or library`,
      hint: 'Pass the executable that produced it instead.',
      details: { path, type: eType },
    });
  }

  const info: ElfInfo = {
    path,
    class: is64 ? 64 : 32,
    endianness: le ? 'little' : 'big',
    machine,
    machineName: ELF_MACHINES[machine] ?? `machine-${machine}`,
    osAbi: head[7] ?? 0,
    flags,
    type: typeName,
    isPie: false,
    dynamic: false,
    needed: [],
    rpath: [],
    runpath: [],
    flags1: 0,
  };

  // Program headers: interpreter, dynamic segment, and the loads that map vaddrs to offsets.
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let dynOffset = -1;
  let dynSize = 0;
  const minPhent = is64 ? 56 : 32;
  if (phnum > 0 && phoff > 0) {
    if (phentsize < minPhent || phnum > MAX_PHDRS) {
      throw new UniproveError('E_ELF_UNSUPPORTED', {
        message: `${path} has malformed program headers (entry size ${phentsize}, count ${phnum})`,
        hint: 'The file is corrupt; copy it again.',
        details: { path },
      });
    }
    const ph = yield* read(phoff, phentsize * phnum, 'program headers');
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      const pType = u32(ph, o);
      const pOffset = is64 ? u64(ph, o + 8) : u32(ph, o + 4);
      const pVaddr = is64 ? u64(ph, o + 16) : u32(ph, o + 8);
      const pFilesz = is64 ? u64(ph, o + 32) : u32(ph, o + 16);
      if (pType === PT_LOAD) loads.push({ vaddr: pVaddr, offset: pOffset, filesz: pFilesz });
      else if (pType === PT_DYNAMIC) {
        dynOffset = pOffset;
        dynSize = pFilesz;
      } else if (pType === PT_INTERP) {
        const raw = yield* read(pOffset, Math.min(pFilesz, 4096), 'program interpreter (PT_INTERP)');
        const nul = raw.indexOf(0);
        info.interp = raw.subarray(0, nul === -1 ? raw.length : nul).toString('utf8');
      }
    }
  }

  // Without program headers (unusual), the section headers still name the dynamic section.
  let strtabFromSection: { offset: number; size: number } | undefined;
  if (dynOffset < 0 && shnum > 0 && shoff > 0 && shentsize >= (is64 ? 64 : 40) && shnum < MAX_PHDRS) {
    const sh = yield* read(shoff, shentsize * shnum, 'section headers');
    const section = (i: number) => {
      const o = i * shentsize;
      return {
        type: u32(sh, o + 4),
        offset: is64 ? u64(sh, o + 24) : u32(sh, o + 16),
        size: is64 ? u64(sh, o + 32) : u32(sh, o + 20),
        link: u32(sh, is64 ? o + 40 : o + 24),
      };
    };
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (s.type !== SHT_DYNAMIC) continue;
      dynOffset = s.offset;
      dynSize = s.size;
      if (s.link < shnum) {
        const str = section(s.link);
        strtabFromSection = { offset: str.offset, size: str.size };
      }
      break;
    }
  }

  if (dynOffset >= 0 && dynSize > 0) {
    info.dynamic = true;
    const entSize = is64 ? 16 : 8;
    const dyn = yield* read(dynOffset, Math.min(dynSize, MAX_DYNAMIC_BYTES), 'dynamic section');
    const entries: { tag: number; val: number }[] = [];
    let strtab = -1;
    let strsz = 0;
    for (let o = 0; o + entSize <= dyn.length; o += entSize) {
      const tag = sword(dyn, o);
      const val = sword(dyn, o + entSize / 2);
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtab = val;
      else if (tag === DT_STRSZ) strsz = val;
      else if (tag === DT_FLAGS_1) info.flags1 = val;
      else entries.push({ tag, val });
    }
    let strOffset = -1;
    if (strtab >= 0) {
      for (const load of loads) {
        if (strtab >= load.vaddr && strtab < load.vaddr + load.filesz) {
          strOffset = load.offset + (strtab - load.vaddr);
          if (strsz === 0) strsz = load.filesz - (strtab - load.vaddr);
          break;
        }
      }
    }
    if (strOffset < 0 && strtabFromSection) {
      strOffset = strtabFromSection.offset;
      strsz = strsz || strtabFromSection.size;
    }
    const wanted = entries.filter((e) => [DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH].includes(e.tag));
    if (wanted.length > 0) {
      if (strOffset < 0) {
        throw new UniproveError('E_ELF_UNSUPPORTED', {
          message: `${path} has a dynamic section whose string table (DT_STRTAB) is not in the file`,
          hint: 'The file is corrupt; copy it again.',
          details: { path },
        });
      }
      const strs = yield* read(strOffset, Math.min(strsz, MAX_STRTAB_BYTES), 'dynamic string table');
      const str = (off: number) => {
        if (off >= strs.length) throw truncated(path, 'dynamic string table', strOffset + off, 1, size);
        const end = strs.indexOf(0, off);
        return strs.subarray(off, end === -1 ? strs.length : end).toString('utf8');
      };
      for (const e of wanted) {
        if (e.tag === DT_NEEDED) info.needed.push(str(e.val));
        else if (e.tag === DT_SONAME) info.soname = str(e.val);
        else if (e.tag === DT_RPATH) info.rpath.push(...splitPath(str(e.val)));
        else if (e.tag === DT_RUNPATH) info.runpath.push(...splitPath(str(e.val)));
      }
    }
  }
  info.isPie = (info.flags1 & DF_1_PIE) !== 0 || (info.type === 'dyn' && info.interp !== undefined);
  return info;
}

function splitPath(value: string): string[] {
  return value.split(':');
}
