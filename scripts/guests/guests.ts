// The four demo guests: what each one is, the drivers it needs to reach its root disk, and the
// qemuboot.conf values runqemu (and Stacklab's engine) boot it with.
export const IMAGE = 'stacklab-demo';

export type Layout = 'qemu' | 'raspberrypi';

export interface GuestSpec {
  name: string; // deploy directory and hostname
  machine: string; // Yocto MACHINE
  arch: 'aarch64' | 'x86_64'; // uname -m
  debArch: 'arm64' | 'amd64';
  board: string; // QEMU -machine
  description: string;
  layout: Layout;
  kernelFile: string; // the kernel's name in the deploy dir
  kernelImageType: string;
  /**
   * A config fragment in scripts/guests/kernel/: the kernel is built from Debian's
   * linux-source with it (kernel-build.ts) instead of taken from Debian's linux-image package.
   */
  kernelBuild?: string;
  /** Serial ports that get a login prompt (each only if it exists when init starts). */
  consoles: Array<{ tty: string; baud: number }>;
  /** Empty: no initramfs, the kernel mounts the root disk itself. */
  initramfsModules: string[];
  /** Modules installed into the root file system and loaded by rcS. */
  rootfsModules: string[];
  withHostQemu: boolean;
  extraDirs: string[];
  freeMiB: number;
  qemuboot: Record<string, string>;
}

export const rootfsBase = (machine: string) => `${IMAGE}-${machine}.rootfs`;
export const initramfsName = (machine: string) => `${IMAGE}-initramfs-${machine}.cpio.gz`;

// ext4 needs crc32c through the crypto API (a soft dependency modinfo does not list).
const VIRTIO_DISK = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];

function qemuarm64(name: string, memMiB: number, extra: Partial<GuestSpec>): GuestSpec {
  const machine = 'qemuarm64';
  return {
    name,
    machine,
    arch: 'aarch64',
    debArch: 'arm64',
    board: 'virt',
    description: '',
    layout: 'qemu',
    kernelFile: `Image-${machine}.bin`,
    kernelImageType: 'Image',
    consoles: [
      { tty: 'ttyAMA0', baud: 115200 },
      { tty: 'hvc0', baud: 115200 },
    ],
    initramfsModules: VIRTIO_DISK,
    // virtio-serial: hvc0 and the named ports a supervisor can add next to the serial console.
    rootfsModules: ['virtio_console'],
    withHostQemu: false,
    extraDirs: [],
    freeMiB: 16,
    qemuboot: {
      qb_system_name: 'qemu-system-aarch64',
      qb_machine: '-machine virt',
      // cortex-a57, not max: max emulates pointer authentication, which makes TCG ~4x slower.
      qb_cpu: '-cpu cortex-a57',
      qb_cpu_kvm: '-cpu host -machine gic-version=3',
      qb_smp: '-smp 2',
      qb_mem: `-m ${memMiB}`,
      qb_default_kernel: `Image-${machine}.bin`,
      qb_default_fstype: 'ext4',
      qb_kernel_root: '/dev/vda',
      qb_drive_type: '/dev/vd',
      qb_rootfs_opt: '-drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-pci,drive=disk0',
      qb_network_device: '-device virtio-net-pci,netdev=net0,mac=@MAC@',
      qb_tap_opt: '-netdev tap,id=net0,ifname=@TAP@,script=no,downscript=no',
      qb_cmdline_ip_slirp: 'ip=dhcp',
      qb_cmdline_ip_tap: 'ip=192.168.7.@CLIENT@::192.168.7.@GATEWAY@:255.255.255.0::eth0:off:8.8.8.8',
      qb_serial_opt: '-device virtio-serial-pci -chardev null,id=virtcon -device virtconsole,chardev=virtcon',
      qb_tcpserial_opt:
        '-device virtio-serial-pci -chardev socket,id=virtcon,port=@PORT@,host=127.0.0.1,nodelay=on -device virtconsole,chardev=virtcon',
      qb_rng: '-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0',
      qb_opt_append: `-initrd @DEPLOY_DIR_IMAGE@/${initramfsName(machine)}`,
      qb_kernel_cmdline_append: 'swiotlb=0',
      serial_consoles: '115200;ttyAMA0 115200;hvc0',
      machine,
      kernel_imagetype: 'Image',
      image_link_name: rootfsBase(machine),
      image_name: rootfsBase(machine),
      deploy_dir_image: '.',
    },
    ...extra,
  };
}

