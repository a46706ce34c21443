// What kind of kernel a file is, from its magic numbers, so a wrong or damaged kernel is
// reported in one line before QEMU is started (QEMU's own errors for these are cryptic or
// it just shows a black console).
import { open } from 'node:fs/promises';
import zlib from 'node:zlib';

export type KernelKind =
  | 'arm64-image'
  | 'x86-bzimage'
  | 'arm-zimage'
  | 'pe'
  | 'elf'
  | 'uimage'
  | 'fdt'
  | 'unknown';

export interface KernelInfo {
  kind: KernelKind;
  /** qemu-system target name the kernel is built for, when the header says. */
  arch?: string;
  /** e.g. "gzip" for Debian's arm64 vmlinuz. */
  compressed?: string;
  /** Plain words for messages: "an x86-64 bzImage", "a gzip-compressed arm64 Image". */
  description: string;
}

const PE_MACHINES: Record<number, string> = {
  34404: 'x86_64',
  332: 'i386',
  43620: 'aarch64',
  450: 'arm',
  452: 'arm',
  20580: 'riscv64',
};
const ELF_MACHINES: Record<number, string> = {
  62: 'x86_64',
  3: 'i386',
  183: 'aarch64',
  40: 'arm',
  243: 'riscv64',
};
const UIMAGE_ARCH: Record<number, string> = {
  2: 'arm',
  22: 'aarch64',
  3: 'i386',
  24: 'x86_64',
  26: 'riscv64',
};
const ARCH_WORDS: Record<string, string> = {
  x86_64: 'x86-64',
  i386: '32-bit x86',
  aarch64: 'arm64',
  arm: '32-bit arm',
  riscv64: 'riscv64',
};

function words(arch: string | undefined): string {
  return arch ? (ARCH_WORDS[arch] ?? arch) : 'unknown-architecture';
}

function article(s: string): string {
  return /^[aeiou]/i.test(s) || /^x86/.test(s) ? `an ${s}` : `a ${s}`;
}

/** Identifies a kernel from its first bytes (the header is all any of these formats need). */
export function identifyKernelBytes(b: Buffer): KernelInfo {
  if (b.length >= 0x40 && b.readUInt32LE(0x38) === 0x644d5241) {
    return { kind: 'arm64-image', arch: 'aarch64', description: 'an arm64 Image' };
  }
  if (b.length >= 0x206 && b.toString('latin1', 0x202, 0x206) === 'HdrS') {
    // Boot protocol ≥ 2.12 says whether the kernel is 64-bit (XLF_KERNEL_64 in xloadflags).
    const version = b.readUInt16LE(0x206);
    const is64 = version >= 0x020c && b.length > 0x236 ? (b.readUInt16LE(0x236) & 1) === 1 : undefined;
    const arch = is64 === false ? 'i386' : 'x86_64';
    const what = is64 === undefined ? 'x86 bzImage' : `${words(arch)} bzImage`;
    return { kind: 'x86-bzimage', arch, description: article(what) };
  }
  if (b.length >= 0x28 && b.readUInt32LE(0x24) === 0x016f2818) {
    return { kind: 'arm-zimage', arch: 'arm', description: 'a 32-bit arm zImage' };
  }
  if (b.length >= 0x40 && b.toString('latin1', 0, 2) === 'MZ') {
    const zboot = b.toString('latin1', 4, 8) === 'zimg';
    const peOff = b.readUInt32LE(0x3c);
    let arch: string | undefined;
    if (peOff + 6 <= b.length && b.toString('latin1', peOff, peOff + 4) === 'PE\0\0') {
      arch = PE_MACHINES[b.readUInt16LE(peOff + 4)];
    }
    if (zboot) {
      const comp = b.toString('latin1', 0x18, 0x20).replace(/\0.*$/s, '') || 'compressed';
      return {
        kind: 'pe',
        arch,
        compressed: comp,
        description: `an EFI zboot (${comp}-compressed) ${words(arch)} kernel`,
      };
    }
    return { kind: 'pe', arch, description: `${article(words(arch))} EFI (PE) kernel` };
  }
  if (b.length >= 0x14 && b.readUInt32BE(0) === 0x7f454c46) {
    const arch = ELF_MACHINES[b.readUInt16LE(0x12)];
    return { kind: 'elf', arch, description: `${article(words(arch))} ELF vmlinux` };
  }
  if (b.length >= 64 && b.readUInt32BE(0) === 0x27051956) {
    const arch = UIMAGE_ARCH[b[29] ?? 0];
    return { kind: 'uimage', arch, description: `a U-Boot uImage for ${words(arch)}` };
  }
  if (b.length >= 4 && b.readUInt32BE(0) === 0xd00dfeed) {
    return { kind: 'fdt', description: 'a device tree blob (or FIT image), not a kernel' };
  }
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    let inner: KernelInfo | undefined;
    try {
      inner = identifyKernelBytes(zlib.gunzipSync(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    } catch {
      inner = undefined;
    }
    if (inner && inner.kind !== 'unknown') {
      return {
        ...inner,
        compressed: 'gzip',
        description: `a gzip-compressed ${inner.description.replace(/^an? /, '')}`,
      };
    }
    return {
      kind: 'unknown',
      compressed: 'gzip',
      description: 'a gzip file that is not a kernel Stacklab recognises',
    };
  }
  if (b.length === 0) return { kind: 'unknown', description: 'an empty file' };
  return {
    kind: 'unknown',
    description: 'a file with no kernel header Stacklab recognises (arm64 Image, bzImage, zImage, ELF, PE)',
  };
}

export async function identifyKernel(file: string): Promise<KernelInfo> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return identifyKernelBytes(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** What a machine of this target architecture needs, in words ("an arm64 Image"). */
export function expectedKernel(target: string): string {
  if (target === 'aarch64') return 'an arm64 Image';
  if (target === 'x86_64' || target === 'i386') return 'an x86 bzImage';
  if (target === 'arm') return 'a 32-bit arm zImage';
  return `a ${target} kernel`;
}

/**
 * Whether QEMU can boot this kernel on a `target` machine: undefined when it can, else the
 * problem as a predicate ("is an x86-64 bzImage"). Unknown formats only pass for targets
 * whose kernels have no reliable magic number.
 */
export function kernelMismatch(info: KernelInfo, target: string): string | undefined {
  if (info.kind === 'fdt') return 'is a device tree blob (or FIT image), not a kernel';
  if (info.kind === 'unknown') {
    return target === 'aarch64' || target === 'x86_64' || target === 'i386'
      ? `is ${info.description}`
      : undefined;
  }
  const compatible = (a: string | undefined) => a === target || (target === 'x86_64' && a === 'i386');
  if (info.arch && !compatible(info.arch)) return `is ${info.description}`;
  if ((target === 'x86_64' || target === 'i386') && info.compressed === 'gzip') {
    return `is ${info.description}, which x86 QEMU cannot unpack`;
  }
  return undefined;
}
