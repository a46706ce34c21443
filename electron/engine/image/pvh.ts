// PVH boot for x86-64 guests: QEMU loads an uncompressed vmlinux ELF that carries the
// Xen PVH entry note straight into memory and jumps to it in 32-bit mode. That skips the
// firmware's bzImage loader, real-mode setup and the kernel's own decompressor — work that
// costs ~30 s when the x86 QEMU itself runs emulated (a nested guest; measured in
// docs/ARCHITECTURE.md). Yocto deploys the ELF as vmlinux-<MACHINE>.bin when
// KERNEL_IMAGETYPES holds "vmlinux".
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const PT_LOAD = 1;
const PT_NOTE = 4;
/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry point PVH loaders jump to. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

interface Phdr {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: bigint;
  align: bigint;
}

function isElf64Le(b: Buffer): boolean {
  return b.length >= 64 && b.readUInt32BE(0) === 0x7f454c46 && b[4] === 2 && b[5] === 1;
}

function phdrs(b: Buffer): Phdr[] {
  const off = Number(b.readBigUInt64LE(0x20));
  const size = b.readUInt16LE(0x36);
  const count = b.readUInt16LE(0x38);
  if (off + size * count > b.length) throw new Error('the ELF program headers run past the end of the file');
  const out: Phdr[] = [];
  for (let i = 0; i < count; i++) {
    const p = off + i * size;
    out.push({
      type: b.readUInt32LE(p),
      flags: b.readUInt32LE(p + 4),
      offset: Number(b.readBigUInt64LE(p + 8)),
      vaddr: b.readBigUInt64LE(p + 16),
      paddr: b.readBigUInt64LE(p + 24),
      filesz: Number(b.readBigUInt64LE(p + 32)),
      memsz: b.readBigUInt64LE(p + 40),
      align: b.readBigUInt64LE(p + 48),
    });
  }
  return out;
}

/** The PVH entry address of a vmlinux ELF, or undefined when it has none (or is no ELF64). */
export function pvhEntry(elf: Buffer): number | undefined {
  if (!isElf64Le(elf)) return undefined;
  for (const ph of phdrs(elf)) {
    if (ph.type !== PT_NOTE) continue;
    let p = ph.offset;
    const end = Math.min(ph.offset + ph.filesz, elf.length);
    while (p + 12 <= end) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const type = elf.readUInt32LE(p + 8);
      const name = elf
        .subarray(p + 12, p + 12 + namesz)
        .toString('latin1')
        .replace(/\0+$/, '');
      const desc = p + 12 + ((namesz + 3) & ~3);
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY && descsz >= 4) return elf.readUInt32LE(desc);
      p = desc + ((descsz + 3) & ~3);
    }
  }
  return undefined;
}

/**
 * The same kernel with only what a loader reads: program headers and segment bytes, each
 * load segment without its trailing zeros (the loader zero-fills up to memsz anyway; in a
 * Debian vmlinux that is .bss and the init scratch area). 62 MB becomes 35 MB, which
 * matters when it has to fit in the parent guest's root file system.
 */
export function compactElf(elf: Buffer): Buffer {
  if (!isElf64Le(elf)) throw new Error('not a 64-bit little-endian ELF file');
  const keep = phdrs(elf).filter((p) => p.type === PT_LOAD || p.type === PT_NOTE);
  const headerSize = 64 + keep.length * 56;
  let at = Math.ceil(headerSize / 4096) * 4096;
  const placed = keep.map((ph) => {
    let data = elf.subarray(ph.offset, ph.offset + ph.filesz);
    if (ph.type === PT_LOAD) {
      let n = data.length;
      while (n > 0 && data[n - 1] === 0) n--;
      data = data.subarray(0, n);
    }
    // Offsets stay congruent to addresses modulo the page size, as the ELF spec asks.
    const page = Number(ph.vaddr % 4096n);
    at = Math.ceil((at - page) / 4096) * 4096 + page;
    const offset = at;
    at += data.length;
    return { ph, data, offset };
  });
  const out = Buffer.alloc(at);
  elf.copy(out, 0, 0, 64);
  out.writeBigUInt64LE(64n, 0x20); // e_phoff
  out.writeBigUInt64LE(0n, 0x28); // e_shoff: no section headers
  out.writeUInt16LE(56, 0x36);
  out.writeUInt16LE(keep.length, 0x38);
  out.writeUInt16LE(0, 0x3a); // e_shentsize
  out.writeUInt16LE(0, 0x3c); // e_shnum
  out.writeUInt16LE(0, 0x3e); // e_shstrndx
  placed.forEach(({ ph, data, offset }, i) => {
    const p = 64 + i * 56;
    out.writeUInt32LE(ph.type, p);
    out.writeUInt32LE(ph.flags, p + 4);
    out.writeBigUInt64LE(BigInt(offset), p + 8);
    out.writeBigUInt64LE(ph.vaddr, p + 16);
    out.writeBigUInt64LE(ph.paddr, p + 24);
    out.writeBigUInt64LE(BigInt(data.length), p + 32);
    out.writeBigUInt64LE(ph.type === PT_LOAD ? ph.memsz : BigInt(data.length), p + 40);
    out.writeBigUInt64LE(ph.type === PT_LOAD ? 4096n : ph.align, p + 48);
    data.copy(out, offset);
  });
  return out;
}

/** The deploy dir's PVH-capable vmlinux for an x86-64 machine, as Yocto names it. */
export function findPvhKernel(deployDir: string, machine: string): string | undefined {
  for (const name of [`vmlinux-${machine}.bin`, 'vmlinux']) {
    const f = path.join(deployDir, name);
    if (!existsSync(f)) continue;
    try {
      const head = readFileSync(f);
      if (pvhEntry(head) !== undefined) return f;
    } catch {
      // unreadable: boot the regular kernel instead
    }
  }
  return undefined;
}
