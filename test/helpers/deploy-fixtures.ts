// Small but real Yocto-style deploy directories for tests: qemuboot.conf files written the
// way oe-core's qemuboot.bbclass writes them (configparser output: sorted lower-case keys),
// kernels with the right magic numbers, ext4 superblocks and MBR partition tables that are
// valid or deliberately truncated. Files are sparse, so a "64 MiB" disk costs nothing.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

/** Removes every directory tempDir() made (call it from afterAll). */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A fresh directory under the system temp dir; removeTempDirs() deletes it. */
export function tempDir(prefix = 'stacklab-test-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** An arm64 kernel Image header ("ARM\x64" at 0x38). */
export function arm64Image(size = 64 * 1024): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(0x14000010, 0); // b +64 (code0), as real Images start
  b.writeBigUInt64LE(0x80000n, 8); // text_offset
  b.writeBigUInt64LE(BigInt(size), 16); // image_size
  b.write('ARM\x64', 0x38, 'latin1');
  return b;
}

/** An x86 bzImage header ("HdrS" at 0x202, boot protocol 2.15, 64-bit kernel). */
export function bzImage(size = 64 * 1024, is64 = true): Buffer {
  const b = Buffer.alloc(size);
  b[0x1f1] = 4; // setup_sects
  b.writeUInt16LE(0xaa55, 0x1fe);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206);
  b[0x211] = 0x01; // loadflags: LOADED_HIGH
  b.writeUInt32LE(0x100000, 0x214); // code32_start
  b.writeUInt32LE(0x7fffffff, 0x22c); // initrd_addr_max
  b.writeUInt32LE(0x200000, 0x230); // kernel_alignment
  b[0x234] = 1; // relocatable_kernel
  b.writeUInt16LE(is64 ? 0x1 : 0x0, 0x236); // xloadflags: XLF_KERNEL_64
  b.writeUInt32LE(2048, 0x238); // cmdline_size
  return b;
}

/**
 * A minimal but valid flattened device tree: a root node with #address-cells and
 * #size-cells, which is all QEMU's Arm loader needs before it adds /memory and /chosen.
 */
export function dtbBlob(): Buffer {
  const strings = Buffer.from('#address-cells\0#size-cells\0', 'latin1');
  const words: number[] = [];
  const prop = (nameoff: number, value: number) => words.push(3, 4, nameoff, value);
  words.push(1, 0); // FDT_BEGIN_NODE, name "" (padded to 4 bytes)
  prop(0, 1); // #address-cells = <1>
  prop(15, 1); // #size-cells = <1>
  words.push(2, 9); // FDT_END_NODE, FDT_END
  const struct = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => {
    struct.writeUInt32BE(w, i * 4);
  });
  const rsvmap = Buffer.alloc(16);
  const header = Buffer.alloc(40);
  const offRsv = 40;
  const offStruct = offRsv + rsvmap.length;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  [0xd00dfeed, total, offStruct, offStrings, offRsv, 17, 16, 0, strings.length, struct.length].forEach(
    (v, i) => {
      header.writeUInt32BE(v, i * 4);
    },
  );
  return Buffer.concat([header, rsvmap, struct, strings]);
}

/** Writes `head` and then makes the file exactly `size` bytes long (sparse). */
export function writeSparse(file: string, head: Buffer, size: number): void {
  writeFileSync(file, head.subarray(0, Math.min(head.length, size)));
  truncateSync(file, size);
}

/** An ext4 superblock describing `blocks` blocks of 1 KiB; the file is `fileBytes` long. */
export function writeExt4(file: string, blocks: number, fileBytes = blocks * 1024): void {
  const head = Buffer.alloc(2048);
  const sb = 1024;
  head.writeUInt32LE(blocks >> 2, sb + 0); // inodes
  head.writeUInt32LE(blocks, sb + 4); // s_blocks_count_lo
  head.writeUInt32LE(1, sb + 20); // s_first_data_block
  head.writeUInt32LE(0, sb + 24); // s_log_block_size: 1 KiB
  head.writeUInt16LE(0xef53, sb + 56);
  head.writeUInt32LE(0x4, sb + 0x5c); // compat: has_journal
  head.writeUInt32LE(0x2 | 0x40, sb + 0x60); // incompat: filetype, extents
  writeSparse(file, head, fileBytes);
}

