// One table for the many names of each CPU architecture: what `uname -m` says, Docker
// platforms and image prefixes, Debian and Fedora package architectures, Yocto's TUNE_ARCH
// and MACHINE names, QEMU's binaries, and the ELF header fields that identify its programs.
// No Node imports: the renderer bundles this file too.

export type Endianness = 'little' | 'big';

export interface ArchNames {
  /** Canonical name: what `uname -m` prints on such a machine. */
  uname: string;
  docker: { platform: string; prefix: string };
  /** Debian's dpkg architecture; null where Debian has no port. */
  debian: string | null;
  /** Fedora's RPM architecture; null where Fedora has no port. */
  fedora: string | null;
  /** Yocto's TUNE_ARCH; null where Yocto has no machine for it. */
  yocto: string | null;
  qemuSystem: string;
  /** The user-mode emulator; Debian's qemu-user-static adds `-static`. */
  qemuUser: string;
  /** ELF e_machine (EM_*) of this architecture's programs. */
  elfMachine: number;
  elfClass: 32 | 64;
  endianness: Endianness;
  label: string;
}

interface Row extends ArchNames {
  /** Further names that mean this architecture (older uname values, tool spellings). */
  aliases: string[];
}

// ELF e_machine numbers from the System V ABI's registry.
const EM_386 = 3;
const EM_PPC64 = 21;
const EM_S390 = 22;
const EM_ARM = 40;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const EM_RISCV = 243;

// Order matters where names are shared: the first row claiming a name wins (so plain "arm"
// and qemu-arm mean armv7l, the 32-bit Arm most boards run today).
const ROWS: readonly Row[] = [
  {
    uname: 'aarch64',
    docker: { platform: 'linux/arm64/v8', prefix: 'arm64v8' },
    debian: 'arm64',
    fedora: 'aarch64',
    yocto: 'aarch64',
    qemuSystem: 'qemu-system-aarch64',
    qemuUser: 'qemu-aarch64',
    elfMachine: EM_AARCH64,
    elfClass: 64,
    endianness: 'little',
    label: '64-bit Arm',
    aliases: ['arm64', 'armv8', 'armv8-a', 'linux/arm64', 'arm64/v8'],
  },
  {
    uname: 'armv7l',
    docker: { platform: 'linux/arm/v7', prefix: 'arm32v7' },
    debian: 'armhf',
    fedora: 'armv7hl',
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elfMachine: EM_ARM,
    elfClass: 32,
    endianness: 'little',
    label: '32-bit Arm (v7, hard-float)',
    // armv8l: a 32-bit userland on a 64-bit Arm kernel reports this.
    aliases: ['armv7', 'armv7a', 'armv7hf', 'armv8l', 'arm/v7', 'linux/arm', 'aarch32'],
  },
  {
    uname: 'armv6l',
    docker: { platform: 'linux/arm/v6', prefix: 'arm32v6' },
    debian: null,
    fedora: null,
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elfMachine: EM_ARM,
    elfClass: 32,
    endianness: 'little',
    label: '32-bit Arm (v6)',
    aliases: ['armv6', 'armv6hf', 'arm/v6'],
  },
  {
    uname: 'armv5tel',
    docker: { platform: 'linux/arm/v5', prefix: 'arm32v5' },
    debian: 'armel',
    fedora: null,
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elfMachine: EM_ARM,
    elfClass: 32,
    endianness: 'little',
    label: '32-bit Arm (v5, soft-float)',
    aliases: ['armv5', 'armv5te', 'armv5tejl', 'arm/v5'],
  },
  {
    uname: 'x86_64',
    docker: { platform: 'linux/amd64', prefix: 'amd64' },
    debian: 'amd64',
    fedora: 'x86_64',
    yocto: 'x86_64',
    qemuSystem: 'qemu-system-x86_64',
    qemuUser: 'qemu-x86_64',
    elfMachine: EM_X86_64,
    elfClass: 64,
    endianness: 'little',
    label: '64-bit x86 (x86-64)',
    aliases: ['x64', 'x86-64', 'intel64', 'em64t'],
  },
  {
    uname: 'i686',
    docker: { platform: 'linux/386', prefix: 'i386' },
    debian: 'i386',
    fedora: 'i686',
    yocto: 'i686',
    qemuSystem: 'qemu-system-i386',
    qemuUser: 'qemu-i386',
    elfMachine: EM_386,
    elfClass: 32,
    endianness: 'little',
    label: '32-bit x86',
    aliases: ['i586', 'i486', 'x86', 'ia32', '386'],
  },
  {
    uname: 'riscv64',
    docker: { platform: 'linux/riscv64', prefix: 'riscv64' },
    debian: 'riscv64',
    fedora: 'riscv64',
    yocto: 'riscv64',
    qemuSystem: 'qemu-system-riscv64',
    qemuUser: 'qemu-riscv64',
    elfMachine: EM_RISCV,
    elfClass: 64,
    endianness: 'little',
    label: '64-bit RISC-V',
    aliases: ['rv64', 'rv64gc'],
  },
  {
    uname: 'ppc64le',
    docker: { platform: 'linux/ppc64le', prefix: 'ppc64le' },
    debian: 'ppc64el',
    fedora: 'ppc64le',
    yocto: 'powerpc64le',
    // One system emulator serves both byte orders; the user-mode one is per byte order.
    qemuSystem: 'qemu-system-ppc64',
    qemuUser: 'qemu-ppc64le',
    elfMachine: EM_PPC64,
    elfClass: 64,
    endianness: 'little',
    label: '64-bit POWER (little-endian)',
    aliases: ['powerpc64le', 'ppc64el'],
  },
  {
    uname: 's390x',
    docker: { platform: 'linux/s390x', prefix: 's390x' },
    debian: 's390x',
    fedora: 's390x',
    yocto: null,
    qemuSystem: 'qemu-system-s390x',
    qemuUser: 'qemu-s390x',
    elfMachine: EM_S390,
    elfClass: 64,
    endianness: 'big',
    label: 'IBM Z (s390x)',
    aliases: ['s390', 'ibm-z', 'systemz'],
  },
];

