// Just enough of the ELF format to tell which architecture a program is for and whether it
// needs a dynamic loader (a binfmt_misc interpreter registered with the F flag must not).
import { open } from 'node:fs/promises';
import { archOfElf, type Endianness } from '../../common/arch.ts';

export interface ElfInfo {
  elfClass: 32 | 64;
  endianness: Endianness;
  /** e_type: 2 executable, 3 shared object / position-independent executable. */
  type: number;
  machine: number;
  /** Canonical architecture, when the arch table knows this machine. */
  arch?: string;
  /** The PT_INTERP path (dynamic loader), absent for static programs. */
  interpreter?: string;
}

const PT_INTERP = 3;

/** Parses an ELF header from the start of a file; undefined when it is not ELF. */
export function parseElf(
  buf: Buffer,
): (Omit<ElfInfo, 'interpreter'> & { phoff: number; phentsize: number; phnum: number }) | undefined {
  if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const cls = buf[4];
  const data = buf[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
  const elfClass = cls === 1 ? 32 : 64;
  const le = data === 1;
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const u64 = (o: number) => Number(le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o));
  if (elfClass === 64 && buf.length < 64) return undefined;
  const endianness: Endianness = le ? 'little' : 'big';
  const machine = u16(18);
  return {
    elfClass,
    endianness,
    type: u16(16),
    machine,
    arch: archOfElf({ machine, elfClass, endianness }),
    phoff: elfClass === 64 ? u64(32) : u32(28),
    phentsize: elfClass === 64 ? u16(54) : u16(42),
    phnum: elfClass === 64 ? u16(56) : u16(44),
  };
}

/** Reads a file's ELF header and program headers; undefined when it is not an ELF file. */
export async function readElf(file: string): Promise<ElfInfo | undefined> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await fh.read(head, 0, 64, 0);
    const h = parseElf(head.subarray(0, bytesRead));
    if (!h) return undefined;
    const { phoff, phentsize, phnum, ...rest } = h;
    const info: ElfInfo = rest;
    if (phnum === 0 || phentsize === 0 || phnum > 512) return info;
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    const le = info.endianness === 'little';
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      const type = le ? ph.readUInt32LE(o) : ph.readUInt32BE(o);
      if (type !== PT_INTERP) continue;
      const w = info.elfClass === 64;
      const read = (off: number) =>
        w
          ? Number(le ? ph.readBigUInt64LE(o + off) : ph.readBigUInt64BE(o + off))
          : le
            ? ph.readUInt32LE(o + off)
            : ph.readUInt32BE(o + off);
      const offset = read(w ? 8 : 4);
      const size = read(w ? 32 : 16);
      if (size <= 0 || size > 4096) break;
      const s = Buffer.alloc(size);
      await fh.read(s, 0, size, offset);
      info.interpreter = s.toString('utf8').replace(/\0.*$/s, '');
      break;
    }
    return info;
  } finally {
    await fh.close();
  }
}
