// Derived working bases: a sparse raw copy of a base image (raw or qcow2) made with
// qemu-img, edited, cached by key — and the base never written. Disk images are made here
// with sfdisk, mkfs.vfat and mke2fs, and read back with debugfs and mtools.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withExt4 } from '../../electron/engine/disk/ext4.ts';
import { findPartitions } from '../../electron/engine/disk/partitions.ts';
import { deriveBase, workingBaseFor, writeWorkingBase } from '../../electron/engine/disk/workbase.ts';

const have = (cmd: string, arg = '--version') =>
  spawnSync(cmd, [arg], { encoding: 'utf8' }).error === undefined;
const tools =
  have('qemu-img') &&
  have('sfdisk') &&
  have('mkfs.vfat') &&
  have('mke2fs', '-V') &&
  have('debugfs', '-V') &&
  have('mcopy');
if (!tools)
  console.warn('skipping working-base tests: needs qemu-img, sfdisk, dosfstools, e2fsprogs and mtools');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-workbase-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

function ext4(name: string, files: Record<string, string>, sizeMiB: number): string {
  const root = path.join(tmp, `${name}-tree`);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  const img = path.join(tmp, `${name}.ext4`);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', 'root_owner=0:0', '-d', root, img, `${sizeMiB}M`]);
  return img;
}

/** An SD-card image like meta-raspberrypi's .wic: MBR, FAT boot at 4 MiB, ext4 root after it. */
function sdImage(name: string): { path: string; bootOffset: number; rootOffset: number } {
  const bootMiB = 16;
  const rootMiB = 24;
  const img = path.join(tmp, `${name}.wic`);
  const total = (4 + bootMiB + rootMiB + 4) * MiB;
  writeFileSync(img, '');
  execFileSync('truncate', ['-s', String(total), img]);
  execFileSync('sfdisk', ['-q', img], {
    input: `label: dos\nstart=8192, size=${bootMiB * 2048}, type=c\nstart=${(4 + bootMiB) * 2048}, size=${rootMiB * 2048}, type=83\n`,
  });
  const boot = path.join(tmp, `${name}-boot.vfat`);
  rmSync(boot, { force: true });
  execFileSync('mkfs.vfat', ['-C', '-n', 'BOOT', boot, String(bootMiB * 1024)], { stdio: 'ignore' });
  const cmd = path.join(tmp, 'cmdline.txt');
  writeFileSync(cmd, 'console=serial0,115200 root=/dev/mmcblk0p2 rootwait\n');
  execFileSync('mcopy', ['-i', boot, cmd, '::cmdline.txt']);
  const root = ext4(
    `${name}-root`,
    { 'etc/hostname': 'raspberrypi3-64\n', 'etc/passwd': 'root::0:0:root:/home/root:/bin/sh\n' },
    rootMiB,
  );
  const fd = openSync(img, 'r+');
  writeSync(fd, readFileSync(boot), 0, bootMiB * MiB, 4 * MiB);
  writeSync(fd, readFileSync(root), 0, rootMiB * MiB, (4 + bootMiB) * MiB);
  closeSync(fd);
  return { path: img, bootOffset: 4 * MiB, rootOffset: (4 + bootMiB) * MiB };
}