/** An SD card / wic image: MBR with a FAT boot partition and a Linux root partition. */
export function writeSdImage(file: string, fileBytes: number, rootSectors?: number): void {
  const head = Buffer.alloc(512);
  const entry = (i: number, type: number, start: number, count: number) => {
    const e = 446 + i * 16;
    head[e + 4] = type;
    head.writeUInt32LE(start, e + 8);
    head.writeUInt32LE(count, e + 12);
  };
  entry(0, 0x0c, 8192, 8192); // 4 MiB aligned vfat "boot"
  entry(1, 0x83, 16384, rootSectors ?? fileBytes / 512 - 16384);
  head[510] = 0x55;
  head[511] = 0xaa;
  writeSparse(file, head, fileBytes);
}

// ---- qemuboot.conf texts, as oe-core writes them ----------------------------------------

const NATIVE = `staging_bindir_native = ../../../work/x86_64-linux/qemu-helper-native/1.0/recipe-sysroot-native/usr/bin/
staging_dir_host = ../../../work/MACHINE-poky-linux/core-image-minimal/1.0/recipe-sysroot
staging_dir_native = ../../../work/MACHINE-poky-linux/core-image-minimal/1.0/recipe-sysroot-native`;

export const STAMP = '20240520094853';

/** scarthgap (5.0) core-image-minimal for qemuarm64: `.rootfs` in the link names. */
export function scarthgapQemuarm64Conf(
  kernel = `Image--6.6.23+git0+e7d36d4f59-r0-qemuarm64-${STAMP}.bin`,
): string {
  return `[config_bsp]
deploy_dir_image = .
image_link_name = core-image-minimal-qemuarm64.rootfs
image_name = core-image-minimal-qemuarm64.rootfs-${STAMP}
kernel_image_bin_ext = .bin
kernel_image_name = Image--6.6.23+git0+e7d36d4f59-r0-qemuarm64-${STAMP}
kernel_imagetype = Image
machine = qemuarm64
qb_cmdline_ip_slirp = ip=dhcp
qb_cmdline_ip_tap = ip=192.168.7.@CLIENT@::192.168.7.@GATEWAY@:255.255.255.0::eth0:off:8.8.8.8 net.ifnames=0
qb_cpu = -cpu cortex-a57
qb_cpu_kvm = -cpu host -machine gic-version=3
qb_default_fstype = ext4
qb_default_kernel = ${kernel}
qb_drive_type = /dev/sd
qb_graphics = -device virtio-gpu-pci
qb_kernel_cmdline_append =  swiotlb=0
qb_machine = -machine virt
qb_mem = -m 256
qb_network_device = -device virtio-net-pci,netdev=net0,mac=@MAC@
qb_nfsrootfs_extra_opt = 
qb_no_pni = net.ifnames=0
qb_opt_append = -device qemu-xhci -device usb-tablet -device usb-kbd
qb_rng = -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0
qb_rootfs_extra_opt = 
qb_rootfs_opt = -drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-pci,drive=disk0
qb_serial_opt = -device virtio-serial-pci -chardev null,id=virtcon -device virtconsole,chardev=virtcon
qb_smp = -smp 4
qb_system_name = qemu-system-aarch64
qb_tap_nameserver = 8.8.8.8
qb_tap_opt = -netdev tap,id=net0,ifname=@TAP@,script=no,downscript=no
qb_tcpserial_opt = -device virtio-serial-pci -chardev socket,id=virtcon,port=@PORT@,host=127.0.0.1,nodelay=on -device virtconsole,chardev=virtcon
serial_consoles = 115200;ttyAMA0 115200;hvc0
${NATIVE.replaceAll('MACHINE', 'qemuarm64')}
tune_arch = aarch64
uninative_loader = ../../../sysroots-uninative/x86_64-linux/lib/ld-linux-x86-64.so.2

`;
}