/** Yocto MACHINE → canonical architecture (the machines Stacklab boots or builds). */
const MACHINES: Readonly<Record<string, string>> = {
  qemuarm64: 'aarch64',
  qemuarm: 'armv7l',
  qemuarmv5: 'armv5tel',
  'qemux86-64': 'x86_64',
  qemux86: 'i686',
  qemuriscv64: 'riscv64',
  qemuppc64le: 'ppc64le',
  genericarm64: 'aarch64',
  'genericx86-64': 'x86_64',
  genericx86: 'i686',
  'beaglebone-yocto': 'armv7l',
  'raspberrypi-armv8': 'aarch64',
  'raspberrypi0-2w-64': 'aarch64',
  'raspberrypi3-64': 'aarch64',
  'raspberrypi4-64': 'aarch64',
  raspberrypi5: 'aarch64',
  'raspberrypi-armv7': 'armv7l',
  raspberrypi2: 'armv7l',
  raspberrypi3: 'armv7l',
  raspberrypi4: 'armv7l',
  'raspberrypi0-2w': 'armv7l',
  raspberrypi: 'armv6l',
  raspberrypi0: 'armv6l',
  'raspberrypi0-wifi': 'armv6l',
  raspberrypi_cm: 'armv6l',
};

export const CANONICAL_ARCHES: readonly string[] = ROWS.map((r) => r.uname);

function namesOf(r: Row): string[] {
  const qemu = [r.qemuSystem, r.qemuUser, `${r.qemuUser}-static`];
  const docker = [r.docker.platform, r.docker.prefix];
  const distro = [r.debian, r.fedora, r.yocto].filter((x): x is string => x !== null);
  return [r.uname, ...docker, ...distro, ...qemu, ...r.aliases];
}

const BY_NAME: ReadonlyMap<string, Row> = (() => {
  const m = new Map<string, Row>();
  for (const r of ROWS) for (const n of namesOf(r)) if (!m.has(n.toLowerCase())) m.set(n.toLowerCase(), r);
  return m;
})();

function unknown(what: string, name: string): Error {
  return new Error(
    `unknown ${what} "${name}" (known: ${CANONICAL_ARCHES.join(', ')}, or their Docker, Debian, Fedora, Yocto or QEMU names such as arm64, armhf, amd64, qemu-aarch64)`,
  );
}

/** Any architecture name (uname, Docker, Debian, Fedora, Yocto, QEMU) → the canonical uname name. */
export function normalizeArch(name: string): string {
  const key = name.trim().toLowerCase();
  const row = BY_NAME.get(key) ?? BY_NAME.get(key.replace(/^linux\//, ''));
  if (!row) throw unknown('architecture', name);
  return row.uname;
}

/** Every name of an architecture (given by any of its names). */
export function archNames(name: string): ArchNames {
  const { aliases: _aliases, ...names } = BY_NAME.get(normalizeArch(name).toLowerCase())!;
  return { ...names, docker: { ...names.docker } };
}

/** The architecture a Yocto MACHINE builds for. */
export function archOfMachine(machine: string): string {
  const arch = MACHINES[machine.trim()];
  if (!arch) {
    throw new Error(`unknown Yocto machine "${machine}" (known: ${Object.keys(MACHINES).join(', ')})`);
  }
  return arch;
}

/** The architecture an ELF header describes, or undefined for one this table lacks. EM_ARM → armv7l. */
export function archOfElf(elf: {
  machine: number;
  elfClass: 32 | 64;
  endianness: Endianness;
}): string | undefined {
  return ROWS.find(
    (r) => r.elfMachine === elf.machine && r.elfClass === elf.elfClass && r.endianness === elf.endianness,
  )?.uname;
}

/** True when both names share the same user-mode emulator (armv7l and armv6l programs both run under qemu-arm). */
export function sameEmulator(a: string, b: string): boolean {
  return archNames(a).qemuUser === archNames(b).qemuUser;
}
