// Disk images from a staged directory tree, all without root: ext4 with `mke2fs -d`, the
// same tree as tar.bz2, and a Raspberry Pi style .wic (MBR, FAT32 boot + ext4 root)
// assembled from partition images with sfdisk and dd on a plain file.
import { closeSync, lstatSync, openSync, readdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { isRoot, run } from './exec.ts';
import { tool } from './tools.ts';

const MiB = 1024 * 1024;

/** Bytes a tree takes on a 4 KiB-block file system, counting one block per inode for metadata. */
export function treeBytes(root: string): number {
  let total = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      const st = lstatSync(abs);
      total += 4096 + Math.ceil(st.size / 4096) * 4096;
      if (e.isDirectory()) walk(abs);
    }
  };
  walk(root);
  return total;
}

/** mke2fs's -d copies the owners it sees; run it under fakeroot when we are not root so every file is root's. */
async function asRoot(cmd: string, args: string[]): Promise<void> {
  if (isRoot()) await run(cmd, args);
  else await run(tool('fakeroot'), ['--', cmd, ...args]);
}

export interface Ext4Options {
  label: string;
  uuid: string;
  /** Free space wanted in the finished file system. */
  freeMiB: number;
}

/**
 * An ext4 image of `tree` with at least `freeMiB` free. The size is estimated, then checked
 * with dumpe2fs and grown if the estimate fell short (journal and inode tables vary).
 */
export async function makeExt4(tree: string, out: string, o: Ext4Options): Promise<number> {
  let sizeMiB = Math.ceil((treeBytes(tree) * 1.1) / MiB) + o.freeMiB + 8;
  for (let attempt = 0; attempt < 4; attempt++) {
    await run('rm', ['-f', out]);
    await asRoot(tool('mke2fs'), [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      '-L',
      o.label,
      '-U',
      o.uuid,
      '-E',
      'root_owner=0:0',
      '-d',
      tree,
      out,
      `${sizeMiB}M`,
    ]);
    const free = await ext4FreeBytes(out);
    if (free >= o.freeMiB * MiB) return sizeMiB;
    sizeMiB += Math.ceil((o.freeMiB * MiB - free) / MiB) + 4;
  }
  throw new Error(`could not size the ext4 image for ${tree}`);
}

export async function ext4FreeBytes(img: string): Promise<number> {
  const { stdout } = await run(tool('dumpe2fs'), ['-h', img]);
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(stdout)?.[1] ?? Number.NaN);
  return field('Free blocks') * field('Block size');
}

/** The same tree as a tar.bz2 of root-owned files, like Yocto's rootfs tarball. */
export async function makeTarBz2(tree: string, out: string): Promise<void> {
  await run(tool('tar'), [
    '--create',
    '--bzip2',
    '--file',
    out,
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--sort=name',
    '--directory',
    tree,
    '.',
  ]);
}

export interface WicLayout {
  bootStartMiB: number;
  bootMiB: number;
  rootStartMiB: number;
  rootMiB: number;
  totalBytes: number;
}

/** Partition layout: boot at 4 MiB, root right after it on a 4 MiB boundary (as meta-raspberrypi's wks does). */
export function wicLayout(bootMiB: number, rootImageBytes: number): WicLayout {
  const align = 4;
  const bootStartMiB = 4;
  const rootStartMiB = Math.ceil((bootStartMiB + bootMiB) / align) * align;
  const rootMiB = Math.ceil(rootImageBytes / MiB);
  let totalBytes = (rootStartMiB + rootMiB) * MiB;
  // Real SD card images are rarely a power of two; keep it that way so the engine's padding is exercised.
  if ((totalBytes & (totalBytes - 1)) === 0) totalBytes += MiB;
  return { bootStartMiB, bootMiB, rootStartMiB, rootMiB, totalBytes };
}

/** A FAT32 partition image labelled `boot` holding `files` at its top level. */
export async function makeBootVfat(out: string, sizeMiB: number, files: readonly string[], volid: string) {
  await run('rm', ['-f', out]);
  // One 512-byte sector per cluster keeps a small partition above FAT32's minimum cluster count.
  await run(tool('mkfs.vfat'), [
    '-F',
    '32',
    '-s',
    '1',
    '-n',
    'boot',
    '-i',
    volid,
    '-C',
    out,
    String(sizeMiB * 1024),
  ]);
  await run(tool('mcopy'), ['-i', out, '-o', '-m', ...files, '::/'], {
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
}

export async function makeWic(
  out: string,
  bootVfat: string,
  rootExt4: string,
  diskId: string,
): Promise<WicLayout> {
  const bootMiB = Math.ceil(statSync(bootVfat).size / MiB);
  const l = wicLayout(bootMiB, statSync(rootExt4).size);
  await run('rm', ['-f', out]);
  closeSync(openSync(out, 'w'));
  truncateSync(out, l.totalBytes);
  const sector = (mib: number) => mib * 2048;
  const table = [
    'label: dos',
    `label-id: 0x${diskId}`,
    'unit: sectors',
    '',
    `start=${sector(l.bootStartMiB)}, size=${sector(l.bootMiB)}, type=c, bootable`,
    `start=${sector(l.rootStartMiB)}, size=${sector(l.rootMiB)}, type=83`,
    '',
  ].join('\n');
  await run(tool('sfdisk'), ['--quiet', '--no-reread', '--no-tell-kernel', '--wipe', 'never', out], {
    input: table,
  });
  for (const [img, startMiB] of [
    [bootVfat, l.bootStartMiB],
    [rootExt4, l.rootStartMiB],
  ] as const) {
    await run(tool('dd'), [
      `if=${img}`,
      `of=${out}`,
      'bs=1M',
      `seek=${startMiB}`,
      'conv=notrunc,sparse',
      'status=none',
    ]);
  }
  return l;
}
