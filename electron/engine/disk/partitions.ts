// Where the file systems are inside a raw image: the FAT boot partition and the ext root
// partition of an SD-card image (.wic, .img; MBR or GPT, read with partitioninfo), or a
// bare file system at offset 0 (a Yocto .ext4, a lone FAT boot image). The image is only
// ever opened read-only here.
import { open } from 'node:fs/promises';
import path from 'node:path';
import { FileDisk, withOpenFile } from 'file-disk';
import { getPartitions } from 'partitioninfo';

export type FsKind = 'fat' | 'ext' | 'other';

export interface PartitionInfo {
  /** Partition number as Linux counts it (p1, p2, …); 0 for a bare file system. */
  index: number;
  offset: number;
  size: number;
  fs: FsKind;
  /** MBR type byte or GPT type GUID; undefined for a bare file system. */
  type?: number | string;
}

export interface ImagePartitions {
  table: 'mbr' | 'gpt' | 'none';
  partitions: PartitionInfo[];
  /** The first FAT partition (a Pi's boot/firmware partition). */
  boot?: PartitionInfo;
  /** The ext partition holding the root file system (the largest ext one). */
  root?: PartitionInfo;
}

/** What file system starts at `offset`, by its magic numbers. */
export function fsKindOf(head: Buffer): FsKind {
  if (head.length >= 1082 && head.readUInt16LE(1080) === 0xef53) return 'ext';
  if (head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa) {
    const jump = head[0] === 0xeb || head[0] === 0xe9;
    const label16 = head.toString('latin1', 0x36, 0x3e);
    const label32 = head.toString('latin1', 0x52, 0x5a);
    const bytesPerSector = head.readUInt16LE(11);
    if (
      jump &&
      (label16.startsWith('FAT') || label32.startsWith('FAT32')) &&
      [512, 1024, 2048, 4096].includes(bytesPerSector)
    )
      return 'fat';
  }
  return 'other';
}

async function headAt(fh: Awaited<ReturnType<typeof open>>, offset: number): Promise<Buffer> {
  const b = Buffer.alloc(4096);
  const { bytesRead } = await fh.read(b, 0, b.length, offset);
  return b.subarray(0, bytesRead);
}

export async function findPartitions(image: string): Promise<ImagePartitions> {
  const fh = await open(image, 'r');
  let size: number;
  let first: Buffer;
  try {
    size = (await fh.stat()).size;
    first = await headAt(fh, 0);
  } finally {
    await fh.close();
  }
  // A bare file system first: a FAT boot sector also ends in 55 AA and would pass for an MBR.
  const bare = fsKindOf(first);
  if (bare !== 'other') {
    const p: PartitionInfo = { index: 0, offset: 0, size, fs: bare };
    return {
      table: 'none',
      partitions: [p],
      boot: bare === 'fat' ? p : undefined,
      root: bare === 'ext' ? p : undefined,
    };
  }
  let table: Awaited<ReturnType<typeof getPartitions>>;
  try {
    table = await withOpenFile(image, 'r', (h) =>
      getPartitions(new FileDisk(h, true, false, false), { includeExtended: false }),
    );
  } catch (e) {
    throw new Error(
      `${path.basename(image)} has no partition table and no file system Stacklab can edit (${(e as Error).message.split('\n')[0]})`,
    );
  }
  const partitions: PartitionInfo[] = [];
  const fh2 = await open(image, 'r');
  try {
    for (const p of table.partitions) {
      // Extended MBR containers (types 0x05, 0x0f, 0x85) hold logical partitions, not a file system.
      if (table.type === 'mbr' && [0x05, 0x0f, 0x85].includes(p.type as number)) continue;
      if (p.offset >= size)
        throw new Error(`${path.basename(image)} is truncated: partition ${p.index} starts past its end`);
      partitions.push({
        index: p.index,
        offset: p.offset,
        size: p.size,
        fs: fsKindOf(await headAt(fh2, p.offset)),
        type: p.type,
      });
    }
  } finally {
    await fh2.close();
  }
  const boot = partitions.find((p) => p.fs === 'fat');
  const root = partitions.filter((p) => p.fs === 'ext').sort((a, b) => b.size - a.size)[0];
  return { table: table.type, partitions, boot, root };
}
