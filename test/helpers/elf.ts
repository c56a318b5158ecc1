/** Build small but valid ELF images by hand, for classes, byte orders and machines gcc here cannot make. */

export interface ElfSpec {
  class: 32 | 64;
  endianness: 'little' | 'big';
  machine: number;
  /** e_type: 1 rel, 2 exec, 3 dyn, 4 core. */
  type?: number;
  interp?: string;
  needed?: string[];
  soname?: string;
  rpath?: string;
  runpath?: string;
}

/** An ELF file with program headers (PT_LOAD, PT_DYNAMIC, PT_INTERP) and a dynamic section. */
export function buildElf(spec: ElfSpec): Buffer {
  const is64 = spec.class === 64;
  const le = spec.endianness === 'little';
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const dynent = is64 ? 16 : 8;
  const base = 0x10000;

  const strings: string[] = [''];
  const strOffset = (s: string) => {
    let off = 0;
    for (const x of strings) {
      if (x === s) return off;
      off += Buffer.byteLength(x) + 1;
    }
    strings.push(s);
    return off;
  };
  const dyn: [number, number][] = [];
  for (const n of spec.needed ?? []) dyn.push([1, strOffset(n)]);
  if (spec.soname) dyn.push([14, strOffset(spec.soname)]);
  if (spec.rpath !== undefined) dyn.push([15, strOffset(spec.rpath)]);
  if (spec.runpath !== undefined) dyn.push([29, strOffset(spec.runpath)]);
  const strtab = Buffer.concat(strings.map((s) => Buffer.from(`${s}\0`)));

  const phnum = spec.interp ? 3 : 2;
  const interpOff = ehsize + phnum * phentsize;
  const interp = spec.interp ? Buffer.from(`${spec.interp}\0`) : Buffer.alloc(0);
  const strOff = interpOff + interp.length;
  const dynOff = Math.ceil((strOff + strtab.length) / 8) * 8;
  const dynSize = (dyn.length + 3) * dynent;
  const total = dynOff + dynSize;
  const buf = Buffer.alloc(total);

  const u16 = (o: number, v: number) => (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const u32 = (o: number, v: number) => (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const word = (o: number, v: number) =>
    is64 ? (le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o)) : u32(o, v);

  buf.write('\x7fELF', 0, 'latin1');
  buf[4] = is64 ? 2 : 1;
  buf[5] = le ? 1 : 2;
  buf[6] = 1;
  u16(16, spec.type ?? 3);
  u16(18, spec.machine);
  u32(20, 1);
  word(is64 ? 32 : 28, ehsize); // e_phoff
  u16(is64 ? 52 : 40, ehsize);
  u16(is64 ? 54 : 42, phentsize);
  u16(is64 ? 56 : 44, phnum);
  u16(is64 ? 58 : 46, is64 ? 64 : 40);

  const phdr = (i: number, type: number, offset: number, size: number) => {
    const o = ehsize + i * phentsize;
    u32(o, type);
    if (is64) {
      word(o + 8, offset);
      word(o + 16, base + offset);
      word(o + 24, base + offset);
      word(o + 32, size);
      word(o + 40, size);
    } else {
      u32(o + 4, offset);
      u32(o + 8, base + offset);
      u32(o + 12, base + offset);
      u32(o + 16, size);
      u32(o + 20, size);
    }
  };
  phdr(0, 1, 0, total);
  phdr(1, 2, dynOff, dynSize);
  if (spec.interp) phdr(2, 3, interpOff, interp.length);
  interp.copy(buf, interpOff);
  strtab.copy(buf, strOff);
  const entries: [number, number][] = [...dyn, [5, base + strOff], [10, strtab.length], [0, 0]];
  entries.forEach(([tag, val], i) => {
    word(dynOff + i * dynent, tag);
    word(dynOff + i * dynent + dynent / 2, val);
  });
  return buf;
}
