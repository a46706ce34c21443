import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDeployDir } from '../../electron/engine/image/descriptor.ts';
import { identifyKernelBytes, kernelMismatch } from '../../electron/engine/image/kernel-format.ts';
import { inspectRootfsBytes } from '../../electron/engine/image/rootfs-format.ts';
import {
  arm64Image,
  bzImage,
  referenceDeploy,
  removeTempDirs,
  STAMP,
  scarthgapArm64Deploy,
  tempDir,
  writeExt4,
} from '../helpers/deploy-fixtures.ts';

const MiB = 1024 * 1024;

function hasMke2fs(): boolean {
  try {
    execFileSync('mke2fs', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('loadDeployDir', () => {
  it('describes a scarthgap qemuarm64 deploy dir in a path with spaces and quotes', async () => {
    const parent = path.join(tempDir(), `Bob's "Yocto" builds, 2024`);
    const f = scarthgapArm64Deploy(parent);
    const d = await loadDeployDir(f.dir);
    expect(d).toMatchObject({
      id: 'core-image-minimal-qemuarm64',
      name: 'core-image-minimal',
      machine: 'qemuarm64',
      arch: 'aarch64',
      board: 'virt',
      systemBinary: 'qemu-system-aarch64',
      deployDir: f.dir,
      kernel: f.kernel,
      kernelFormat: 'an arm64 Image',
      rootfs: path.join(f.dir, `core-image-minimal-qemuarm64.rootfs-${STAMP}.ext4`),
      rootfsFormat: 'raw',
      rootfsKind: 'disk',
      fstype: 'ext4',
      serialConsoles: [
        { baud: 115200, tty: 'ttyAMA0' },
        { baud: 115200, tty: 'hvc0' },
      ],
      sdCard: false,
      notes: [],
    });
    expect(d.sizeBytes).toBe(32 * MiB + 64 * 1024);
    expect(d.conf.file).toBe(f.conf);
  });

  it('a missing kernel is one line naming what was looked for', async () => {
    const f = scarthgapArm64Deploy(tempDir());
    for (const n of ['Image', 'Image-qemuarm64.bin', path.basename(f.kernel)]) rmSync(path.join(f.dir, n));
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      `kernel not found in ${f.dir} (looked for ${path.basename(f.kernel)}, Image, Image*)`,
    );
  });

  it('a truncated ext4 is refused with the sizes', async () => {
    const f = scarthgapArm64Deploy(tempDir());
    writeExt4(path.join(f.dir, `core-image-minimal-qemuarm64.rootfs-${STAMP}.ext4`), 32 * 1024, 16 * MiB);
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      `rootfs core-image-minimal-qemuarm64.rootfs-${STAMP}.ext4 is truncated: its ext4 superblock says 32 MiB but the file has 16 MiB`,
    );
  });

  it('a kernel for the wrong architecture is named as what it is', async () => {
    const f = scarthgapArm64Deploy(tempDir(), { kernel: bzImage() });
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      `kernel ${path.basename(f.kernel)} is an x86-64 bzImage, but qemuarm64 needs an arm64 Image`,
    );
    const x = referenceDeploy(tempDir(), 'scarthgap-qemux86-64');
    writeFileSync(x.kernel, arm64Image());
    await expect(loadDeployDir(x.dir)).rejects.toThrow(
      'kernel bzImage-qemux86-64.bin is an arm64 Image, but qemux86-64 needs an x86 bzImage',
    );
    writeFileSync(x.kernel, Buffer.alloc(4096, 0x41));
    await expect(loadDeployDir(x.dir)).rejects.toThrow(
      'kernel bzImage-qemux86-64.bin is a file with no kernel header Stacklab recognises (arm64 Image, bzImage, zImage, ELF, PE), but qemux86-64 needs an x86 bzImage',
    );
  });

  it('accepts a gzip-compressed arm64 Image (Debian vmlinuz) and says so', async () => {
    const f = scarthgapArm64Deploy(tempDir(), { kernel: zlib.gzipSync(arm64Image(256 * 1024)) });
    expect((await loadDeployDir(f.dir)).kernelFormat).toBe('a gzip-compressed arm64 Image');
  });

  it('a zstd rootfs: refused alone, its unpacked twin used when present', async () => {
    const dir = tempDir();
    const f = referenceDeploy(dir, 'scarthgap-qemuarm64');
    rmSync(f.rootfs);
    writeFileSync(`${f.rootfs}.zst`, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      'rootfs core-image-minimal-qemuarm64.rootfs.ext4.zst is zst-compressed; unpack it next to itself (or import it, and Stacklab unpacks it)',
    );
    // A 5.3-style conf asks for ext4.zst; an unpacked .ext4 beside it is what runqemu would use.
    const conf = (await import('node:fs'))
      .readFileSync(f.conf, 'utf8')
      .replace('qb_default_fstype = ext4', 'qb_default_fstype = ext4.zst');
    writeFileSync(f.conf, conf);
    writeExt4(f.rootfs, 1024);
    const d = await loadDeployDir(f.dir);
    expect(d.rootfs).toBe(f.rootfs);
    expect(d.fstype).toBe('ext4');
    expect(d.notes).toEqual([
      'using the unpacked core-image-minimal-qemuarm64.rootfs.ext4 instead of the zst-compressed ext4.zst',
    ]);
  });

  it('other one-line refusals: no rootfs, a non-dtb device tree, an nfs image, a wrong directory', async () => {
    const f = referenceDeploy(tempDir(), 'kirkstone-qemuarm64');
    rmSync(f.rootfs);
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      `rootfs not found: no core-image-minimal-qemuarm64-20220416133845*.ext4 in ${f.dir} (core-image-minimal-qemuarm64.qemuboot.conf)`,
    );
    const g = referenceDeploy(tempDir(), 'scarthgap-qemuarm64');
    const fs = await import('node:fs');
    fs.appendFileSync(g.conf, 'qb_dtb = board.dtb\n');
    fs.writeFileSync(path.join(g.dir, 'board.dtb'), 'not a device tree');
    await expect(loadDeployDir(g.dir)).rejects.toThrow(
      'device tree board.dtb is not a flattened device tree (.dtb)',
    );
    fs.writeFileSync(
      g.conf,
      fs.readFileSync(g.conf, 'utf8').replace('qb_default_fstype = ext4', 'qb_default_fstype = nfs'),
    );
    await expect(loadDeployDir(g.dir)).rejects.toThrow(
      'core-image-minimal-qemuarm64.rootfs.qemuboot.conf: the root filesystem type is nfs; Stacklab boots disk images and initramfs images',
    );
    await expect(loadDeployDir(path.join(g.dir, 'nope'))).rejects.toThrow(
      `cannot open the deploy directory ${path.join(g.dir, 'nope')}: ENOENT`,
    );
    const bare = tempDir();
    fs.writeFileSync(path.join(bare, 'kernel'), arm64Image());
    await expect(loadDeployDir(bare)).rejects.toThrow(
      `no *.qemuboot.conf in ${bare}, and its file names do not say which board it is for; choose one of qemuarm64, qemux86-64, raspberrypi3-64, raspberrypi4-64`,
    );
  });

  it.skipIf(!hasMke2fs())('accepts a real ext4 made by mke2fs', async () => {
    const f = referenceDeploy(tempDir(), 'scarthgap-qemuarm64');
    rmSync(f.rootfs);
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', f.rootfs, '8M'], { stdio: 'ignore' });
    const d = await loadDeployDir(f.dir);
    expect(d.rootfs).toBe(f.rootfs);
    // …and notices when the same file loses its tail.
    execFileSync('truncate', ['-s', '4M', f.rootfs]);
    await expect(loadDeployDir(f.dir)).rejects.toThrow(
      'is truncated: its ext4 superblock says 8388608 bytes but the file has 4194304 bytes',
    );
  });
  if (!hasMke2fs())
    console.log('skipped the mke2fs test: mke2fs is not installed (apt-get install e2fsprogs)');
});

