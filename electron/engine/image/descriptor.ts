// A bootable image, fully resolved: which QEMU binary and board, which kernel, device tree
// and root filesystem files, and which serial consoles the guest uses. Made from a Yocto
// deploy directory's qemuboot.conf (found the way runqemu finds its files) or from a
// built-in board profile. Everything is checked here — files exist, the kernel suits the
// machine, the root filesystem is whole — so a bad image fails with one clear line before
// any QEMU is started.
import { readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { targetOf } from '../qemu/discovery.ts';
import {
  BOARD_PROFILES,
  type BoardId,
  detectBoard,
  isBoardId,
  profileForBoard,
  profileToQemuboot,
} from './boards.ts';
import { expectedKernel, identifyKernel, kernelMismatch } from './kernel-format.ts';
import { machineType, qbTokens, where } from './qb-tokens.ts';
import { findQemubootConf, imageOfConf, type QemuBoot, readQemuboot } from './qemuboot.ts';
import { inspectRootfs } from './rootfs-format.ts';

export interface SerialConsole {
  baud: number;
  tty: string;
}

export interface ImageDescriptor {
  id: string;
  /** The image recipe, e.g. "core-image-minimal". */
  name: string;
  /** Yocto MACHINE, e.g. qemuarm64, raspberrypi3-64. */
  machine: string;
  /** uname-style architecture: aarch64, x86_64, arm, i686, … */
  arch: string;
  /** QEMU -machine value: virt, q35, raspi3b. */
  board: string;
  /** e.g. qemu-system-aarch64 (look it up in QemuInstall.systems). */
  systemBinary: string;
  deployDir: string;
  kernel?: string;
  /** The kernel's format in words ("an arm64 Image"). */
  kernelFormat?: string;
  dtb?: string;
  bios?: string;
  /** Disk image, or the initramfs when rootfsKind is 'initramfs'. Never written to. */
  rootfs: string;
  rootfsFormat: 'raw' | 'qcow2';
  /** 'initramfs' (cpio fstypes) boots with -initrd and needs no disk overlay. */
  rootfsKind: 'disk' | 'initramfs';
  fstype: string;
  conf: QemuBoot;
  serialConsoles: SerialConsole[];
  /** Kernel + device tree + root filesystem, in bytes. */
  sizeBytes: number;
  /** Set when the image was described by a built-in board profile. */
  profile?: BoardId;
  /** The disk is an SD card: QEMU wants its size to be a power of two. */
  sdCard: boolean;
  /** What the emulated board lacks compared with the real one (sentences for the UI). */
  lacks: string[];
  /** Things worth knowing that are not errors (one line each). */
  notes: string[];
}

export interface LoadOptions {
  /** A qemuboot.conf to use instead of searching the directory. */
  conf?: string;
  /** Picks one image when the directory holds several ("core-image-minimal"). */
  image?: string;
  /** Describe the directory with a built-in board profile instead of a qemuboot.conf. */
  board?: BoardId | string;
  id?: string;
  /** Overrides qb_default_fstype (runqemu's FSTYPE argument). */
  fstype?: string;
}

// runqemu's guess_qb_system: machine → emulator, when qb_system_name is missing.
const GUESS_SYSTEM: Record<string, string> = {
  qemuarm: 'arm',
  qemuarm64: 'aarch64',
  qemux86: 'i386',
  'qemux86-64': 'x86_64',
  qemuppc: 'ppc',
  qemuloongarch64: 'loongarch64',
  qemumips: 'mips',
  qemumips64: 'mips64',
  qemumipsel: 'mipsel',
  qemumips64el: 'mips64el',
  qemuriscv64: 'riscv64',
  qemuriscv32: 'riscv32',
};
const MACHINE_IN_NAME =
  /(qemux86-64|qemux86|qemuarm64|qemuarm|qemuloongarch64|qemumips64el|qemumips64|qemumipsel|qemumips|qemuppc|qemuriscv64|qemuriscv32)/;
const WIC_TYPES = ['wic.zst', 'wic', 'wic.vmdk', 'wic.qcow2', 'wic.vdi', 'wic.vhd', 'wic.vhdx'];
const UNSUPPORTED_FSTYPES = /^(nfs|none|tar(\..*)?|jffs2|ubi|ubifs)$/;

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function fileSize(p: string | undefined): number {
  if (!p) return 0;
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

/** runqemu's get_first_file over [exact name, prefix*]: the first regular file that matches. */
function firstFile(
  dir: string,
  names: string[],
  wants: Array<string | ((n: string) => boolean)>,
): string | undefined {
  for (const w of wants) {
    const hits = typeof w === 'string' ? names.filter((n) => n === w) : names.filter(w).sort();
    for (const h of hits) if (isFile(path.join(dir, h))) return path.join(dir, h);
  }
  return undefined;
}

export function parseSerialConsoles(conf: QemuBoot): SerialConsole[] {
  const v = conf.serial_consoles?.trim();
  if (!v) return [];
  return v.split(/\s+/).map((entry) => {
    const m = /^(\d+);([A-Za-z0-9_.-]+)$/.exec(entry);
    if (!m?.[2])
      throw new Error(
        `${where(conf, 'serial_consoles')}: "${entry}" is not "baud;tty" (e.g. 115200;ttyAMA0)`,
      );
    return { baud: Number(m[1]), tty: m[2] };
  });
}

function defaultConsole(board: string): SerialConsole {
  return {
    baud: 115200,
    tty: board === 'pc' || board === 'q35' || board === 'microvm' ? 'ttyS0' : 'ttyAMA0',
  };
}

async function loadConf(dir: string, opts: LoadOptions): Promise<{ conf: QemuBoot; profile?: BoardId }> {
  if (opts.board) {
    if (!isBoardId(opts.board)) {
      throw new Error(`unknown board "${opts.board}" (known: ${Object.keys(BOARD_PROFILES).join(', ')})`);
    }
    return { conf: await profileToQemuboot(BOARD_PROFILES[opts.board], dir), profile: opts.board };
  }
  if (opts.conf) return { conf: readQemuboot(path.resolve(opts.conf)) };
  try {
    return { conf: readQemuboot(findQemubootConf(dir, opts.image)) };
  } catch (e) {
    if (!/^no \*\.qemuboot\.conf/.test((e as Error).message)) throw e;
    const guess = detectBoard(readdirSync(dir));
    if (!guess) {
      throw new Error(
        `no *.qemuboot.conf in ${dir}, and its file names do not say which board it is for; choose one of ${Object.keys(BOARD_PROFILES).join(', ')}`,
      );
    }
    return { conf: await profileToQemuboot(BOARD_PROFILES[guess], dir), profile: guess };
  }
}

export async function loadDeployDir(dir: string, opts: LoadOptions = {}): Promise<ImageDescriptor> {
  const absDir = path.resolve(dir);
  try {
    if (!statSync(absDir).isDirectory()) throw new Error(`${absDir} is not a directory`);
  } catch (e) {
    if ((e as Error).message.endsWith('is not a directory')) throw e;
    throw new Error(`cannot open the deploy directory ${absDir}: ${errno(e)}`);
  }
  const { conf, profile: profileId } = await loadConf(absDir, opts);
  const notes: string[] = [];
  // runqemu: artefacts are relative to the qemuboot.conf, whatever deploy_dir_image says.
  const deployDir = conf.file ? path.dirname(path.resolve(conf.file)) : absDir;
  const names = readdirSync(deployDir);
  const label = conf.file ? path.basename(conf.file) : `the ${profileId} profile`;

  const linkName = (conf.image_link_name ?? (conf.file ? imageOfConf(path.basename(conf.file)) : '')).replace(
    /\.rootfs$/,
    '',
  );
  const machine = conf.machine ?? profileId ?? MACHINE_IN_NAME.exec(linkName)?.[1] ?? '';

  let systemBinary = conf.qb_system_name?.trim() ?? '';
  if (!systemBinary) {
    const guess = GUESS_SYSTEM[machine];
    if (!guess)
      throw new Error(
        `${label}: qb_system_name is not set and the machine "${machine || '?'}" is not one runqemu knows`,
      );
    systemBinary = `qemu-system-${guess}`;
  }
  if (!/^qemu-system-[A-Za-z0-9_]+$/.test(systemBinary)) {
    throw new Error(`${where(conf, 'qb_system_name')}: "${systemBinary}" is not a qemu-system binary name`);
  }
  const target = targetOf(systemBinary);
  const arch = conf.tune_arch?.trim() || (target === 'i386' ? 'i686' : target);

  let board = machineType([...qbTokens(conf, 'qb_machine'), ...qbTokens(conf, 'qb_cpu')]);
  if (!board) {
    if (target === 'x86_64' || target === 'i386') board = 'pc';
    else
      throw new Error(
        `${label}: neither qb_machine nor qb_cpu has a -machine, and ${systemBinary} has no default board`,
      );
  }
  const profile = profileId ? BOARD_PROFILES[profileId] : profileForBoard(board);

  // The root filesystem type, and whether a wic image carries its own kernel (runqemu's QB_FSINFO).
  let fstype = (opts.fstype ?? conf.qb_default_fstype ?? '').trim();
  if (!fstype)
    throw new Error(`${label}: qb_default_fstype is not set, so the root filesystem type is unknown`);
  if (UNSUPPORTED_FSTYPES.test(fstype)) {
    throw new Error(
      `${label}: the root filesystem type is ${fstype}; Stacklab boots disk images and initramfs images`,
    );
  }
  const noKernelInFs = /(^|\s)wic:no-kernel-in-fs(\s|$)/.test(conf.qb_fsinfo ?? '');
  const rootfsPrefixes = [conf.image_name, conf.image_link_name, linkName].filter((p): p is string => !!p);
  const { rootfs, fstype: foundType } = findRootfs(deployDir, names, rootfsPrefixes, fstype, label, notes);
  fstype = foundType;
  let vmType = fstype === 'iso' || fstype === 'hddimg' || (WIC_TYPES.includes(fstype) && !noKernelInFs);
  if (vmType && board.startsWith('raspi')) {
    // runqemu would boot a wic image through its own boot loader, but QEMU cannot run the
    // Pi firmware: the kernel has to be given directly (as qb_fsinfo = wic:no-kernel-in-fs says).
    vmType = false;
    notes.push(
      'the Pi firmware cannot run in QEMU, so the kernel is passed directly (as with qb_fsinfo = wic:no-kernel-in-fs)',
    );
  }

  // The root filesystem: present, whole, a format QEMU can open.
  let rootfsFormat: 'raw' | 'qcow2' = 'raw';
  let rootfsKind: 'disk' | 'initramfs' = 'disk';
  const rootfsName = path.basename(rootfs);
  if (fstype === 'cpio.gz' || fstype === 'cpio' || fstype === 'ramfs') {
    rootfsKind = 'initramfs';
    if (fstype !== 'cpio' && !(await startsWith(rootfs, [0x1f, 0x8b]))) {
      throw new Error(`initramfs ${rootfsName} is not gzip-compressed, but its type is ${fstype}`);
    }
  } else {
    if (/(^|\.)(vmdk|vdi|vhd|vhdx)$/.test(fstype)) {
      throw new Error(
        `rootfs ${rootfsName} is a ${fstype} image; convert it with: qemu-img convert -O qcow2 ${rootfsName} disk.qcow2`,
      );
    }
    const info = await inspectRootfs(rootfs);
    if (info.problem) throw new Error(`rootfs ${rootfsName} ${info.problem}`);
    if (info.kind === 'unknown' && /^(ext[234]|wic|img|sdimg|hddimg)$/.test(fstype)) {
      throw new Error(`rootfs ${rootfsName} is ${info.description}`);
    }
    if (info.kind === 'gzip')
      throw new Error(
        `rootfs ${rootfsName} is gzip-compressed; unpack it first (or import it, and Stacklab unpacks it)`,
      );
    rootfsFormat = info.format;
  }

  // The kernel, found as runqemu finds it, and checked against the machine.
  let kernel: string | undefined;
  let kernelFormat: string | undefined;
  const kernelName = path.basename(conf.qb_default_kernel?.trim() ?? '');
  if (!vmType && kernelName !== 'none') {
    const imagetype = conf.kernel_imagetype?.trim() ?? '';
    const wants: Array<string | ((n: string) => boolean)> = [];
    if (kernelName) wants.push(kernelName);
    if (imagetype) wants.push(imagetype, (n) => n.startsWith(imagetype));
    kernel = firstFile(deployDir, names, wants);
    if (!kernel) {
      const looked = [kernelName, imagetype, imagetype && `${imagetype}*`].filter(Boolean).join(', ');
      throw new Error(
        looked
          ? `kernel not found in ${deployDir} (looked for ${looked})`
          : `${label}: no kernel named (qb_default_kernel and kernel_imagetype are not set)`,
      );
    }
    const info = await identifyKernel(kernel);
    const bad = kernelMismatch(info, target);
    if (bad)
      throw new Error(
        `kernel ${path.basename(kernel)} ${bad}, but ${machine || board} needs ${expectedKernel(target)}`,
      );
    kernelFormat = info.description;
    if (info.kind === 'pe' && info.compressed)
      notes.push(`the kernel is ${info.description}; QEMU 8.0 or newer unpacks those`);
  }

  // The device tree: exact name, name prefix, then any *.dtb (runqemu's order).
  let dtb: string | undefined;
  const dtbName = conf.qb_dtb?.trim();
  if (dtbName) {
    dtb = firstFile(deployDir, names, [dtbName, (n) => n.startsWith(dtbName), (n) => n.endsWith('.dtb')]);
    if (!dtb) throw new Error(`device tree ${dtbName} not found in ${deployDir}`);
    if (!(await startsWith(dtb, [0xd0, 0x0d, 0xfe, 0xed])))
      throw new Error(`device tree ${path.basename(dtb)} is not a flattened device tree (.dtb)`);
  }

  let bios: string | undefined;
  const biosName = path.basename(conf.qb_default_bios?.trim() ?? '');
  if (biosName && biosName !== 'none') {
    bios = path.join(deployDir, biosName);
    if (!isFile(bios)) throw new Error(`firmware ${biosName} (qb_default_bios) not found in ${deployDir}`);
  }

  let serialConsoles = parseSerialConsoles(conf);
  if (serialConsoles.length === 0) {
    serialConsoles = [defaultConsole(board)];
    notes.push(`serial_consoles is not set; assuming ${serialConsoles[0]?.tty}`);
  }
  if (conf.qb_setup_cmd || conf.qb_cleanup_cmd) {
    notes.push('qb_setup_cmd / qb_cleanup_cmd are not run: Stacklab runs no shell commands from image files');
  }

  const baseName =
    machine && linkName.endsWith(`-${machine}`) ? linkName.slice(0, -(machine.length + 1)) : linkName;
  const id =
    opts.id ?? (linkName || path.basename(deployDir)).replace(/[^A-Za-z0-9._:@+-]+/g, '-').slice(0, 128);
  return {
    id,
    name: baseName || path.basename(rootfs),
    machine: machine || (profile?.id ?? board),
    arch,
    board,
    systemBinary,
    deployDir,
    ...(kernel ? { kernel, kernelFormat } : {}),
    ...(dtb ? { dtb } : {}),
    ...(bios ? { bios } : {}),
    rootfs,
    rootfsFormat,
    rootfsKind,
    fstype,
    conf,
    serialConsoles,
    sizeBytes: fileSize(rootfs) + fileSize(kernel) + fileSize(dtb),
    ...(profileId ? { profile: profileId } : {}),
    sdCard: /(^|[\s,])if=sd(,|\s|$)/.test(conf.qb_rootfs_opt ?? ''),
    lacks: profile?.lacks ?? [],
    notes,
  };
}

async function startsWith(file: string, bytes: number[]): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(bytes.length);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return bytesRead === bytes.length && bytes.every((x, i) => b[i] === x);
  } finally {
    await fh.close();
  }
}

