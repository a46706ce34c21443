// PVH kernels: finding the Xen PHYS32 entry note and compacting a vmlinux to what a loader
// reads. The ELF here is built byte by byte in the layout the kernel's linker script gives
// (a note inside a load segment, a load segment ending in .bss zeros).
import { describe, expect, it } from 'vitest';
import { compactElf, pvhEntry } from '../../electron/engine/image/pvh.ts';

function note(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(`${name}\0`);
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(n.length, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(type, 8);
  return Buffer.concat([head, pad(n), pad(desc)]);
}

/** An ELF64 with a text segment holding the notes, and a data segment whose tail is zeros. */
function vmlinux(entry: number | undefined): Buffer {
  const entryDesc = Buffer.alloc(4);
  entryDesc.writeUInt32LE(entry ?? 0);
  const notes = Buffer.concat([
    note('Xen', 6, Buffer.from('linux\0')),
    ...(entry === undefined ? [] : [note('Xen', 18, entryDesc)]),
    note('GNU', 3, Buffer.alloc(20, 7)),
  ]);
  const text = Buffer.concat([Buffer.alloc(256, 0x90), notes, Buffer.alloc(64, 0xcc)]);
  const data = Buffer.concat([Buffer.alloc(100, 0xab), Buffer.alloc(5000)]);
  const file = Buffer.alloc(0x3000 + data.length);
  file.writeUInt32BE(0x7f454c46, 0);
  file[4] = 2;
  file[5] = 1;
  file[6] = 1;
  file.writeUInt16LE(2, 0x10);
  file.writeUInt16LE(62, 0x12);
  file.writeBigUInt64LE(0x1000000n, 0x18);
  file.writeBigUInt64LE(64n, 0x20);
  file.writeBigUInt64LE(0x2ff0n, 0x28); // section headers: dropped by compaction
  file.writeUInt16LE(56, 0x36);
  file.writeUInt16LE(3, 0x38);
  const ph = (i: number, type: number, off: number, vaddr: bigint, filesz: number, memsz: number) => {
    const p = 64 + i * 56;
    file.writeUInt32LE(type, p);
    file.writeUInt32LE(5, p + 4);
    file.writeBigUInt64LE(BigInt(off), p + 8);
    file.writeBigUInt64LE(vaddr, p + 16);
    file.writeBigUInt64LE(vaddr & 0xffffffffn, p + 24);
    file.writeBigUInt64LE(BigInt(filesz), p + 32);
    file.writeBigUInt64LE(BigInt(memsz), p + 40);
    file.writeBigUInt64LE(0x200000n, p + 48);
  };
  ph(0, 1, 0x1000, 0xffffffff81000000n, text.length, text.length);
  ph(1, 1, 0x3000, 0xffffffff82000000n, data.length, data.length + 8192);
  ph(2, 4, 0x1000 + 256, 0xffffffff81000100n, notes.length, notes.length);
  text.copy(file, 0x1000);
  data.copy(file, 0x3000);
  return file;
}

describe('PVH kernels', () => {
  it('finds the PHYS32 entry note, and nothing in kernels or files without one', () => {
    expect(pvhEntry(vmlinux(0x1000850))).toBe(0x1000850);
    expect(pvhEntry(vmlinux(undefined))).toBeUndefined();
    expect(pvhEntry(Buffer.from('MZ not an ELF file at all, just a PE header'))).toBeUndefined();
  });

  it('keeps every loadable byte and the notes, drops trailing zeros and section headers', () => {
    const src = vmlinux(0x1000850);
    const out = compactElf(src);
    expect(out.length).toBeLessThan(src.length);
    expect(out.readBigUInt64LE(0x28)).toBe(0n); // no section headers
    expect(out.readUInt16LE(0x3c)).toBe(0);
    expect(pvhEntry(out)).toBe(0x1000850);
    const phs = [0, 1, 2].map((i) => {
      const p = 64 + i * 56;
      return {
        type: out.readUInt32LE(p),
        offset: Number(out.readBigUInt64LE(p + 8)),
        vaddr: out.readBigUInt64LE(p + 16),
        filesz: Number(out.readBigUInt64LE(p + 32)),
        memsz: Number(out.readBigUInt64LE(p + 40)),
      };
    });
    // The data segment keeps its 100 non-zero bytes and its full size in memory.
    expect(phs[1]).toMatchObject({ type: 1, filesz: 100, memsz: 5100 + 8192 });
    expect(out.subarray(phs[1]!.offset, phs[1]!.offset + 100).every((b) => b === 0xab)).toBe(true);
    // Text is copied whole, at an offset congruent to its address modulo the page size.
    expect(out.subarray(phs[0]!.offset, phs[0]!.offset + phs[0]!.filesz)).toEqual(
      src.subarray(0x1000, 0x1000 + phs[0]!.filesz),
    );
    for (const p of phs) expect(p.offset % 4096).toBe(Number(p.vaddr % 4096n));
    // Compacting again changes nothing.
    expect(compactElf(out)).toEqual(out);
  });

  it('refuses what is not a 64-bit ELF with one line', () => {
    expect(() => compactElf(Buffer.alloc(100))).toThrow(/^not a 64-bit little-endian ELF file$/);
  });
});
