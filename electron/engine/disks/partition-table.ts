// Growing the last partition of a raw disk image to the end of the disk, by rewriting its
// entry in the partition table: an MBR (a Pi SD card, a .wic) or a GPT, whose backup
// header and entries then move to the new end and whose CRCs are recomputed. Written here
// rather than run through sfdisk/growpart so it works wherever the app does (those are
// Linux tools), and it is a few fixed-offset fields. Only the last partition can grow:
// anything after it would be overwritten. Sectors are 512 bytes (what .wic and SD images use).
import { type FileHandle, open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

const SECTOR = 512;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

export interface GrownPartition {
  table: 'mbr' | 'gpt';
  /** Partition number as Linux counts it (p1, p2, …). */
  index: number;
  offset: number;
  /** Its size before and after, in bytes. */
  oldBytes: number;
  newBytes: number;
}

async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  const { bytesRead } = await fh.read(b, 0, len, pos);
  if (bytesRead < len) throw new Error('the disk image ends inside its partition table');
  return b;
}

async function writeAt(fh: FileHandle, pos: number, b: Buffer): Promise<void> {
  await fh.write(b, 0, b.length, pos);
}

/** CHS of an LBA in the usual 255-head, 63-sector geometry; past its range, the "use LBA" marker. */
function chs(lba: number): [number, number, number] {
  const c = Math.floor(lba / (255 * 63));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / 63) % 255;
  const s = (lba % 63) + 1;
  return [h, s | ((c >> 2) & 0xc0), c & 0xff];
}

/**
 * Extends the partition that starts at `offset` to the end of `file`, whose size must
 * already be the new disk size. Returns what changed; throws one line if it cannot.
 */
export async function growPartitionToEnd(file: string, offset: number): Promise<GrownPartition> {
  const fh = await open(file, 'r+');
  try {
    const diskBytes = (await fh.stat()).size;
    const mbr = await readAt(fh, 0, SECTOR);
    if (mbr.readUInt16LE(510) !== 0xaa55)
      throw new Error('the disk image has no partition table (no MBR signature)');
    const lba1 = await readAt(fh, SECTOR, SECTOR);
    if (lba1.toString('latin1', 0, 8) === 'EFI PART') return await growGpt(fh, mbr, lba1, offset, diskBytes);
    return await growMbr(fh, mbr, offset, diskBytes);
  } finally {
    await fh.close();
  }
}

async function growMbr(
  fh: FileHandle,
  mbr: Buffer,
  offset: number,
  diskBytes: number,
): Promise<GrownPartition> {
  const entries = [0, 1, 2, 3].map((i) => {
    const at = 446 + 16 * i;
    return { i, at, type: mbr[at + 4]!, start: mbr.readUInt32LE(at + 8), size: mbr.readUInt32LE(at + 12) };
  });
  const mine = entries.find((e) => e.type !== 0 && e.start * SECTOR === offset);
  if (!mine)
    throw new Error('the root file system is not in a primary MBR partition (a logical one cannot be grown)');
  if (EXTENDED.has(mine.type)) throw new Error('the partition to grow is an extended-partition container');
  const later = entries.find((e) => e.type !== 0 && e !== mine && e.start > mine.start);
  if (later)
    throw new Error(
      `partition ${later.i + 1} comes after the root partition ${mine.i + 1}, so the root cannot grow into the new space`,
    );
  const totalSectors = Math.floor(diskBytes / SECTOR);
  const newSize = totalSectors - mine.start;
  if (newSize > 0xffffffff) throw new Error('an MBR partition cannot reach past 2 TiB; use a smaller size');
  if (newSize < mine.size) throw new Error('the new disk size is smaller than the root partition');
  mbr.writeUInt32LE(newSize, mine.at + 12);
  Buffer.from(chs(mine.start + newSize - 1)).copy(mbr, mine.at + 5);
  await writeAt(fh, 0, mbr);
  return {
    table: 'mbr',
    index: mine.i + 1,
    offset,
    oldBytes: mine.size * SECTOR,
    newBytes: newSize * SECTOR,
  };
}

