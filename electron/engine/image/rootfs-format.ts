// What a root filesystem or disk image file holds and whether it is whole. A download that
// stopped early still has a valid header, so sizes recorded in the header are checked
// against the file's length: an ext4 superblock's block count, an MBR's partition ends, a
// GPT's last usable sector, a squashfs's bytes_used.
import { open, stat } from 'node:fs/promises';

export type RootfsKind =
  | 'ext'
  | 'mbr'
  | 'gpt'
  | 'qcow2'
  | 'squashfs'
  | 'erofs'
  | 'gzip'
  | 'zstd'
  | 'xz'
  | 'bzip2'
  | 'unknown';

export interface RootfsInfo {
  kind: RootfsKind;
  /** How QEMU should open it. */
  format: 'raw' | 'qcow2';
  sizeBytes: number;
  /** 1-based number of the first Linux partition of a partitioned (wic / SD card) image. */
  rootPartition?: number;
  /** Set when the file cannot be booted: the reason, in a few words. */
  problem?: string;
  /** Plain words: "an ext4 filesystem", "a partitioned disk image (MBR)". */
  description: string;
}

const MiB = 1024 * 1024;
function mib(n: number): string {
  return n >= 10 * MiB ? `${Math.round(n / MiB)} MiB` : `${n} bytes`;
}

export function inspectRootfsBytes(head: Buffer, sizeBytes: number): RootfsInfo {
  const base = { format: 'raw' as const, sizeBytes };
  if (sizeBytes === 0) return { ...base, kind: 'unknown', problem: 'is empty', description: 'an empty file' };

  if (head.length >= 32 && head.readUInt32BE(0) === 0x514649fb) {
    return { ...base, kind: 'qcow2', format: 'qcow2', description: 'a qcow2 disk image' };
  }
  if (head.length >= 4 && head.readUInt32BE(0) === 0x28b52ffd) return compressed(base, 'zstd');
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return compressed(base, 'xz');
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return compressed(base, 'bzip2');
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    return { ...base, kind: 'gzip', description: 'a gzip file (an initramfs, or a compressed image)' };
  }

  // ext2/3/4: superblock at 1024, magic 0xEF53 at 1024 + 56.
  if (head.length >= 1024 + 0x160 && head.readUInt16LE(1080) === 0xef53) {
    const sb = 1024;
    const logBlock = head.readUInt32LE(sb + 24);
    const blockSize = 1024 * 2 ** Math.min(logBlock, 6);
    const incompat = head.readUInt32LE(sb + 0x60);
    const is64 = (incompat & 0x80) !== 0;
    const blocks = head.readUInt32LE(sb + 4) + (is64 ? head.readUInt32LE(sb + 0x150) * 2 ** 32 : 0);
    const needed = blocks * blockSize;
    const compat = head.readUInt32LE(sb + 0x5c);
    const flavour = incompat & 0x40 ? 'ext4' : compat & 0x4 ? 'ext3' : 'ext2';
    const info: RootfsInfo = { ...base, kind: 'ext', description: `an ${flavour} filesystem` };
    if (needed > sizeBytes) {
      info.problem = `is truncated: its ${flavour} superblock says ${mib(needed)} but the file has ${mib(sizeBytes)}`;
    }
    return info;
  }

  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'hsqs') {
    const used = head.length >= 48 ? Number(head.readBigUInt64LE(40)) : 0;
    const info: RootfsInfo = { ...base, kind: 'squashfs', description: 'a squashfs filesystem' };
    if (used > sizeBytes)
      info.problem = `is truncated: squashfs says ${mib(used)} but the file has ${mib(sizeBytes)}`;
    return info;
  }
  if (head.length >= 1028 && head.readUInt32LE(1024) === 0xe0f5e1e2) {
    return { ...base, kind: 'erofs', description: 'an erofs filesystem' };
  }

  if (head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa) {
    const parts: Array<{ n: number; type: number; start: number; count: number }> = [];
    for (let i = 0; i < 4; i++) {
      const e = 446 + i * 16;
      const type = head[e + 4] ?? 0;
      const status = head[e] ?? 0;
      if (type === 0 || (status !== 0 && status !== 0x80)) continue;
      parts.push({ n: i + 1, type, start: head.readUInt32LE(e + 8), count: head.readUInt32LE(e + 12) });
    }
    if (parts.length > 0) {
      if (parts.some((p) => p.type === 0xee)) return gpt(head, base);
      const end = Math.max(...parts.map((p) => (p.start + p.count) * 512));
      const linux = parts.find((p) => p.type === 0x83);
      const info: RootfsInfo = {
        ...base,
        kind: 'mbr',
        rootPartition: linux?.n,
        description: 'a partitioned disk image (MBR)',
      };
      if (end > sizeBytes) {
        info.problem = `is truncated: its partition table ends at ${mib(end)} but the file has ${mib(sizeBytes)}`;
      }
      return info;
    }
  }
  return {
    ...base,
    kind: 'unknown',
    description: 'a file with no filesystem, partition table or qcow2 header Stacklab recognises',
  };
}

function gpt(head: Buffer, base: { format: 'raw'; sizeBytes: number }): RootfsInfo {
  const info: RootfsInfo = { ...base, kind: 'gpt', description: 'a partitioned disk image (GPT)' };
  if (head.length >= 512 + 0x38 && head.toString('latin1', 512, 520) === 'EFI PART') {
    const lastUsable = Number(head.readBigUInt64LE(512 + 0x30));
    const needed = (lastUsable + 1) * 512;
    if (needed > base.sizeBytes) {
      info.problem = `is truncated: its GPT describes ${mib(needed)} but the file has ${mib(base.sizeBytes)}`;
    }
    // Partition entries usually start at LBA 2; the root is the first Linux filesystem one.
    const entriesLba = Number(head.readBigUInt64LE(512 + 0x48));
    const esize = head.readUInt32LE(512 + 0x54);
    if (entriesLba === 2 && esize >= 128) {
      const linuxFs = Buffer.from('af3dc60f838472478e793d69d8477de4', 'hex');
      for (let i = 0; i < 8; i++) {
        const e = 1024 + i * esize;
        if (e + 16 > head.length) break;
        if (head.subarray(e, e + 16).equals(linuxFs)) {
          info.rootPartition = i + 1;
          break;
        }
      }
    }
  }
  return info;
}

function compressed(base: { format: 'raw'; sizeBytes: number }, kind: 'zstd' | 'xz' | 'bzip2'): RootfsInfo {
  return {
    ...base,
    kind,
    problem: `is ${kind}-compressed; QEMU needs it unpacked`,
    description: `a ${kind}-compressed file`,
  };
}

export async function inspectRootfs(file: string): Promise<RootfsInfo> {
  const st = await stat(file);
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(8192);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return inspectRootfsBytes(head.subarray(0, bytesRead), st.size);
  } finally {
    await fh.close();
  }
}
