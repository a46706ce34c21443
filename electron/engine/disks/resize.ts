// Growing a VM's disk so the guest can use the space: the overlay's backing chain cannot
// be resized in place (the base is never written), so the VM's current disk (base +
// overlay) is flattened into a sparse raw working base, grown, its root partition and
// ext4 file system grown, and a fresh overlay made on top. Everything is built under a
// temporary name and switched over last, so a failure anywhere leaves the previous disk
// as it was. The overlay's snapshots cannot survive the flattening.
//
// For a partitioned image (an SD card, a .wic) the root partition is copied to a file of
// its own, the image is cut before it and extended (so the old bytes become a hole), the
// partition entry is rewritten, the copy is checked and resized, and its non-zero blocks
// are written back. resize2fs cannot work inside the image itself (see ext4-grow.ts).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { findPartitions } from '../disk/partitions.ts';
import { readWorkingBase, type WorkingBaseRecord, writeWorkingBase } from '../disk/workbase.ts';
import { checkFs, type E2fsTools, e2fsTools, growFs } from './ext4-grow.ts';
import { vmDiskPaths } from './layout.ts';
import { type GrownPartition, growPartitionToEnd } from './partition-table.ts';
import { imageInfo, qemuImg } from './qemu-img.ts';
import { formatSize, isPowerOfTwo, sizeLabel } from './size.ts';
import { qcow2Header } from './usage.ts';

const MiB = 2 ** 20;
const CHUNK = MiB;

export interface ResizeSpec {
  vmId: string;
  vmDir: string;
  qemuImg: string;
  /** The base the VM's overlay sits on (or will, when it has no overlay yet). */
  base: { path: string; format: 'raw' | 'qcow2' };
  /** The image's own disk, recorded as where the working base came from. */
  imageDisk: string;
  /** SD cards (raspi boards) must be a power of two. */
  sdCard: boolean;
  sizeBytes: number;
  running: boolean;
  /** The overlay's snapshots cannot be kept; without this, a disk with snapshots is refused. */
  dropSnapshots?: boolean;
  tools?: E2fsTools;
}

export interface ResizeResult {
  vmId: string;
  previousBytes: number;
  sizeBytes: number;
  /** The grown working base the new overlay sits on. */
  base: string;
  partition?: GrownPartition;
  /** Size of the root file system now. */
  filesystemBytes: number;
  droppedSnapshots: number;
}

/** The size the VM's disk has now: its overlay's, or what the supervisor would give a new one. */
export async function currentDiskSize(
  spec: Pick<ResizeSpec, 'vmDir' | 'qemuImg' | 'base' | 'sdCard'>,
): Promise<number> {
  const { overlay } = vmDiskPaths(spec.vmDir);
  if (existsSync(overlay)) return qcow2Header(overlay).virtualBytes;
  const v = (await imageInfo(spec.qemuImg, spec.base.path, { shared: true })).virtualSize;
  return spec.sdCard ? 2 ** Math.ceil(Math.log2(v)) : v;
}

/** One line for each size a user can get wrong; nothing is touched before these pass. */
export function checkSize(vmId: string, sizeBytes: number, currentBytes: number, sdCard: boolean): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
    throw new Error(`a disk size must be a positive whole number of bytes: ${sizeBytes}`);
  if (sizeBytes % MiB !== 0) throw new Error(`disk sizes are whole MiB: ${sizeBytes} bytes is not`);
  if (sdCard && !isPowerOfTwo(sizeBytes)) {
    const lo = 2 ** Math.floor(Math.log2(sizeBytes));
    throw new Error(
      `an SD card's size must be a power of two, and ${formatSize(sizeBytes)} is not: choose ${formatSize(lo)} or ${formatSize(lo * 2)}`,
    );
  }
  if (sizeBytes < currentBytes)
    throw new Error(
      `${vmId}'s disk is ${formatSize(currentBytes)}; disks only grow, so ${formatSize(sizeBytes)} is refused`,
    );
}

const inFlight = new Set<string>();

export async function resizeDisk(spec: ResizeSpec): Promise<ResizeResult> {
  const { vmId, vmDir } = spec;
  if (spec.running) throw new Error(`${vmId} is running; stop it before resizing its disk`);
  const key = path.resolve(vmDir);
  if (inFlight.has(key)) throw new Error(`${vmId}'s disk is already being resized`);
  inFlight.add(key);
  try {
    return await resize(spec);
  } finally {
    inFlight.delete(key);
  }
}

