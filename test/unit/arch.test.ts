// The architecture name table, column by column and both ways: every tool's name for an
// architecture leads to the canonical name, and the canonical name gives each tool's name.
import { describe, expect, it } from 'vitest';
import {
  archNames,
  archOfElf,
  archOfMachine,
  CANONICAL_ARCHES,
  normalizeArch,
  sameEmulator,
} from '../../electron/common/arch.ts';

// The expectations are written out from each project's own naming, not derived from the table.
const TABLE = {
  aarch64: {
    docker: ['linux/arm64/v8', 'arm64v8'],
    debian: 'arm64',
    fedora: 'aarch64',
    yocto: 'aarch64',
    qemuSystem: 'qemu-system-aarch64',
    qemuUser: 'qemu-aarch64',
    elf: [183, 64, 'little'],
    label: '64-bit Arm',
  },
  armv7l: {
    docker: ['linux/arm/v7', 'arm32v7'],
    debian: 'armhf',
    fedora: 'armv7hl',
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elf: [40, 32, 'little'],
    label: '32-bit Arm (v7, hard-float)',
  },
  armv6l: {
    docker: ['linux/arm/v6', 'arm32v6'],
    debian: null,
    fedora: null,
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elf: [40, 32, 'little'],
    label: '32-bit Arm (v6)',
  },
  armv5tel: {
    docker: ['linux/arm/v5', 'arm32v5'],
    debian: 'armel',
    fedora: null,
    yocto: 'arm',
    qemuSystem: 'qemu-system-arm',
    qemuUser: 'qemu-arm',
    elf: [40, 32, 'little'],
    label: '32-bit Arm (v5, soft-float)',
  },
  x86_64: {
    docker: ['linux/amd64', 'amd64'],
    debian: 'amd64',
    fedora: 'x86_64',
    yocto: 'x86_64',
    qemuSystem: 'qemu-system-x86_64',
    qemuUser: 'qemu-x86_64',
    elf: [62, 64, 'little'],
    label: '64-bit x86 (x86-64)',
  },
  i686: {
    docker: ['linux/386', 'i386'],
    debian: 'i386',
    fedora: 'i686',
    yocto: 'i686',
    qemuSystem: 'qemu-system-i386',
    qemuUser: 'qemu-i386',
    elf: [3, 32, 'little'],
    label: '32-bit x86',
  },
  riscv64: {
    docker: ['linux/riscv64', 'riscv64'],
    debian: 'riscv64',
    fedora: 'riscv64',
    yocto: 'riscv64',
    qemuSystem: 'qemu-system-riscv64',
    qemuUser: 'qemu-riscv64',
    elf: [243, 64, 'little'],
    label: '64-bit RISC-V',
  },
  ppc64le: {
    docker: ['linux/ppc64le', 'ppc64le'],
    debian: 'ppc64el',
    fedora: 'ppc64le',
    yocto: 'powerpc64le',
    qemuSystem: 'qemu-system-ppc64',
    qemuUser: 'qemu-ppc64le',
    elf: [21, 64, 'little'],
    label: '64-bit POWER (little-endian)',
  },
  s390x: {
    docker: ['linux/s390x', 's390x'],
    debian: 's390x',
    fedora: 's390x',
    yocto: null,
    qemuSystem: 'qemu-system-s390x',
    qemuUser: 'qemu-s390x',
    elf: [22, 64, 'big'],
    label: 'IBM Z (s390x)',
  },
} as const;

// Names several architectures share resolve to the most common one.
const SHARED: Record<string, string> = {
  arm: 'armv7l',
  'qemu-arm': 'armv7l',
  'qemu-arm-static': 'armv7l',
  'qemu-system-arm': 'armv7l',
};

function expectedFor(name: string, owner: string): string {
  return SHARED[name] ?? owner;
}