const x86: GuestSpec = {
  name: 'demo-qemux86-64',
  machine: 'qemux86-64',
  arch: 'x86_64',
  debArch: 'amd64',
  board: 'q35',
  description:
    'x86-64 PC (q35): kernel built from Debian’s linux-source with its drivers built in, busybox userspace, ext4 root on virtio',
  layout: 'qemu',
  kernelFile: 'bzImage-qemux86-64.bin',
  kernelImageType: 'bzImage',
  // Like linux-yocto for qemux86-64, and unlike Debian's generic kernel: virtio, ext4 and the
  // consoles built in, little else. Nested inside the arm64 guest it reaches a login prompt in
  // 21-29 s instead of 79-93 s (interleaved runs, docs/ARCHITECTURE.md "Nested boot time").
  kernelBuild: 'qemux86-64.config',
  // Only ttyS0 gets a getty: ttyS1 (second in serial_consoles, as Yocto lists it) is not wired by default.
  consoles: [{ tty: 'ttyS0', baud: 115200 }],
  initramfsModules: [],
  rootfsModules: [],
  withHostQemu: false,
  extraDirs: [],
  freeMiB: 16,
  qemuboot: {
    qb_system_name: 'qemu-system-x86_64',
    // q35, as Yocto's qemux86-64: measured here under TCG it costs the same CPU time to a shell as
    // -machine pc (8.6-9.2 s vs 8.3-10.7 s of QEMU CPU time). microvm boots ~0.3-0.9 s sooner
    // but has no PCI, so runqemu's default `-drive if=virtio` and virtio-*-pci would fail; the
    // stack agent uses it for nested boots, where it buys far more.
    qb_machine: '-machine q35,i8042=off',
    qb_cpu: '-cpu IvyBridge -machine q35,i8042=off',
    qb_cpu_kvm: '-cpu host -machine q35,i8042=off',
    qb_smp: '-smp 2',
    qb_mem: '-m 512',
    qb_default_kernel: 'bzImage-qemux86-64.bin',
    qb_default_fstype: 'ext4',
    qb_kernel_root: '/dev/vda',
    qb_drive_type: '/dev/vd',
    qb_network_device: '-device virtio-net-pci,netdev=net0,mac=@MAC@',
    qb_tap_opt: '-netdev tap,id=net0,ifname=@TAP@,script=no,downscript=no',
    qb_cmdline_ip_slirp: 'ip=dhcp',
    qb_cmdline_ip_tap: 'ip=192.168.7.@CLIENT@::192.168.7.@GATEWAY@:255.255.255.0::eth0:off:8.8.8.8',
    qb_rng: '-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0',
    qb_kernel_cmdline_append:
      'oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 swiotlb=0',
    serial_consoles: '115200;ttyS0 115200;ttyS1',
    machine: 'qemux86-64',
    kernel_imagetype: 'bzImage',
    image_link_name: rootfsBase('qemux86-64'),
    image_name: rootfsBase('qemux86-64'),
    deploy_dir_image: '.',
  },
};

export const RPI_DTB = 'bcm2837-rpi-3-b.dtb';
/** Debian's Pi 3 device tree gives the PL011 (ttyAMA0) to Bluetooth; this node is removed so it is a console. */
export const RPI_BT_NODE = '/soc/serial@7e201000/bluetooth';
export const RPI_CMDLINE = 'console=ttyAMA0,115200 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait';

const rpi3: GuestSpec = {
  name: 'demo-raspberrypi3-64',
  machine: 'raspberrypi3-64',
  arch: 'aarch64',
  debArch: 'arm64',
  board: 'raspi3b',
  description: 'Raspberry Pi 3 B (raspi3b): SD card image with FAT boot and ext4 root, like meta-raspberrypi',
  layout: 'raspberrypi',
  kernelFile: 'Image',
  kernelImageType: 'Image',
  consoles: [{ tty: 'ttyAMA0', baud: 115200 }],
  // QEMU routes the SD card to the SDHOST controller once Linux muxes the pins to it.
  initramfsModules: ['bcm2835', 'crc32c_generic', 'ext4'],
  rootfsModules: [],
  withHostQemu: false,
  extraDirs: [],
  freeMiB: 16,
  qemuboot: {
    qb_system_name: 'qemu-system-aarch64',
    qb_machine: '-machine raspi3b',
    qb_cpu: '-cpu cortex-a53',
    // raspi3b always has 4 cores and exactly 1 GiB.
    qb_smp: '-smp 4',
    qb_mem: '-m 1G',
    qb_default_kernel: 'Image',
    qb_dtb: RPI_DTB,
    qb_default_fstype: 'wic',
    qb_kernel_root: '/dev/mmcblk0p2',
    qb_rootfs_opt: '-drive if=sd,format=raw,file=@ROOTFS@',
    qb_network_device: '-device usb-net,netdev=net0,mac=@MAC@',
    qb_opt_append: `-initrd @DEPLOY_DIR_IMAGE@/${initramfsName('raspberrypi3-64')}`,
    qb_kernel_cmdline_append: 'rootfstype=ext4 rootwait',
    serial_consoles: '115200;ttyAMA0',
    machine: 'raspberrypi3-64',
    kernel_imagetype: 'Image',
    image_link_name: rootfsBase('raspberrypi3-64'),
    image_name: rootfsBase('raspberrypi3-64'),
    deploy_dir_image: '.',
  },
};

export const GUESTS: readonly GuestSpec[] = [
  qemuarm64('demo-qemuarm64', 512, {
    description: 'Arm64 virt board (qemuarm64): Debian arm64 kernel, busybox userspace, ext4 root on virtio',
  }),
  x86,
  rpi3,
  qemuarm64('demo-qemuarm64-host', 2048, {
    description:
      'qemuarm64 guest carrying Debian’s arm64 qemu-system-x86_64, for running a nested x86-64 guest',
    // virtio-serial for the nested guest's consoles and monitors; 9p to share files into it.
    rootfsModules: ['virtio_console', '9pnet_virtio', '9p'],
    withHostQemu: true,
    extraDirs: ['var/lib/virt/images'],
    freeMiB: 64,
  }),
];
