// The few facts the Linux bundler needs from an ELF file, read straight from its dynamic
// section instead of running `ldd` (which executes the file's loader and answers with
// whatever LD_LIBRARY_PATH happens to say). 64-bit little-endian only: the hosts we ship for.
import { readFileSync } from 'node:fs';

export interface ElfInfo {
  needed: string[]; // DT_NEEDED sonames, in order
  soname: string | null;
  rpath: string | null; // DT_RPATH
  runpath: string | null; // DT_RUNPATH
  interp: string | null; // PT_INTERP (null for static and static-pie programs)
  /** Symbol versions required per library, e.g. { 'libc.so.6': ['GLIBC_2.34', ...] }. */
  versionNeeds: Record<string, string[]>;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const DT_VERNEED = 0x6ffffffen;
const DT_VERNEEDNUM = 0x6fffffffn;

export function isElf(file: string): boolean {
  try {
    const b = readFileSync(file).subarray(0, 4);
    return b.length === 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
  } catch {
    return false;
  }
}

export function readElf(file: string): ElfInfo {
  const b = readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${file}: not a 64-bit little-endian ELF file`);

  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  const loads: Array<{ vaddr: bigint; offset: bigint; filesz: bigint }> = [];
  let dynamic: { offset: number; size: number } | null = null;
  let interp: string | null = null;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const type = b.readUInt32LE(o);
    const offset = b.readBigUInt64LE(o + 8);
    const vaddr = b.readBigUInt64LE(o + 16);
    const filesz = b.readBigUInt64LE(o + 32);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) dynamic = { offset: Number(offset), size: Number(filesz) };
    else if (type === PT_INTERP) interp = cstr(b, Number(offset));
  }
  const info: ElfInfo = { needed: [], soname: null, rpath: null, runpath: null, interp, versionNeeds: {} };
  if (!dynamic) return info;

  // Dynamic entries hold virtual addresses; map them back to file offsets through PT_LOAD.
  const fileOffset = (vaddr: bigint): number => {
    for (const l of loads) {
      if (vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz) return Number(vaddr - l.vaddr + l.offset);
    }
    throw new Error(`${file}: address 0x${vaddr.toString(16)} is outside every loaded segment`);
  };

  const entries: Array<[bigint, bigint]> = [];
  for (let o = dynamic.offset; o + 16 <= dynamic.offset + dynamic.size; o += 16) {
    const tag = b.readBigInt64LE(o);
    if (tag === DT_NULL) break;
    entries.push([tag, b.readBigUInt64LE(o + 8)]);
  }
  const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  if (strtabAddr === undefined) return info;
  const strtab = fileOffset(strtabAddr);
  const str = (v: bigint) => cstr(b, strtab + Number(v));

  for (const [tag, val] of entries) {
    if (tag === DT_NEEDED) info.needed.push(str(val));
    else if (tag === DT_SONAME) info.soname = str(val);
    else if (tag === DT_RPATH) info.rpath = str(val);
    else if (tag === DT_RUNPATH) info.runpath = str(val);
  }

  const verneed = entries.find(([t]) => t === DT_VERNEED)?.[1];
  const verneedNum = Number(entries.find(([t]) => t === DT_VERNEEDNUM)?.[1] ?? 0n);
  if (verneed !== undefined) {
    // Elf64_Verneed { u16 version, u16 cnt, u32 file, u32 aux, u32 next }
    // Elf64_Vernaux { u32 hash, u16 flags, u16 other, u32 name, u32 next }
    let vn = fileOffset(verneed);
    for (let i = 0; i < verneedNum; i++) {
      const cnt = b.readUInt16LE(vn + 2);
      const lib = str(BigInt(b.readUInt32LE(vn + 4)));
      const names: string[] = [];
      let aux = vn + b.readUInt32LE(vn + 8);
      for (let j = 0; j < cnt; j++) {
        names.push(str(BigInt(b.readUInt32LE(aux + 8))));
        aux += b.readUInt32LE(aux + 12);
      }
      info.versionNeeds[lib] = names;
      const next = b.readUInt32LE(vn + 12);
      if (next === 0) break;
      vn += next;
    }
  }
  return info;
}

function cstr(b: Buffer, offset: number): string {
  const end = b.indexOf(0, offset);
  return b.toString('utf8', offset, end < 0 ? b.length : end);
}