/** kirkstone (4.0) core-image-minimal for qemuarm64: virtio-mmio devices, no swiotlb. */
export function kirkstoneQemuarm64Conf(): string {
  return `[config_bsp]
deploy_dir_image = .
image_link_name = core-image-minimal-qemuarm64
image_name = core-image-minimal-qemuarm64-20220416133845
kernel_imagetype = Image
machine = qemuarm64
qb_cmdline_ip_slirp = ip=dhcp
qb_cmdline_ip_tap = ip=192.168.7.@CLIENT@::192.168.7.@GATEWAY@:255.255.255.0::eth0:off:8.8.8.8
qb_cpu = -cpu cortex-a57
qb_cpu_kvm = -cpu host -machine gic-version=3
qb_default_fstype = ext4
qb_default_kernel = Image--5.15.32+git0+4f2d4d8dd0_2b0c5c8b1b-r0-qemuarm64-20220416133845.bin
qb_drive_type = /dev/sd
qb_graphics = -device virtio-gpu-pci
qb_machine = -machine virt
qb_mem = -m 256
qb_network_device = -device virtio-net-device,netdev=net0,mac=@MAC@
qb_opt_append = -device qemu-xhci -device usb-tablet -device usb-kbd
qb_rng = -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0
qb_rootfs_extra_opt = 
qb_rootfs_opt = -drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-device,drive=disk0
qb_serial_opt = -device virtio-serial-device -chardev null,id=virtcon -device virtconsole,chardev=virtcon
qb_smp = -smp 4
qb_system_name = qemu-system-aarch64
qb_tap_opt = -netdev tap,id=net0,ifname=@TAP@,script=no,downscript=no
qb_tcpserial_opt = -device virtio-serial-device -chardev socket,id=virtcon,port=@PORT@,host=127.0.0.1 -device virtconsole,chardev=virtcon
serial_consoles = 115200;ttyAMA0 115200;hvc0
${NATIVE.replaceAll('MACHINE', 'qemuarm64')}
tune_arch = aarch64

`;
}

/** scarthgap (5.0) core-image-minimal for qemux86-64: no qb_rootfs_opt, no qb_machine. */
export function scarthgapQemux86Conf(): string {
  return `[config_bsp]
deploy_dir_image = .
image_link_name = core-image-minimal-qemux86-64.rootfs
image_name = core-image-minimal-qemux86-64.rootfs-${STAMP}
kernel_imagetype = bzImage
machine = qemux86-64
qb_audio_drv = alsa
qb_audio_opt = -device AC97
qb_cmdline_ip_slirp = ip=dhcp
qb_cmdline_ip_tap = ip=192.168.7.@CLIENT@::192.168.7.@GATEWAY@:255.255.255.0::eth0:off:8.8.8.8 net.ifnames=0
qb_cpu = -cpu IvyBridge -machine q35,i8042=off
qb_cpu_kvm = -cpu IvyBridge -machine q35,i8042=off
qb_default_fstype = ext4
qb_default_kernel = bzImage--6.6.23+git0+e7d36d4f59-r0-qemux86-64-${STAMP}.bin
qb_drive_type = /dev/sd
qb_graphics = 
qb_kernel_cmdline_append = oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 swiotlb=0
qb_mem = -m 256
qb_network_device = -device virtio-net-pci,netdev=net0,mac=@MAC@
qb_opt_append = -usb -device usb-tablet -usb -device usb-kbd
qb_rng = -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0
qb_rootfs_extra_opt = 
qb_serial_opt = -serial mon:stdio -serial null
qb_smp = -smp 4
qb_system_name = qemu-system-x86_64
qb_tap_opt = -netdev tap,id=net0,ifname=@TAP@,script=no,downscript=no
qb_tcpserial_opt = -device virtio-serial-pci -chardev socket,id=virtcon,port=@PORT@,host=127.0.0.1,nodelay=on -device virtconsole,chardev=virtcon
serial_consoles = 115200;ttyS0 115200;ttyS1
${NATIVE.replaceAll('MACHINE', 'qemux86_64')}
tune_arch = x86_64

`;
}

/** kirkstone (4.0) core-image-minimal for qemux86-64. */
export function kirkstoneQemux86Conf(): string {
  return `[config_bsp]
deploy_dir_image = .
image_link_name = core-image-minimal-qemux86-64
image_name = core-image-minimal-qemux86-64-20220416133845
kernel_imagetype = bzImage
machine = qemux86-64
qb_audio_drv = alsa
qb_audio_opt = -device AC97
qb_cmdline_ip_slirp = ip=dhcp
qb_cpu = -cpu IvyBridge -machine q35
qb_cpu_kvm = -cpu IvyBridge -machine q35
qb_default_fstype = ext4
qb_default_kernel = bzImage--5.15.32+git0+4f2d4d8dd0_2b0c5c8b1b-r0-qemux86-64-20220416133845.bin
qb_drive_type = /dev/sd
qb_kernel_cmdline_append = oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1
qb_mem = -m 256
qb_network_device = -device virtio-net-pci,netdev=net0,mac=@MAC@
qb_opt_append = -usb -device usb-tablet
qb_rng = -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0
qb_serial_opt = -serial mon:stdio -serial null
qb_smp = -smp 4
qb_system_name = qemu-system-x86_64
serial_consoles = 115200;ttyS0 115200;ttyS1
tune_arch = x86_64

`;
}

