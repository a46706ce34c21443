// Importing real image files made here with the system tools: an MBR SD-card image with a
// FAT boot partition (sfdisk, mkfs.vfat, mcopy), an ext4 (mke2fs), qcow2 (qemu-img), a
// Yocto-style deploy directory. The kernels are headers with the right magic and
// padding, not bootable kernels: this suite checks detection, not booting.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importImage } from '../../electron/engine/images/import.ts';
import { kernelArch } from '../../electron/engine/images/probe.ts';
import { Store } from '../../electron/engine/images/store.ts';

const TOOLS = ['sfdisk', 'mkfs.vfat', 'mcopy', 'mke2fs', 'qemu-img', 'xz', 'zstd'];
const missing = TOOLS.filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).error);
if (missing.length)
  console.log(
    `import tests skipped: missing ${missing.join(', ')} (dosfstools, mtools, fdisk, e2fsprogs, qemu-utils, xz-utils, zstd)`,
  );

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let work: string;

function arm64Image(): Buffer {
  const b = Buffer.alloc(256 * 1024);
  b.writeUInt32LE(0x644d5241, 0x38); // "ARM\x64"
  b.write('fake arm64 kernel', 0x100);
  return b;
}

function bzImage(): Buffer {
  const b = Buffer.alloc(256 * 1024);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  b.writeUInt16LE(0x0001, 0x236); // XLF_KERNEL_64
  return b;
}

function dtb(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32BE(0xd00dfeed, 0);
  b.writeUInt32BE(b.length, 4);
  return b;
}

/** A 64 MiB (power of two, as QEMU's SD card wants) MBR image: FAT32 boot + Linux root. */
function sdImage(name: string, boot: Record<string, Buffer | string>): string {
  const dir = fs.mkdtempSync(path.join(work, 'sd-'));
  const img = path.join(dir, name);
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, 64 << 20);
  execFileSync('sfdisk', ['--quiet', img], {
    input: 'label: dos\nstart=8192, size=65536, type=c\nstart=73728, type=83\n',
  });
  const fat = path.join(dir, 'boot.fat');
  execFileSync('mkfs.vfat', ['-C', '-n', 'boot', fat, String(32 * 1024)], { stdio: 'ignore' });
  for (const [n, data] of Object.entries(boot)) {
    const f = path.join(dir, n);
    fs.writeFileSync(f, data);
    execFileSync('mcopy', ['-i', fat, f, `::/${n}`]);
  }
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, fs.readFileSync(fat), 0, undefined, 8192 * 512);
  fs.closeSync(fd);
  return img;
}

function freshStore(): Store {
  return new Store(fs.mkdtempSync(path.join(work, 'store-')));
}

function storeState(store: Store): { blobs: number; temps: string[] } {
  const names = fs.existsSync(store.blobDir) ? fs.readdirSync(store.blobDir) : [];
  return {
    blobs: names.filter((n) => /^[0-9a-f]{64}$/.test(n)).length,
    temps: names.filter((n) => n.startsWith('.tmp')),
  };
}