describe('format detection', () => {
  it('names kernels by their headers', () => {
    const pe = Buffer.alloc(512);
    pe.write('MZ', 0, 'latin1');
    pe.writeUInt32LE(0x80, 0x3c);
    pe.write('PE\0\0', 0x80, 'latin1');
    pe.writeUInt16LE(0x8664, 0x84);
    expect(identifyKernelBytes(pe)).toMatchObject({
      kind: 'pe',
      arch: 'x86_64',
      description: 'an x86-64 EFI (PE) kernel',
    });
    const zboot = Buffer.from(pe);
    zboot.write('zimg', 4, 'latin1');
    zboot.write('zstd', 0x18, 'latin1');
    zboot.writeUInt16LE(0xaa64, 0x84);
    expect(identifyKernelBytes(zboot).description).toBe('an EFI zboot (zstd-compressed) arm64 kernel');
    const elf = Buffer.alloc(64);
    elf.writeUInt32BE(0x7f454c46, 0);
    elf.writeUInt16LE(0xb7, 0x12);
    expect(identifyKernelBytes(elf)).toMatchObject({
      kind: 'elf',
      arch: 'aarch64',
      description: 'an arm64 ELF vmlinux',
    });
    const uimage = Buffer.alloc(64);
    uimage.writeUInt32BE(0x27051956, 0);
    uimage[29] = 2;
    expect(identifyKernelBytes(uimage).description).toBe('a U-Boot uImage for 32-bit arm');
    expect(identifyKernelBytes(bzImage(4096, false)).description).toBe('a 32-bit x86 bzImage');
    expect(kernelMismatch(identifyKernelBytes(bzImage(4096, false)), 'x86_64')).toBeUndefined();
    expect(kernelMismatch(identifyKernelBytes(zlib.gzipSync(bzImage())), 'x86_64')).toBe(
      'is a gzip-compressed x86-64 bzImage, which x86 QEMU cannot unpack',
    );
  });

  it('checks MBR, GPT, squashfs and qcow2 headers', () => {
    const mbr = Buffer.alloc(512);
    mbr[446 + 4] = 0x0c;
    mbr.writeUInt32LE(2048, 446 + 8);
    mbr.writeUInt32LE(2048, 446 + 12);
    mbr[462 + 4] = 0x83;
    mbr.writeUInt32LE(4096, 462 + 8);
    mbr.writeUInt32LE(4096, 462 + 12);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    expect(inspectRootfsBytes(mbr, 8192 * 512)).toMatchObject({ kind: 'mbr', rootPartition: 2 });
    expect(inspectRootfsBytes(mbr, 8191 * 512).problem).toBe(
      'is truncated: its partition table ends at 4194304 bytes but the file has 4193792 bytes',
    );

    const gpt = Buffer.alloc(2048);
    gpt[446 + 4] = 0xee;
    gpt.writeUInt32LE(1, 446 + 8);
    gpt.writeUInt32LE(0xffffffff, 446 + 12);
    gpt[510] = 0x55;
    gpt[511] = 0xaa;
    gpt.write('EFI PART', 512, 'latin1');
    gpt.writeBigUInt64LE(BigInt(40 * 2048 - 34), 512 + 0x30);
    gpt.writeBigUInt64LE(2n, 512 + 0x48);
    gpt.writeUInt32LE(128, 512 + 0x54);
    Buffer.from('af3dc60f838472478e793d69d8477de4', 'hex').copy(gpt, 1024 + 128);
    expect(inspectRootfsBytes(gpt, 40 * MiB)).toMatchObject({ kind: 'gpt', rootPartition: 2 });
    expect(inspectRootfsBytes(gpt, 20 * MiB).problem).toMatch(
      /^is truncated: its GPT describes 40 MiB but the file has 20 MiB$/,
    );

    const sq = Buffer.alloc(96);
    sq.write('hsqs', 0, 'latin1');
    sq.writeBigUInt64LE(5000n, 40);
    expect(inspectRootfsBytes(sq, 4096).problem).toBe(
      'is truncated: squashfs says 5000 bytes but the file has 4096 bytes',
    );
    const q = Buffer.alloc(64);
    q.writeUInt32BE(0x514649fb, 0);
    expect(inspectRootfsBytes(q, 1024)).toMatchObject({ kind: 'qcow2', format: 'qcow2' });
    expect(inspectRootfsBytes(Buffer.alloc(0), 0).problem).toBe('is empty');
  });
});

afterAll(removeTempDirs);
