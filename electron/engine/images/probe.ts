// Reading what an image is from its bytes: kernel architecture from the boot headers,
// qcow2 headers, and the partition table with its FAT boot partition (via balena's
// partitioninfo and balena-image-fs, opened read-only).
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { interact } from 'balena-image-fs';
import { FileDisk, withOpenFile } from 'file-disk';
import { getPartitions } from 'partitioninfo';

export type Arch = 'aarch64' | 'x86_64' | 'x86' | 'arm' | 'riscv64';

export interface KernelInfo {
  arch: Arch;
  format: 'arm64-image' | 'bzimage' | 'zimage' | 'riscv-image' | 'elf';
  gzipped: boolean;
}

const ELF_MACHINES: Record<number, Arch> = {
  3: 'x86',
  40: 'arm',
  62: 'x86_64',
  183: 'aarch64',
  243: 'riscv64',
};

/** Architecture of a kernel image from its header, or null if it is no kernel we know. */
export function kernelArch(head: Buffer): KernelInfo | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // Image.gz (Raspberry Pi OS ships kernel8.img gzipped; QEMU unpacks it): look inside.
    let inner: Buffer;
    try {
      inner = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch {
      return null;
    }
    const k = kernelArch(inner.subarray(0, 4096));
    return k ? { ...k, gzipped: true } : null;
  }
  if (head.length >= 0x40 && head.readUInt32LE(0x38) === 0x644d5241)
    return { arch: 'aarch64', format: 'arm64-image', gzipped: false };
  if (
    head.length >= 0x40 &&
    head.toString('latin1', 0x30, 0x35) === 'RISCV' &&
    head.toString('latin1', 0x38, 0x3c) === 'RSC\x05'
  )
    return { arch: 'riscv64', format: 'riscv-image', gzipped: false };
  if (head.length >= 0x240 && head.toString('latin1', 0x202, 0x206) === 'HdrS') {
    // Boot protocol >= 2.12: xloadflags bit 0 says the kernel has a 64-bit entry point.
    const version = head.readUInt16LE(0x206);
    const is64 = version >= 0x020c && (head.readUInt16LE(0x236) & 1) === 1;
    return { arch: is64 ? 'x86_64' : 'x86', format: 'bzimage', gzipped: false };
  }
  if (head.length >= 0x28 && head.readUInt32LE(0x24) === 0x016f2818)
    return { arch: 'arm', format: 'zimage', gzipped: false };
  if (head.length >= 0x14 && head.readUInt32BE(0) === 0x7f454c46) {
    const le = head[5] !== 2;
    const machine = le ? head.readUInt16LE(0x12) : head.readUInt16BE(0x12);
    const arch = ELF_MACHINES[machine];
    return arch ? { arch, format: 'elf', gzipped: false } : null;
  }
  return null;
}

export async function readHead(file: string, bytes = 64 * 1024): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export interface Qcow2Info {
  version: number;
  virtualSize: number;
  backingFile?: string;
}

/** The qcow2 header (QEMU docs/interop/qcow2.txt): magic, version, backing file, size. */
export function qcow2Header(head: Buffer): Qcow2Info | null {
  if (head.length < 32 || head.readUInt32BE(0) !== 0x514649fb) return null;
  const version = head.readUInt32BE(4);
  const backingOffset = Number(head.readBigUInt64BE(8));
  const backingSize = head.readUInt32BE(16);
  const virtualSize = Number(head.readBigUInt64BE(24));
  let backingFile: string | undefined;
  if (backingOffset > 0 && backingSize > 0) {
    backingFile =
      backingOffset + backingSize <= head.length
        ? head.toString('utf8', backingOffset, backingOffset + backingSize)
        : '(unreadable name)';
  }
  return { version, virtualSize, backingFile };
}

export function isExtFs(head: Buffer): boolean {
  return head.length >= 1082 && head.readUInt16LE(1080) === 0xef53;
}

export function isFdt(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === 0xd00dfeed;
}

export interface PartitionInfo {
  index: number;
  offset: number;
  size: number;
  type: string; // MBR: hex byte; GPT: type GUID
  fat: boolean;
}

const FAT_MBR = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e, 0xef]);
const FAT_GPT = new Set(['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7']);

export async function partitions(
  file: string,
): Promise<{ table: 'mbr' | 'gpt'; partitions: PartitionInfo[] } | null> {
  return withOpenFile(file, 'r', async (h) => {
    const disk = new FileDisk(h, true, false, false);
    let r: Awaited<ReturnType<typeof getPartitions>>;
    try {
      r = await getPartitions(disk, { includeExtended: false, getLogical: true });
    } catch {
      return null;
    }
    if (r.partitions.length === 0) return null;
    return {
      table: r.type,
      partitions: r.partitions.map((p) => {
        const type =
          typeof p.type === 'number' ? `0x${p.type.toString(16).padStart(2, '0')}` : p.type.toUpperCase();
        const fat = typeof p.type === 'number' ? FAT_MBR.has(p.type) : FAT_GPT.has(type);
        return { index: p.index, offset: p.offset, size: p.size, type, fat };
      }),
    };
  });
}

export interface FatView {
  /** Top-level file names. */
  names: string[];
  read(name: string): Promise<Buffer>;
}

type FatFs = {
  readdir(p: string, cb: (e: Error | null, names?: string[]) => void): void;
  readFile(p: string, cb: (e: Error | null, data?: Buffer) => void): void;
};

/** Runs fn with a read-only view of the FAT filesystem in partition `index`. */
export async function withFat<T>(file: string, index: number, fn: (fat: FatView) => Promise<T>): Promise<T> {
  return withOpenFile(file, 'r', async (h) => {
    const disk = new FileDisk(h, true, false, false);
    return interact(disk, index, async (fsLike) => {
      const fat = fsLike as unknown as FatFs;
      const readdir = promisify(fat.readdir.bind(fat));
      const readFile = promisify(fat.readFile.bind(fat));
      const real = ((await readdir('/')) ?? []) as string[];
      // fatfs ignores the case flags mkfs/mcopy/Windows set on 8.3 entries, so KERNEL8.IMG
      // is shown the way Linux and the Pi firmware see it: kernel8.img.
      const shown = new Map(
        real.map((n) => [/^[A-Z0-9_~-]{1,8}(\.[A-Z0-9_~-]{1,3})?$/.test(n) ? n.toLowerCase() : n, n]),
      );
      return fn({
        names: [...shown.keys()],
        read: async (name) => (await readFile(`/${shown.get(name) ?? name}`)) as Buffer,
      });
    });
  });
}