const piBoot = () => ({
  'kernel8.img': arm64Image(),
  'bcm2710-rpi-3-b.dtb': dtb(),
  'bcm2711-rpi-4-b.dtb': dtb(),
  'config.txt': 'arm_64bit=1\nenable_uart=1\n',
  'cmdline.txt': 'dwc_otg.lpm_enable=0 console=serial0,115200 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait\n',
});

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'stacklab-import-'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe.skipIf(missing.length > 0)('importImage', () => {
  it('detects an arm64 Raspberry Pi 3 SD image from its FAT boot partition', async () => {
    const store = freshStore();
    const img = sdImage('rpi.wic', piBoot());
    const before = sha(fs.readFileSync(img));
    const rec = await importImage(img, { store });
    expect([rec.arch, rec.machine, rec.board, rec.source]).toEqual([
      'aarch64',
      'raspberrypi3-64',
      'raspi3b',
      'import',
    ]);
    expect(rec.files.map((f) => [f.role, f.name])).toEqual([
      ['disk', 'rpi.wic'],
      ['kernel', 'kernel8.img'],
      ['dtb', 'bcm2710-rpi-3-b.dtb'],
      ['qemuboot', 'rpi.qemuboot.conf'],
    ]);
    expect(rec.sha256).toBe(before);
    expect(sha(fs.readFileSync(img))).toBe(before); // the user's file is never written
    const conf = fs.readFileSync(path.join(rec.deployDir!, 'rpi.qemuboot.conf'), 'utf8');
    expect(conf).toContain('qb_machine = -machine raspi3b');
    expect(conf).toContain('qb_dtb = bcm2710-rpi-3-b.dtb');
    expect(conf).toContain('qb_kernel_root = /dev/mmcblk0p2');
    expect(conf).toMatch(/qb_kernel_cmdline_append = dwc_otg\.lpm_enable=0 rootfstype=ext4 rootwait\n/);
    expect(sha(fs.readFileSync(path.join(rec.deployDir!, 'kernel8.img')))).toBe(sha(arm64Image()));
    expect(fs.statSync(path.join(rec.deployDir!, 'rpi.wic')).mode & 0o777).toBe(0o444);
    expect(await store.getImage(rec.id)).toEqual(rec);
  });

  it('refuses an x86 kernel on a boot partition with Pi device trees, and keeps nothing', async () => {
    const store = freshStore();
    const img = sdImage('bad.wic', { ...piBoot(), 'kernel8.img': bzImage() });
    await expect(importImage(img, { store })).rejects.toThrow(
      /^bad\.wic: kernel8\.img is an x86_64 kernel but the boot partition holds Raspberry Pi device trees \(bcm2710-rpi-3-b\.dtb, bcm2711-rpi-4-b\.dtb\)$/,
    );
    expect(storeState(store)).toEqual({ blobs: 0, temps: [] });
    expect(await store.listImages()).toEqual([]);
  });

  it('imports a .wic.xz and a .wic.zst by decompressing them into the store', async () => {
    const store = freshStore();
    const img = sdImage('pi.wic', piBoot());
    const raw = sha(fs.readFileSync(img));
    execFileSync('xz', ['-k', '-T1', img]);
    execFileSync('zstd', ['-q', '-k', img]);
    const a = await importImage(`${img}.xz`, { store });
    const b = await importImage(`${img}.zst`, { store });
    expect(a.sha256).toBe(raw);
    expect(b.sha256).toBe(raw);
    expect(a.files[0]!.sourceSha256).toBe(sha(fs.readFileSync(`${img}.xz`)));
    expect(a.id).toBe(b.id); // same bytes, same name: one image
    expect(storeState(store)).toEqual({ blobs: 4, temps: [] });
  });

  it('refuses a boot partition without a kernel, naming what it looked for', async () => {
    const store = freshStore();
    const img = sdImage('nokernel.img', { 'config.txt': 'arm_64bit=1\n', 'bcm2710-rpi-3-b.dtb': dtb() });
    await expect(importImage(img, { store })).rejects.toThrow(
      /^nokernel\.img: no kernel on the boot partition \(looked for kernel8\.img, .*zImage\)$/,
    );
    expect(storeState(store)).toEqual({ blobs: 0, temps: [] });
  });

  it('refuses a file with no partition table it knows', async () => {
    const store = freshStore();
    const f = path.join(work, 'noise.img');
    fs.writeFileSync(f, Buffer.alloc(1 << 20, 0x5a));
    await expect(importImage(f, { store })).rejects.toThrow(
      'noise.img: unknown partition table, and not an ext4 or qcow2 image either',
    );
  });

  it('imports an ext4 with the kernel beside it, and refuses one without', async () => {
    const store = freshStore();
    const dir = fs.mkdtempSync(path.join(work, 'ext4-'));
    const rootfs = path.join(dir, 'core-image-minimal-qemuarm64.rootfs.ext4');
    execFileSync('mke2fs', ['-q', '-t', 'ext4', '-F', rootfs, '8M']);
    await expect(importImage(rootfs, { store })).rejects.toThrow(
      'core-image-minimal-qemuarm64.rootfs.ext4 has no kernel beside it: put one (Image, bzImage, zImage…) in the same folder or pass it',
    );
    fs.writeFileSync(path.join(dir, 'bzImage-qemux86-64.bin'), bzImage());
    fs.writeFileSync(path.join(dir, 'Image-qemuarm64.bin'), arm64Image());
    const rec = await importImage(rootfs, { store });
    expect([rec.arch, rec.machine, rec.board]).toEqual(['aarch64', 'qemuarm64', 'virt']);
    expect(rec.files.find((f) => f.role === 'kernel')!.name).toBe('Image-qemuarm64.bin');
    const conf = fs.readFileSync(
      path.join(rec.deployDir!, 'core-image-minimal-qemuarm64.qemuboot.conf'),
      'utf8',
    );
    expect(conf).toContain('qb_default_fstype = ext4');
    expect(conf).toContain('qb_system_name = qemu-system-aarch64');
  });

  it('reads a qcow2 header and refuses an overlay with a backing file', async () => {
    const store = freshStore();
    const dir = fs.mkdtempSync(path.join(work, 'qcow-'));
    const base = path.join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    const kernel = path.join(work, 'bzImage-x');
    fs.writeFileSync(kernel, bzImage());
    const rec = await importImage(base, { store, kernel });
    expect([rec.arch, rec.machine, rec.board]).toEqual(['x86_64', 'qemux86-64', 'q35']);
    expect(rec.description).toContain('67108864 bytes virtual');
    const over = path.join(dir, 'over.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', over]);
    await expect(importImage(over, { store, kernel })).rejects.toThrow(
      `over.qcow2 is a qcow2 overlay on ${base}: import the base image, or flatten it with qemu-img convert`,
    );
  });

  it('imports a Yocto deploy directory by its qemuboot.conf, decompressing an ext4.zst rootfs', async () => {
    const store = freshStore();
    const dir = fs.mkdtempSync(path.join(work, 'deploy-'));
    const rootfs = path.join(dir, 'core-image-minimal-qemuarm64.rootfs.ext4');
    execFileSync('mke2fs', ['-q', '-t', 'ext4', '-F', rootfs, '8M']);
    const rawSha = sha(fs.readFileSync(rootfs));
    execFileSync('zstd', ['-q', '--rm', rootfs]);
    fs.writeFileSync(path.join(dir, 'Image'), arm64Image());
    fs.writeFileSync(
      path.join(dir, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'),
      [
        '[config_bsp]',
        'deploy_dir_image = /build/tmp/deploy/images/qemuarm64',
        'image_link_name = core-image-minimal-qemuarm64.rootfs',
        'machine = qemuarm64',
        'qb_cpu = -cpu cortex-a57',
        'qb_default_fstype = ext4.zst',
        'qb_default_kernel = Image',
        'qb_machine = -machine virt',
        'qb_mem = -m 256',
        'qb_system_name = qemu-system-aarch64',
        '',
      ].join('\n'),
    );
    const rec = await importImage(dir, { store });
    expect([rec.id, rec.arch, rec.machine, rec.board]).toEqual([
      'core-image-minimal-qemuarm64.rootfs',
      'aarch64',
      'qemuarm64',
      'virt',
    ]);
    expect(rec.files.map((f) => [f.role, f.name])).toEqual([
      ['kernel', 'Image'],
      ['rootfs', 'core-image-minimal-qemuarm64.rootfs.ext4'],
      ['qemuboot', 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'],
    ]);
    expect(rec.sha256).toBe(rawSha);
    const conf = fs.readFileSync(
      path.join(rec.deployDir!, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'),
      'utf8',
    );
    expect(conf).toContain('qb_default_fstype = ext4\n');
  });

  it('keeps one copy of shared files and frees blobs by reference count', async () => {
    const store = freshStore();
    const dir = fs.mkdtempSync(path.join(work, 'share-'));
    fs.writeFileSync(path.join(dir, 'Image-qemuarm64.bin'), arm64Image());
    for (const n of ['a', 'b'])
      execFileSync('mke2fs', [
        '-q',
        '-t',
        'ext4',
        '-F',
        '-L',
        n,
        path.join(dir, `${n}-qemuarm64.ext4`),
        '8M',
      ]);
    const a = await importImage(path.join(dir, 'a-qemuarm64.ext4'), { store });
    const b = await importImage(path.join(dir, 'b-qemuarm64.ext4'), { store });
    const kernelSha = sha(arm64Image());
    expect((await store.refCounts()).get(kernelSha)).toBe(2);
    const u1 = await store.usage();
    expect(u1.images).toBe(2);
    expect(u1.blobs).toBe(5); // one kernel, two rootfs, two confs
    const freed = await store.removeImage(a.id);
    expect(freed).toBe((8 << 20) + a.files.find((f) => f.role === 'qemuboot')!.sizeBytes);
    expect(fs.existsSync(store.blobPath(kernelSha))).toBe(true);
    expect(fs.existsSync(a.deployDir!)).toBe(false);
    await store.removeImage(b.id);
    expect(fs.existsSync(store.blobPath(kernelSha))).toBe(false);
    expect(await store.usage()).toEqual({ images: 0, blobs: 0, bytes: 0, partialBytes: 0 });
    await expect(store.removeImage(b.id)).rejects.toThrow(`no stored image called "${b.id}"`);
  });
});

describe('kernelArch', () => {
  it('reads the arm64 Image, bzImage, zImage and RISC-V headers', () => {
    expect(kernelArch(arm64Image())).toEqual({ arch: 'aarch64', format: 'arm64-image', gzipped: false });
    expect(kernelArch(bzImage())).toEqual({ arch: 'x86_64', format: 'bzimage', gzipped: false });
    const z = Buffer.alloc(4096);
    z.writeUInt32LE(0x016f2818, 0x24);
    expect(kernelArch(z)?.arch).toBe('arm');
    const rv = Buffer.alloc(4096);
    rv.write('RISCV\0\0\0', 0x30, 'latin1');
    rv.write('RSC\x05', 0x38, 'latin1');
    expect(kernelArch(rv)?.arch).toBe('riscv64');
    expect(kernelArch(Buffer.alloc(4096))).toBeNull();
  });

  it('looks inside a gzipped Image (Raspberry Pi OS ships kernel8.img so)', () => {
    const gz = zlib.gzipSync(arm64Image());
    expect(kernelArch(gz.subarray(0, 64 * 1024))).toEqual({
      arch: 'aarch64',
      format: 'arm64-image',
      gzipped: true,
    });
  });

  const elfArch =
    process.platform === 'linux'
      ? { x64: 'x86_64', arm64: 'aarch64' }[process.arch as 'x64' | 'arm64']
      : undefined;
  if (!elfArch)
    console.log(
      `ELF check skipped: node is not a Linux x64/arm64 ELF here (${process.platform}/${process.arch})`,
    );
  it.skipIf(!elfArch)("reads an ELF's e_machine from a real binary on this host (node itself)", () => {
    const self = fs.readFileSync(process.execPath).subarray(0, 4096);
    expect(kernelArch(self)).toEqual({ arch: elfArch, format: 'elf', gzipped: false });
  });
});