/**
 * The root filesystem file, found as runqemu does (`<image_name>*.<fstype>`, then
 * `<image_link_name>*.<fstype>`), preferring exact link names. A compressed fstype
 * (ext4.zst) uses an unpacked copy next to it when there is one.
 */
function findRootfs(
  dir: string,
  names: string[],
  prefixes: string[],
  fstype: string,
  label: string,
  notes: string[],
): { rootfs: string; fstype: string } {
  // No image name at all: runqemu's glob degenerates to *.<fstype>, and so does this.
  const ps = prefixes.length > 0 ? prefixes : [''];
  const find = (type: string): string | undefined => {
    const wants: Array<string | ((n: string) => boolean)> = [];
    for (const p of ps) if (p) wants.push(`${p}.${type}`, `${p}.rootfs.${type}`);
    for (const p of ps) wants.push((n) => n.startsWith(p) && n.endsWith(`.${type}`));
    return firstFile(dir, names, wants);
  };
  const packed = /^(.*)\.(zst|xz|bz2|gz)$/.exec(fstype);
  if (packed?.[1] && fstype !== 'cpio.gz') {
    const plain = find(packed[1]);
    if (plain) {
      notes.push(
        `using the unpacked ${path.basename(plain)} instead of the ${packed[2]}-compressed ${fstype}`,
      );
      return { rootfs: plain, fstype: packed[1] };
    }
    const zipped = find(fstype);
    if (zipped) {
      throw new Error(
        `rootfs ${path.basename(zipped)} is ${packed[2]}-compressed; unpack it next to itself (or import it, and Stacklab unpacks it)`,
      );
    }
  } else {
    const hit = find(fstype);
    if (hit) return { rootfs: hit, fstype };
    for (const ext of ['zst', 'xz', 'bz2', 'gz']) {
      const zipped = find(`${fstype}.${ext}`);
      if (zipped) {
        throw new Error(
          `rootfs ${path.basename(zipped)} is ${ext}-compressed; unpack it next to itself (or import it, and Stacklab unpacks it)`,
        );
      }
    }
  }
  const pattern = prefixes[0] ? `${prefixes[0]}*.${fstype}` : `*.${fstype}`;
  throw new Error(`rootfs not found: no ${pattern} in ${dir} (${label})`);
}
