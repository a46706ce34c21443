// Built-in board profiles, for images that come without a qemuboot.conf (a Raspberry Pi SD
// card image, a bare kernel + ext4). Each profile is written as the qemuboot.conf Yocto
// would have produced, so both kinds of image go through the same descriptor and argv code.
// The values for the qemu machines follow oe-core (scarthgap); the Pi ones follow field
// notes §3 and QEMU's raspi documentation.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo, QemuVersion } from '../qemu/discovery.ts';
import type { QemuBoot, QemuBootKey } from './qemuboot.ts';
import { inspectRootfs } from './rootfs-format.ts';

export type BoardId = 'qemuarm64' | 'qemux86-64' | 'raspberrypi3-64' | 'raspberrypi4-64';

export interface BoardProfile {
  /** The Yocto MACHINE name. */
  id: BoardId;
  title: string;
  /** QEMU -machine value. */
  board: string;
  systemBinary: string;
  /** Lowest QEMU that has the board. */
  minQemu?: { major: number; minor: number };
  /** Kernel file names to look for, best first; a trailing * matches a prefix. */
  kernels: string[];
  dtbs: string[];
  /** Root filesystem / disk image extensions, best first. */
  rootfsTypes: string[];
  /** The board's disk is an SD card, whose size QEMU wants to be a power of two. */
  sdCard: boolean;
  /** RAM the emulated board always has (QEMU refuses other sizes). */
  fixedMemMiB?: number;
  /** CPU count the emulated board always has. */
  fixedSmp?: number;
  /** Root device for a partitioned image ("/dev/mmcblk0p") and for a bare filesystem ("/dev/mmcblk0"). */
  rootDevice: { partitioned: string; bare: string };
  /** Static qemuboot.conf values; the kernel, dtb and rootfs are filled in from the deploy dir. */
  qb: Partial<Record<QemuBootKey, string>>;
  /** What the emulated board lacks compared with the real one, as sentences for the UI. */
  lacks: string[];
}

const PI_COMMON_LACKS = [
  "No Wi-Fi or Bluetooth: QEMU does not emulate the Pi's wireless chip.",
  'No GPU acceleration: the VideoCore GPU is not emulated, only a plain framebuffer.',
  'The Pi firmware (start.elf, config.txt, overlays) does not run: Stacklab passes the kernel, device tree and command line itself.',
];

