// Reading and writing files on a FAT partition inside an image file (a Pi's boot
// partition) with balena-image-fs/fatfs: pure JavaScript, no mount, no mtools. fatfs has
// two habits this wrapper corrects: it updates only the first FAT copy (fsck then reports
// "FATs differ"), so the first copy is mirrored into the others afterwards; and an empty
// file keeps a cluster, so writeText refuses empty content (give a comment line instead).
import { open } from 'node:fs/promises';
import { interact } from 'balena-image-fs';
import { FileDisk, withOpenFile } from 'file-disk';
import type { PartitionInfo } from './partitions.ts';
import { quietWasmHandlers } from './quiet-wasm.ts';

// balena-image-fs loads ext2fs too.
quietWasmHandlers();

export interface FatFs {
  /** The file's text, or undefined when it does not exist. Names are case-insensitive. */
  readText(p: string): Promise<string | undefined>;
  writeText(p: string, text: string): Promise<void>;
  exists(p: string): Promise<boolean>;
  readdir(p: string): Promise<string[]>;
}

// The slice of fatfs's promise API used here.
interface RawFat {
  readFile(p: string, o: { encoding: string }): Promise<string>;
  writeFile(p: string, data: Buffer): Promise<void>;
  stat(p: string): Promise<unknown>;
  readdir(p: string): Promise<string[]>;
}

const isMissing = (e: unknown) => ['NOENT', 'ENOENT'].includes((e as { code?: string }).code ?? '');

function api(raw: RawFat): FatFs {
  return {
    async readText(p) {
      try {
        return await raw.readFile(p, { encoding: 'utf8' });
      } catch (e) {
        if (isMissing(e)) return undefined;
        throw new Error(`cannot read ${p} on the boot partition: ${(e as Error).message}`);
      }
    },
    async writeText(p, text) {
      if (text.length === 0)
        throw new Error(`refusing to write ${p} empty (fatfs leaves a cluster on empty files)`);
      try {
        await raw.writeFile(p, Buffer.from(text, 'utf8'));
      } catch (e) {
        throw new Error(`cannot write ${p} on the boot partition: ${(e as Error).message}`);
      }
    },
    async exists(p) {
      try {
        await raw.stat(p);
        return true;
      } catch (e) {
        if (isMissing(e)) return false;
        throw e;
      }
    },
    async readdir(p) {
      return raw.readdir(p);
    },
  };
}

/** Runs `fn` on the FAT file system of `part`; with write: false the image is opened read-only. */
export async function withFat<T>(
  image: string,
  part: PartitionInfo,
  opts: { write: boolean },
  fn: (fs: FatFs) => Promise<T>,
): Promise<T> {
  const result = await withOpenFile(image, opts.write ? 'r+' : 'r', async (handle) => {
    const disk = new FileDisk(handle, !opts.write, !opts.write, false);
    return interact(disk, part.index === 0 ? undefined : part.index, async (fs) => {
      const raw = (fs as unknown as { promises: RawFat }).promises;
      return fn(api(raw));
    });
  });
  if (opts.write) await mirrorFats(image, part.offset);
  return result;
}

/** Copies FAT #1 over the other copies, as every FAT driver keeps them identical. */
export async function mirrorFats(image: string, offset: number): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    const bpb = Buffer.alloc(512);
    await fh.read(bpb, 0, 512, offset);
    const bytesPerSector = bpb.readUInt16LE(11);
    const reserved = bpb.readUInt16LE(14);
    const copies = bpb[16]!;
    const fatSectors = bpb.readUInt16LE(22) || bpb.readUInt32LE(36);
    if (![512, 1024, 2048, 4096].includes(bytesPerSector) || copies < 2 || fatSectors === 0) return;
    const size = fatSectors * bytesPerSector;
    const first = Buffer.alloc(size);
    const start = offset + reserved * bytesPerSector;
    await fh.read(first, 0, size, start);
    for (let i = 1; i < copies; i++) await fh.write(first, 0, size, start + i * size);
  } finally {
    await fh.close();
  }
}
