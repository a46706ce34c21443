// What the library lists for one image: where it came from, what it runs on, and the
// store blobs it is made of (named as they appear in its deploy directory).
import type { ImageSummary } from '../../common/contract.ts';

export type FileRole = 'kernel' | 'rootfs' | 'disk' | 'qemuboot' | 'dtb' | 'initrd' | 'bios' | 'other';

export interface ImageFile {
  role: FileRole;
  /** Name in the deploy directory, e.g. core-image-minimal-qemuarm64.rootfs.ext4. */
  name: string;
  /** Digest of the stored (decompressed) bytes: the blob's name in the store. */
  sha256: string;
  sizeBytes: number;
  /** Where it came from: a URL, or the path the user imported. */
  origin?: string;
  /** Digest of the bytes as published (the compressed file), when they differ. */
  sourceSha256?: string;
}

export type ImageSource = 'import' | 'download' | 'demo' | 'build';

export interface ImageRecord {
  id: string;
  name: string;
  source: ImageSource;
  machine: string; // Yocto MACHINE: qemuarm64, qemux86-64, raspberrypi3-64, …
  arch: string; // uname -m: aarch64, x86_64, arm
  board: string; // QEMU -machine: virt, q35, raspi3b, …
  files: ImageFile[];
  /** Digest of the main disk (rootfs or whole disk image). */
  sha256: string;
  sizeBytes: number;
  description?: string;
  createdAt: string;
  /** Filled in by the store: the directory of named links the QEMU side boots from. */
  deployDir?: string;
  bootable: boolean;
  whyNot?: string;
}

export function mainDisk(record: ImageRecord): ImageFile | undefined {
  return record.files.find((f) => f.role === 'disk') ?? record.files.find((f) => f.role === 'rootfs');
}

/** The contract's view of a record, for images.list. */
export function toSummary(record: ImageRecord): ImageSummary {
  return {
    id: record.id,
    name: record.name,
    source: record.source,
    machine: record.machine,
    arch: record.arch,
    board: record.board,
    path: record.deployDir ?? '',
    sizeBytes: record.sizeBytes,
    sha256: record.sha256,
    description: record.description,
    bootable: record.bootable,
    whyNot: record.whyNot,
  };
}

/** Ids are what the contract accepts: letters, digits and ._:@+- . */
export function slugId(text: string): string {
  const s = text
    .replace(/[^A-Za-z0-9._:@+-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 100);
  return s || 'image';
}