export const BOARD_PROFILES: Record<BoardId, BoardProfile> = {
  qemuarm64: {
    id: 'qemuarm64',
    title: 'Generic 64-bit Arm (QEMU virt)',
    board: 'virt',
    systemBinary: 'qemu-system-aarch64',
    kernels: ['Image', 'Image-qemuarm64.bin', 'Image*'],
    dtbs: [],
    rootfsTypes: ['ext4', 'ext3', 'ext2'],
    sdCard: false,
    rootDevice: { partitioned: '/dev/vda', bare: '/dev/vda' },
    qb: {
      qb_system_name: 'qemu-system-aarch64',
      qb_machine: '-machine virt',
      // Not -cpu max: pointer-authentication emulation makes it ~4x slower under TCG (field notes §9).
      qb_cpu: '-cpu cortex-a57',
      qb_cpu_kvm: '-cpu host -machine gic-version=3',
      qb_smp: '-smp 4',
      qb_mem: '-m 256',
      qb_kernel_cmdline_append: 'swiotlb=0',
      qb_rootfs_opt: '-drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-pci,drive=disk0',
      qb_network_device: '-device virtio-net-pci,netdev=net0,mac=@MAC@',
      qb_serial_opt: '-device virtio-serial-pci -chardev null,id=virtcon -device virtconsole,chardev=virtcon',
      qb_rng: '-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0',
      qb_cmdline_ip_slirp: 'ip=dhcp',
      tune_arch: 'aarch64',
      serial_consoles: '115200;ttyAMA0 115200;hvc0',
    },
    lacks: ["This is QEMU's generic virtual board, not real hardware: there is no GPIO, I2C or SPI."],
  },
  'qemux86-64': {
    id: 'qemux86-64',
    title: 'Generic x86-64 PC (QEMU q35)',
    board: 'q35',
    systemBinary: 'qemu-system-x86_64',
    kernels: ['bzImage', 'bzImage-qemux86-64.bin', 'bzImage*'],
    dtbs: [],
    rootfsTypes: ['ext4', 'ext3', 'ext2'],
    sdCard: false,
    rootDevice: { partitioned: '/dev/vda', bare: '/dev/vda' },
    qb: {
      qb_system_name: 'qemu-system-x86_64',
      // Skylake-Client (as oe-core from 5.3) runs images tuned for x86-64-v3 and older ones alike.
      qb_cpu: '-cpu Skylake-Client -machine q35,i8042=off',
      qb_cpu_kvm: '-cpu Skylake-Client -machine q35,i8042=off',
      qb_smp: '-smp 4',
      qb_mem: '-m 256',
      qb_kernel_cmdline_append:
        'oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 swiotlb=0',
      qb_network_device: '-device virtio-net-pci,netdev=net0,mac=@MAC@',
      qb_serial_opt: '-serial mon:stdio -serial null',
      qb_rng: '-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0',
      qb_cmdline_ip_slirp: 'ip=dhcp',
      tune_arch: 'x86_64',
      serial_consoles: '115200;ttyS0 115200;ttyS1',
    },
    lacks: ["This is QEMU's generic virtual PC, not a particular machine."],
  },
  'raspberrypi3-64': {
    id: 'raspberrypi3-64',
    title: 'Raspberry Pi 3 Model B (64-bit)',
    board: 'raspi3b',
    systemBinary: 'qemu-system-aarch64',
    kernels: ['kernel8.img', 'Image', 'Image-raspberrypi3-64.bin', 'Image*'],
    // The downstream (meta-raspberrypi) dtb first; Debian's mainline one also works (field notes §9).
    dtbs: [
      'bcm2710-rpi-3-b.dtb',
      'bcm2710-rpi-3-b-plus.dtb',
      'bcm2837-rpi-3-b.dtb',
      'bcm2837-rpi-3-b-plus.dtb',
    ],
    rootfsTypes: ['wic', 'img', 'sdimg', 'ext4', 'ext3'],
    sdCard: true,
    fixedMemMiB: 1024,
    fixedSmp: 4,
    rootDevice: { partitioned: '/dev/mmcblk0p', bare: '/dev/mmcblk0' },
    qb: {
      qb_system_name: 'qemu-system-aarch64',
      qb_machine: '-machine raspi3b',
      qb_mem: '-m 1024',
      qb_rootfs_opt: '-drive if=sd,file=@ROOTFS@,format=raw',
      qb_fsinfo: 'wic:no-kernel-in-fs',
      // The board has no PCI, so no virtio devices: USB networking through the DWC2 controller.
      qb_network_device: '-device usb-net,netdev=net0,mac=@MAC@',
      qb_rng: '',
      qb_serial_opt: '',
      qb_cmdline_ip_slirp: 'ip=dhcp',
      tune_arch: 'aarch64',
      serial_consoles: '115200;ttyAMA0',
    },
    lacks: [
      ...PI_COMMON_LACKS,
      "Networking is a USB network adapter (usb-net), not the Pi's own Ethernet chip; the guest kernel needs the dwc2 and USB-Ethernet drivers.",
      'RAM is fixed at 1 GiB and the CPU at 4 Cortex-A53 cores, as on the real board.',
      'No audio, PWM or camera.',
      'Powering off from inside the guest leaves the emulated board hanging; stop it from Stacklab instead.',
    ],
  },
  'raspberrypi4-64': {
    id: 'raspberrypi4-64',
    title: 'Raspberry Pi 4 Model B (64-bit)',
    board: 'raspi4b',
    systemBinary: 'qemu-system-aarch64',
    minQemu: { major: 9, minor: 0 },
    kernels: ['kernel8.img', 'Image', 'Image-raspberrypi4-64.bin', 'Image*'],
    dtbs: ['bcm2711-rpi-4-b.dtb'],
    rootfsTypes: ['wic', 'img', 'sdimg', 'ext4', 'ext3'],
    sdCard: false,
    fixedMemMiB: 2048,
    fixedSmp: 4,
    // meta-raspberrypi's own runqemu settings put the root disk on USB storage for raspi4b.
    rootDevice: { partitioned: '/dev/sda', bare: '/dev/sda' },
    qb: {
      qb_system_name: 'qemu-system-aarch64',
      qb_machine: '-machine raspi4b',
      qb_mem: '-m 2048',
      qb_rootfs_opt: '-drive id=disk0,file=@ROOTFS@,if=none,format=raw -device usb-storage,drive=disk0',
      qb_fsinfo: 'wic:no-kernel-in-fs',
      qb_kernel_cmdline_append: 'earlycon=pl011,mmio32,0xfe201000',
      qb_network_device: '-device usb-net,netdev=net0,mac=@MAC@',
      qb_rng: '',
      qb_serial_opt: '',
      qb_cmdline_ip_slirp: 'ip=dhcp',
      tune_arch: 'aarch64',
      serial_consoles: '115200;ttyAMA0',
    },
    lacks: [
      ...PI_COMMON_LACKS,
      'No PCIe: the USB 3 controller behind it, and so the four USB-A ports, are missing; only the DWC2 USB 2 controller is emulated.',
      'No Ethernet: the GENET controller is not emulated, so networking is a USB network adapter (usb-net) on the DWC2 controller.',
      'RAM is fixed at 2 GiB and the CPU at 4 Cortex-A72 cores.',
      'No audio, PWM or camera.',
    ],
  },
};

export function isBoardId(s: string): s is BoardId {
  return Object.hasOwn(BOARD_PROFILES, s);
}

