/** Go programs, told by their ELF notes: they leave through exit_group, so no exit handler or destructor runs. */
import { open } from 'node:fs/promises';

const PT_NOTE = 4;

/** True when the ELF file carries Go's build-id note: Go's os.Exit leaves through exit_group, not exit(3). */
export async function isGoProgram(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      if (ph.readUInt32LE(at) !== PT_NOTE) continue;
      const offset = Number(ph.readBigUInt64LE(at + 8));
      const size = Math.min(Number(ph.readBigUInt64LE(at + 32)), 64 * 1024);
      const align = Number(ph.readBigUInt64LE(at + 48)) === 8 ? 8 : 4;
      const pad = (n: number) => Math.ceil(n / align) * align;
      const notes = Buffer.alloc(size);
      await fh.read(notes, 0, size, offset);
      for (let p = 0; p + 12 <= size; ) {
        const namesz = notes.readUInt32LE(p);
        const descsz = notes.readUInt32LE(p + 4);
        const name = notes.subarray(p + 12, p + 12 + namesz).toString('latin1');
        if (name.replace(/\0+$/, '') === 'Go') return true;
        p += pad(12 + namesz) + pad(descsz);
      }
    }
    return false;
  } finally {
    await fh.close();
  }
}