function headerCrc(h: Buffer, size: number): number {
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  return crc32(copy);
}

async function growGpt(
  fh: FileHandle,
  mbr: Buffer,
  header: Buffer,
  offset: number,
  diskBytes: number,
): Promise<GrownPartition> {
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR)
    throw new Error(`the GPT header size ${headerSize} is not valid`);
  if (headerCrc(header, headerSize) !== header.readUInt32LE(16))
    throw new Error('the GPT header is damaged (bad CRC); repair the image first');
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entrySize < 128 || count === 0 || count * entrySize > 1 << 20)
    throw new Error('the GPT partition array has an unexpected shape');
  const arrayBytes = count * entrySize;
  const entries = await readAt(fh, entriesLba * SECTOR, arrayBytes);
  if (crc32(entries) !== header.readUInt32LE(88))
    throw new Error('the GPT partition array is damaged (bad CRC); repair the image first');

  const used: Array<{ slot: number; first: bigint; last: bigint }> = [];
  for (let slot = 0; slot < count; slot++) {
    const at = slot * entrySize;
    if (entries.subarray(at, at + 16).every((b) => b === 0)) continue; // empty slot
    used.push({ slot, first: entries.readBigUInt64LE(at + 32), last: entries.readBigUInt64LE(at + 40) });
  }
  const mine = used.find((e) => Number(e.first) * SECTOR === offset);
  if (!mine) throw new Error('the root file system does not start at a GPT partition');
  const later = used.find((e) => e !== mine && e.first > mine.first);
  if (later)
    throw new Error(
      `partition ${later.slot + 1} comes after the root partition ${mine.slot + 1}, so the root cannot grow into the new space`,
    );

  // The backup array and header sit at the very end of the disk: move them there.
  const totalSectors = BigInt(Math.floor(diskBytes / SECTOR));
  const arraySectors = BigInt(Math.ceil(arrayBytes / SECTOR));
  const backupHeaderLba = totalSectors - 1n;
  const backupEntriesLba = backupHeaderLba - arraySectors;
  const lastUsable = backupEntriesLba - 1n;
  if (lastUsable < mine.last) throw new Error('the new disk size is smaller than the root partition');
  entries.writeBigUInt64LE(lastUsable, mine.slot * entrySize + 40);
  const entriesCrc = crc32(entries);

  const primary = Buffer.from(header);
  primary.writeBigUInt64LE(backupHeaderLba, 32); // alternate LBA
  primary.writeBigUInt64LE(lastUsable, 48);
  primary.writeUInt32LE(entriesCrc, 88);
  primary.writeUInt32LE(headerCrc(primary, headerSize), 16);

  const backup = Buffer.from(primary);
  backup.writeBigUInt64LE(backupHeaderLba, 24); // my LBA
  backup.writeBigUInt64LE(1n, 32);
  backup.writeBigUInt64LE(backupEntriesLba, 72);
  backup.writeUInt32LE(headerCrc(backup, headerSize), 16);

  // The protective MBR covers the whole disk (capped at what 32 bits can say).
  const pmbr = [0, 1, 2, 3].map((i) => 446 + 16 * i).find((at) => mbr[at + 4] === 0xee);
  if (pmbr !== undefined) {
    const size = Math.min(Number(totalSectors) - 1, 0xffffffff);
    mbr.writeUInt32LE(size, pmbr + 12);
    Buffer.from(chs(Math.min(Number(totalSectors) - 1, 0xffffffff))).copy(mbr, pmbr + 5);
  }

  await writeAt(fh, Number(backupEntriesLba) * SECTOR, entries);
  await writeAt(fh, Number(backupHeaderLba) * SECTOR, backup);
  await writeAt(fh, entriesLba * SECTOR, entries);
  await writeAt(fh, SECTOR, primary);
  if (pmbr !== undefined) await writeAt(fh, 0, mbr);
  return {
    table: 'gpt',
    index: mine.slot + 1,
    offset,
    oldBytes: Number(mine.last - mine.first + 1n) * SECTOR,
    newBytes: Number(lastUsable - mine.first + 1n) * SECTOR,
  };
}