describe.skipIf(!tools)('deriveBase', () => {
  it('finds the partitions of an SD image and of a bare ext4', async () => {
    const sd = sdImage('parts');
    const p = await findPartitions(sd.path);
    expect(p.table).toBe('mbr');
    expect(p.boot).toMatchObject({ index: 1, offset: sd.bootOffset, fs: 'fat' });
    expect(p.root).toMatchObject({ index: 2, offset: sd.rootOffset, fs: 'ext' });
    const bare = await findPartitions(ext4('bare', { 'etc/hostname': 'x\n' }, 8));
    expect(bare).toMatchObject({ table: 'none', root: { index: 0, offset: 0, fs: 'ext' }, boot: undefined });
    const junk = path.join(tmp, 'junk.img');
    writeFileSync(junk, Buffer.alloc(MiB, 0x41));
    await expect(findPartitions(junk)).rejects.toThrow(
      /^junk\.img has no partition table and no file system Stacklab can edit/,
    );
  });

  it('copies a raw SD image sparsely, edits the copy, caches it, and never writes the base', async () => {
    const sd = sdImage('raw');
    const before = sha256(sd.path);
    const dir = path.join(tmp, 'cache-raw');
    let edits = 0;
    const edit = async (img: { path: string; partitions: Awaited<ReturnType<typeof findPartitions>> }) => {
      edits++;
      expect(img.path).not.toBe(path.join(dir, 'k1.raw')); // edited under a temporary name
      expect(img.partitions.root?.offset).toBe(sd.rootOffset);
      await withExt4(img.path, { offset: img.partitions.root!.offset, write: true }, (fs) =>
        fs.writeFile('/etc/hostname', 'derived\n'),
      );
    };
    const a = await deriveBase({ base: sd.path, baseFormat: 'raw', dir, key: 'k1', edit });
    expect(a).toEqual({ path: path.join(dir, 'k1.raw'), cached: false });
    const b = await deriveBase({ base: sd.path, baseFormat: 'raw', dir, key: 'k1', edit });
    expect(b).toEqual({ path: a.path, cached: true });
    expect(edits).toBe(1);
    expect(sha256(sd.path)).toBe(before);
    // The derived image says what was edited; the base still says what it said.
    const read = (img: string) =>
      execFileSync('debugfs', ['-R', 'cat /etc/hostname', `${img}`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    const carve = (img: string, out: string) => {
      const buf = readFileSync(img).subarray(sd.rootOffset, sd.rootOffset + 24 * MiB);
      writeFileSync(out, buf);
      return out;
    };
    expect(read(carve(a.path, path.join(tmp, 'derived-root.ext4')))).toBe('derived\n');
    expect(read(carve(sd.path, path.join(tmp, 'base-root.ext4')))).toBe('raspberrypi3-64\n');
    // Sparse: the copy occupies far less than its size (the image is mostly unallocated).
    const st = statSync(a.path);
    expect(st.size).toBe(statSync(sd.path).size);
    expect(st.blocks * 512).toBeLessThan(st.size / 2);
    expect(readdirSync(dir)).toEqual(['k1.raw']);
  });

  it('flattens a qcow2 base into a raw working copy', async () => {
    const raw = ext4('q', { 'etc/hostname': 'from-qcow2\n' }, 16);
    const q = path.join(tmp, 'base.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, q]);
    const before = sha256(q);
    const r = await deriveBase({
      base: q,
      baseFormat: 'qcow2',
      dir: path.join(tmp, 'cache-q'),
      key: 'q1',
      edit: async (img) => {
        expect(img.partitions.table).toBe('none');
        await withExt4(img.path, { write: true }, async (fs) => {
          expect((await fs.readFile('/etc/hostname')).toString()).toBe('from-qcow2\n');
          await fs.writeFile('/etc/motd', 'hello\n');
        });
      },
    });
    expect(
      JSON.parse(execFileSync('qemu-img', ['info', '--output=json', r.path], { encoding: 'utf8' })).format,
    ).toBe('raw');
    expect(
      execFileSync('debugfs', ['-R', 'cat /etc/motd', r.path], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    ).toBe('hello\n');
    expect(sha256(q)).toBe(before);
  });

  it('a failing edit leaves nothing behind, and bad keys are refused', async () => {
    const base = ext4('fail', { 'etc/hostname': 'x\n' }, 8);
    const dir = path.join(tmp, 'cache-fail');
    await expect(
      deriveBase({
        base,
        baseFormat: 'raw',
        dir,
        key: 'f1',
        edit: async () => {
          throw new Error('edit went wrong');
        },
      }),
    ).rejects.toThrow('edit went wrong');
    expect(readdirSync(dir)).toEqual([]);
    await expect(
      deriveBase({ base, baseFormat: 'raw', dir, key: '../escape', edit: async () => {} }),
    ).rejects.toThrow(/key must be/);
    await expect(
      deriveBase({
        base: path.join(tmp, 'nope.raw'),
        baseFormat: 'raw',
        dir,
        key: 'k',
        edit: async () => {},
      }),
    ).rejects.toThrow(/does not exist/);
  });

  it('a VM whose recorded working base vanished refuses to boot the pristine one silently', () => {
    const vmDir = path.join(tmp, 'vm');
    mkdirSync(vmDir, { recursive: true });
    expect(workingBaseFor(vmDir)).toBeUndefined();
    const derived = path.join(tmp, 'gone.raw');
    writeFileSync(derived, 'x');
    writeWorkingBase(vmDir, {
      path: derived,
      format: 'raw',
      key: 'k',
      base: '/base',
      createdAt: 0,
      changes: [],
    });
    expect(workingBaseFor(vmDir)).toEqual({ path: derived, format: 'raw' });
    rmSync(derived);
    expect(existsSync(derived)).toBe(false);
    expect(() => workingBaseFor(vmDir)).toThrow(/customised disk gone\.raw is missing/);
  });
});