async function resize(spec: ResizeSpec): Promise<ResizeResult> {
  const { vmId, vmDir, sizeBytes } = spec;
  const p = vmDiskPaths(vmDir);
  const previousBytes = await currentDiskSize(spec);
  checkSize(vmId, sizeBytes, previousBytes, spec.sdCard);
  const hasOverlay = existsSync(p.overlay);
  const snapshots = hasOverlay ? qcow2Header(p.overlay).snapshots : 0;
  if (snapshots > 0 && !spec.dropSnapshots)
    throw new Error(
      `${vmId}'s disk has ${snapshots} snapshot(s), which resizing cannot keep: delete them first, or allow dropping them`,
    );
  const tools = spec.tools ?? e2fsTools();

  mkdirSync(p.grownDir, { recursive: true });
  const work = path.join(p.grownDir, `.grow-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(work);
  try {
    // 1. The disk as the guest sees it now, flattened. No -U on the overlay: its lock
    //    refuses a VM that another process is running; the base may be shared.
    const flat = path.join(work, 'disk.raw');
    const from = hasOverlay ? ['-f', 'qcow2', p.overlay] : ['-U', '-f', spec.base.format, spec.base.path];
    await qemuImg(spec.qemuImg, ['convert', '-O', 'raw', ...from, flat], `copy ${vmId}'s disk`);

    // 2. Grow the table and the file system.
    const parts = await findPartitions(flat);
    const root = parts.root;
    if (!root) throw new Error(`${vmId}'s disk has no ext2/3/4 root file system to grow`);
    let partition: GrownPartition | undefined;
    let filesystemBytes: number;
    if (parts.table === 'none') {
      truncateSync(flat, sizeBytes);
      await checkFs(tools, flat);
      await growFs(tools, flat, sizeBytes);
      await checkFs(tools, flat, { repair: false });
      filesystemBytes = sizeBytes;
    } else {
      const fsFile = path.join(work, 'root.raw');
      await copySparse(flat, root.offset, root.size, fsFile, 0, { create: true });
      await checkFs(tools, fsFile);
      truncateSync(flat, root.offset); // the old partition bytes go: from here on they live in fsFile
      truncateSync(flat, sizeBytes);
      partition = await growPartitionToEnd(flat, root.offset);
      truncateSync(fsFile, partition.newBytes);
      await growFs(tools, fsFile, partition.newBytes);
      await checkFs(tools, fsFile, { repair: false });
      await copySparse(fsFile, 0, partition.newBytes, flat, root.offset, { create: false });
      filesystemBytes = partition.newBytes;
    }

    // 3. Switch over: grown base in place, a fresh overlay on it, the record, then the overlay's name.
    const final = freeName(p.grownDir, `grown-${sizeLabel(sizeBytes)}`);
    const previous = readWorkingBase(vmDir);
    const overlayTmp = path.join(work, 'disk.qcow2');
    renameSync(flat, final);
    try {
      const create = ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', final, overlayTmp];
      if (spec.sdCard) create.push(String(sizeBytes));
      await qemuImg(spec.qemuImg, create, `create ${vmId}'s new disk overlay`);
      const rec: WorkingBaseRecord = {
        path: final,
        format: 'raw',
        key: path.basename(final, '.raw'),
        base: previous?.base ?? spec.imageDisk,
        createdAt: Date.now(),
        changes: [
          ...(previous?.changes ?? []),
          `disk grown to ${formatSize(sizeBytes)} (with the changes made while it ran)`,
        ],
      };
      writeWorkingBase(vmDir, rec);
      try {
        renameSync(overlayTmp, p.overlay);
      } catch (e) {
        restoreRecord(vmDir, previous);
        throw e;
      }
    } catch (e) {
      rmSync(final, { force: true });
      throw e;
    }
    // The grown base this replaces is nobody's now.
    if (
      previous &&
      path.dirname(path.resolve(previous.path)) === path.resolve(p.grownDir) &&
      previous.path !== final
    )
      rmSync(previous.path, { force: true });
    return {
      vmId,
      previousBytes,
      sizeBytes,
      base: final,
      partition,
      filesystemBytes,
      droppedSnapshots: snapshots,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function restoreRecord(vmDir: string, previous: WorkingBaseRecord | undefined): void {
  if (previous) writeWorkingBase(vmDir, previous);
  else rmSync(vmDiskPaths(vmDir).record, { force: true });
}

/** `<dir>/<stem>.raw`, or `<stem>-2.raw`… when that is taken (growing again to the same size). */
function freeName(dir: string, stem: string): string {
  for (let n = 1; ; n++) {
    const f = path.join(dir, `${n === 1 ? stem : `${stem}-${n}`}.raw`);
    if (!existsSync(f)) return f;
  }
}

const ZERO = Buffer.alloc(CHUNK);

/**
 * Copies `length` bytes from `src` at `srcOff` to `dst` at `dstOff`, skipping all-zero
 * chunks so the copy stays sparse. That is only right where `dst` already reads as zeros:
 * a new file (create), or a range that was cut off and re-extended (a hole).
 */
async function copySparse(
  src: string,
  srcOff: number,
  length: number,
  dst: string,
  dstOff: number,
  o: { create: boolean },
): Promise<void> {
  if (o.create) writeFileSync(dst, '');
  const [r, w] = [await open(src, 'r'), await open(dst, 'r+')];
  try {
    if (o.create) await w.truncate(dstOff + length);
    const buf = Buffer.alloc(CHUNK);
    for (let done = 0; done < length; ) {
      const want = Math.min(CHUNK, length - done);
      const { bytesRead } = await r.read(buf, 0, want, srcOff + done);
      if (bytesRead === 0) break; // past the end of a sparse source: zeros
      const chunk = buf.subarray(0, bytesRead);
      if (!chunk.equals(ZERO.subarray(0, bytesRead))) await w.write(chunk, 0, bytesRead, dstOff + done);
      done += bytesRead;
    }
  } finally {
    await r.close();
    await w.close();
  }
}