export interface Fixture {
  dir: string;
  conf: string;
  kernel: string;
  rootfs: string;
}

/**
 * A deploy dir for a scarthgap qemuarm64 image, with the real (timestamped) files and the
 * link names as symlinks, as bitbake leaves them. `parent` may contain spaces and quotes.
 */
export function scarthgapArm64Deploy(
  parent: string,
  opts: { rootfsBlocks?: number; kernel?: Buffer } = {},
): Fixture {
  const dir = path.join(parent, 'deploy', 'images', 'qemuarm64');
  mkdirSync(dir, { recursive: true });
  const kernelReal = `Image--6.6.23+git0+e7d36d4f59-r0-qemuarm64-${STAMP}.bin`;
  writeFileSync(path.join(dir, kernelReal), opts.kernel ?? arm64Image());
  symlinkSync(kernelReal, path.join(dir, 'Image-qemuarm64.bin'));
  symlinkSync(kernelReal, path.join(dir, 'Image'));
  const rootReal = `core-image-minimal-qemuarm64.rootfs-${STAMP}.ext4`;
  writeExt4(path.join(dir, rootReal), opts.rootfsBlocks ?? 32 * 1024);
  symlinkSync(rootReal, path.join(dir, 'core-image-minimal-qemuarm64.rootfs.ext4'));
  const confReal = `core-image-minimal-qemuarm64.rootfs-${STAMP}.qemuboot.conf`;
  writeFileSync(path.join(dir, confReal), scarthgapQemuarm64Conf(kernelReal));
  symlinkSync(confReal, path.join(dir, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'));
  return {
    dir,
    conf: path.join(dir, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'),
    kernel: path.join(dir, kernelReal),
    rootfs: path.join(dir, 'core-image-minimal-qemuarm64.rootfs.ext4'),
  };
}

export type FixtureFile =
  | Buffer
  | string
  | { ext4Blocks: number; fileBytes?: number }
  | { sdBytes: number; rootSectors?: number };

/** Writes files into `dir` (created); strings are text, buffers bytes, the objects disk images. */
export function writeDeploy(dir: string, files: Record<string, FixtureFile>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, f] of Object.entries(files)) {
    const p = path.join(dir, name);
    if (typeof f === 'string' || Buffer.isBuffer(f)) writeFileSync(p, f);
    else if ('ext4Blocks' in f) writeExt4(p, f.ext4Blocks, f.fileBytes);
    else writeSdImage(p, f.sdBytes, f.rootSectors);
  }
  return dir;
}

/** Deploy dirs for the four reference confs (link names only, as a download would have). */
export function referenceDeploy(
  parent: string,
  which: 'scarthgap-qemuarm64' | 'kirkstone-qemuarm64' | 'scarthgap-qemux86-64' | 'kirkstone-qemux86-64',
): Fixture {
  const dir = path.join(parent, which);
  const arm = which.endsWith('qemuarm64');
  const scarthgap = which.startsWith('scarthgap');
  const machine = arm ? 'qemuarm64' : 'qemux86-64';
  const image = `core-image-minimal-${machine}${scarthgap ? '.rootfs' : ''}`;
  const conf = arm
    ? scarthgap
      ? scarthgapQemuarm64Conf()
      : kirkstoneQemuarm64Conf()
    : scarthgap
      ? scarthgapQemux86Conf()
      : kirkstoneQemux86Conf();
  // Only the stable kernel name: runqemu then falls back from qb_default_kernel to Image*/bzImage*.
  const kernelName = arm ? 'Image-qemuarm64.bin' : 'bzImage-qemux86-64.bin';
  writeDeploy(dir, {
    [`${image}.qemuboot.conf`]: conf,
    [kernelName]: arm ? arm64Image() : bzImage(),
    [`${image}.ext4`]: { ext4Blocks: 16 * 1024 },
  });
  return {
    dir,
    conf: path.join(dir, `${image}.qemuboot.conf`),
    kernel: path.join(dir, kernelName),
    rootfs: path.join(dir, `${image}.ext4`),
  };
}
