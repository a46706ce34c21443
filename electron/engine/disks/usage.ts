// How much host disk a VM's own files take: the overlay (allocated blocks, not its
// apparent size: a fresh overlay on a 4 GiB base is a few hundred KiB) and any working
// bases made for it. The image's base file is shared and counted by the image store.
// The snapshot count comes straight from the qcow2 header, so no qemu-img is needed.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { vmDiskPaths } from './layout.ts';

export interface DiskUsage {
  /** Host bytes the overlay occupies (allocated blocks). */
  overlayBytes: number;
  /** Host bytes of the VM's own working bases (grown or customised); 0 when it sits on the image. */
  baseBytes: number;
  /** Snapshots stored in the overlay. */
  snapshots: number;
  /** The size the guest sees; 0 when the VM has no disk yet. */
  virtualBytes: number;
}

/** Allocated bytes (st_blocks is in 512-byte units everywhere it exists; Windows lacks it). */
export function allocatedBytes(file: string): number {
  const st = statSync(file);
  return typeof st.blocks === 'number' && st.blocks >= 0 && process.platform !== 'win32'
    ? st.blocks * 512
    : st.size;
}

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) total += allocatedBytes(p);
  }
  return total;
}

/** Virtual size and snapshot count from a qcow2 header (big-endian fields at fixed offsets). */
export function qcow2Header(file: string): { virtualBytes: number; snapshots: number } {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(72);
    const n = readSync(fd, b, 0, b.length, 0);
    if (n < 72 || b.readUInt32BE(0) !== 0x514649fb)
      throw new Error(`${path.basename(file)} is not a qcow2 image`);
    return { virtualBytes: Number(b.readBigUInt64BE(24)), snapshots: b.readUInt32BE(60) };
  } finally {
    closeSync(fd);
  }
}

export function usage(vmDir: string): DiskUsage {
  const p = vmDiskPaths(vmDir);
  const baseBytes = dirBytes(p.grownDir) + dirBytes(p.customDir);
  if (!existsSync(p.overlay)) return { overlayBytes: 0, baseBytes, snapshots: 0, virtualBytes: 0 };
  const h = qcow2Header(p.overlay);
  return {
    overlayBytes: allocatedBytes(p.overlay),
    baseBytes,
    snapshots: h.snapshots,
    virtualBytes: h.virtualBytes,
  };
}