describe('architecture names', () => {
  it('knows exactly the architectures in the table', () => {
    expect([...CANONICAL_ARCHES].sort()).toEqual(Object.keys(TABLE).sort());
  });

  for (const [uname, t] of Object.entries(TABLE)) {
    it(`${uname}: canonical → every column`, () => {
      const n = archNames(uname);
      expect(n.uname).toBe(uname);
      expect(n.docker).toEqual({ platform: t.docker[0], prefix: t.docker[1] });
      expect(n.debian).toBe(t.debian);
      expect(n.fedora).toBe(t.fedora);
      expect(n.yocto).toBe(t.yocto);
      expect(n.qemuSystem).toBe(t.qemuSystem);
      expect(n.qemuUser).toBe(t.qemuUser);
      expect([n.elfMachine, n.elfClass, n.endianness]).toEqual(t.elf);
      expect(n.label).toBe(t.label);
    });

    it(`${uname}: every column → canonical`, () => {
      const names = [
        uname,
        ...t.docker,
        t.debian,
        t.fedora,
        t.yocto,
        t.qemuSystem,
        t.qemuUser,
        `${t.qemuUser}-static`,
      ].filter((x): x is string => x !== null);
      for (const name of names) {
        expect(normalizeArch(name), name).toBe(expectedFor(name, uname));
        // Case and surrounding space do not matter: names are often typed or pasted.
        expect(normalizeArch(` ${name.toUpperCase()} `), name).toBe(expectedFor(name, uname));
      }
    });
  }

  it('takes what uname, Node and Docker print on real machines', () => {
    expect(normalizeArch('arm64')).toBe('aarch64'); // Node's process.arch, macOS uname
    expect(normalizeArch('x64')).toBe('x86_64'); // Node
    expect(normalizeArch('ia32')).toBe('i686'); // Node
    expect(normalizeArch('i386')).toBe('i686');
    expect(normalizeArch('i586')).toBe('i686'); // Yocto's older x86 tune
    expect(normalizeArch('armv8l')).toBe('armv7l'); // 32-bit userland on a 64-bit Arm kernel
    expect(normalizeArch('linux/arm64')).toBe('aarch64'); // Docker's normalised form drops /v8
    expect(normalizeArch('linux/arm')).toBe('armv7l');
    expect(normalizeArch('armel')).toBe('armv5tel');
    expect(normalizeArch('arm32v6')).toBe('armv6l');
  });

  it('names the known architectures in one line for garbage', () => {
    for (const bad of ['sparc', '', 'arm65', 'linux/', 'qemu-system-']) {
      let message = '';
      try {
        normalizeArch(bad);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(new RegExp(`^unknown architecture "${bad}"`));
      expect(message).toContain('aarch64, armv7l');
      expect(message).not.toContain('\n');
    }
    expect(() => archNames('mips')).toThrow(/unknown architecture "mips"/);
  });

  it('maps Yocto machines to architectures', () => {
    const machines: Record<string, string> = {
      qemuarm64: 'aarch64',
      qemuarm: 'armv7l',
      'qemux86-64': 'x86_64',
      qemux86: 'i686',
      qemuriscv64: 'riscv64',
      'raspberrypi3-64': 'aarch64',
      'raspberrypi4-64': 'aarch64',
      raspberrypi5: 'aarch64',
      raspberrypi3: 'armv7l',
      raspberrypi0: 'armv6l',
    };
    for (const [m, arch] of Object.entries(machines)) expect(archOfMachine(m), m).toBe(arch);
    // A machine's arch is also Yocto's name for it (TUNE_ARCH → the same canonical name).
    expect(archNames(archOfMachine('qemuarm')).yocto).toBe('arm');
    expect(() => archOfMachine('beaglebone-black-wireless')).toThrow(
      /^unknown Yocto machine "beaglebone-black-wireless" \(known: qemuarm64/,
    );
  });

  it('tells the architecture from ELF header fields', () => {
    expect(archOfElf({ machine: 183, elfClass: 64, endianness: 'little' })).toBe('aarch64');
    expect(archOfElf({ machine: 40, elfClass: 32, endianness: 'little' })).toBe('armv7l');
    expect(archOfElf({ machine: 62, elfClass: 64, endianness: 'little' })).toBe('x86_64');
    expect(archOfElf({ machine: 22, elfClass: 64, endianness: 'big' })).toBe('s390x');
    // Big-endian 64-bit POWER is not ppc64le, and 32-bit x86-64 (x32) is no table row.
    expect(archOfElf({ machine: 21, elfClass: 64, endianness: 'big' })).toBeUndefined();
    expect(archOfElf({ machine: 62, elfClass: 32, endianness: 'little' })).toBeUndefined();
  });

  it('knows which architectures share an emulator', () => {
    expect(sameEmulator('armhf', 'armel')).toBe(true);
    expect(sameEmulator('arm32v6', 'qemu-arm')).toBe(true);
    expect(sameEmulator('arm64', 'armhf')).toBe(false);
  });
});