/** The profile whose -machine value this is ("raspi3b" → raspberrypi3-64). */
export function profileForBoard(board: string): BoardProfile | undefined {
  return Object.values(BOARD_PROFILES).find((p) => p.board === board);
}

export type Availability = { ok: true } | { ok: false; why: string };

/** Whether this QEMU can emulate the profile's board, and if not, why in one line. */
export function boardAvailable(
  profile: BoardProfile,
  version: QemuVersion,
  machines: MachineInfo[],
): Availability {
  const min = profile.minQemu;
  if (min && (version.major < min.major || (version.major === min.major && version.minor < min.minor))) {
    return {
      ok: false,
      why: `${profile.board} needs QEMU ${min.major}.${min.minor} or newer; this QEMU is ${version.major}.${version.minor}`,
    };
  }
  if (machines.length > 0 && !machines.some((m) => m.name === profile.board || m.alias === profile.board)) {
    return {
      ok: false,
      why: `this ${profile.systemBinary} has no ${profile.board} board (it is not in -machine help)`,
    };
  }
  return { ok: true };
}

/** Guesses the board of a deploy dir without a qemuboot.conf from its file names. */
export function detectBoard(names: string[]): BoardId | undefined {
  const has = (re: RegExp) => names.some((n) => re.test(n));
  if (has(/raspberrypi4-64|^bcm2711-/)) return 'raspberrypi4-64';
  if (has(/raspberrypi3-64|^bcm2710-rpi-3|^bcm2837-rpi-3/)) return 'raspberrypi3-64';
  if (has(/qemuarm64/)) return 'qemuarm64';
  if (has(/qemux86-64/)) return 'qemux86-64';
  return undefined;
}

function pick(names: string[], candidates: string[]): string | undefined {
  for (const c of candidates) {
    if (c.endsWith('*')) {
      const prefix = c.slice(0, -1);
      const hit = names.filter((n) => n.startsWith(prefix)).sort()[0];
      if (hit) return hit;
    } else if (names.includes(c)) {
      return c;
    }
  }
  return undefined;
}

/**
 * The qemuboot.conf this profile amounts to for the files in `deployDir`: the kernel, dtb
 * and root filesystem found there plus the profile's fixed values.
 */
export async function profileToQemuboot(profile: BoardProfile, deployDir: string): Promise<QemuBoot> {
  const dir = path.resolve(deployDir);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new Error(`cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const kernel = pick(names, profile.kernels);
  if (!kernel) {
    throw new Error(`no kernel for ${profile.id} in ${dir} (looked for ${profile.kernels.join(', ')})`);
  }
  const dtb = profile.dtbs.length > 0 ? pick(names, profile.dtbs) : undefined;
  if (profile.dtbs.length > 0 && !dtb) {
    throw new Error(`no device tree for ${profile.id} in ${dir} (looked for ${profile.dtbs.join(', ')})`);
  }
  let rootfs: string | undefined;
  let fstype: string | undefined;
  // Pi kernels are called kernel*.img too; they are never the disk.
  const disks = names.filter((n) => n !== kernel && !/^kernel[\w-]*\.img$/.test(n));
  for (const t of profile.rootfsTypes) {
    rootfs = disks.find((n) => n.endsWith(`.${t}`));
    if (rootfs) {
      fstype = t;
      break;
    }
  }
  if (!rootfs || !fstype) {
    const packed = names.find((n) =>
      profile.rootfsTypes.some((t) => new RegExp(`\\.${t}\\.(zst|xz|bz2|gz)$`).test(n)),
    );
    throw new Error(
      packed
        ? `${packed} in ${dir} is compressed; unpack it first (or import it, and Stacklab unpacks it)`
        : `no disk image for ${profile.id} in ${dir} (looked for ${profile.rootfsTypes.map((t) => `*.${t}`).join(', ')})`,
    );
  }
  const info = await inspectRootfs(path.join(dir, rootfs));
  const partitioned = info.kind === 'mbr' || info.kind === 'gpt';
  const isPi = profile.board.startsWith('raspi');
  // wic SD images put the root filesystem in partition 2 (partition 1 is the FAT boot one).
  const root = partitioned
    ? `${profile.rootDevice.partitioned}${info.rootPartition ?? (isPi ? 2 : 1)}`
    : profile.rootDevice.bare;
  const values: Partial<Record<QemuBootKey, string>> = {
    ...profile.qb,
    machine: profile.id,
    deploy_dir_image: dir,
    qb_default_kernel: kernel,
    qb_default_fstype: fstype,
    image_link_name: rootfs.slice(0, -(fstype.length + 1)),
    // runqemu appends " rw" itself; SD cards and USB disks appear late, hence rootwait.
    qb_kernel_root: isPi ? `${root} rootwait` : root,
    ...(dtb ? { qb_dtb: dtb } : {}),
  };
  const raw: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) if (v !== undefined) raw[k] = v;
  return { ...values, file: '', dir, raw, lineOf: {} };
}
