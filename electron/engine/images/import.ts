// Importing what a user already has: a Yocto deploy directory (by its qemuboot.conf), a
// .wic or SD-card image (possibly compressed), an ext4 root filesystem with a kernel
// beside it, or a qcow2 disk. The bytes are read to learn the architecture and board;
// what cannot boot is refused with one line saying why, and nothing is left in the store.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { chooseCodec, decodeStages, stripCodecSuffix } from './codecs.ts';
import {
  type Arch,
  isExtFs,
  isFdt,
  type KernelInfo,
  kernelArch,
  type PartitionInfo,
  partitions,
  qcow2Header,
  readHead,
  withFat,
} from './probe.ts';
import {
  archOfSystem,
  boardOf,
  type QemubootKeys,
  readQemubootKeys,
  referencedFiles,
  writeQemuboot,
} from './qemuboot-lite.ts';
import type { FileRole, ImageFile, ImageRecord } from './record.ts';
import { slugId } from './record.ts';
import { HashingFileSink } from './sink.ts';
import { Store, type StoredBlob } from './store.ts';
import { extractZip } from './zip.ts';

export interface ImportOptions {
  store?: Store;
  /** A kernel for an ext4 or qcow2 image (otherwise one beside it is looked for). */
  kernel?: string;
  id?: string;
  name?: string;
  description?: string;
  /** 'build': the image came out of a Yocto build in a Stacklab workspace. */
  source?: 'import' | 'build';
}

/** What a generic (non-Pi) guest of each architecture boots as. */
const GENERIC: Record<
  Arch,
  { machine: string; board: string; system: string; console: string; cpu?: string }
> = {
  aarch64: {
    machine: 'qemuarm64',
    board: 'virt',
    system: 'qemu-system-aarch64',
    console: 'ttyAMA0',
    cpu: '-cpu cortex-a57',
  },
  x86_64: { machine: 'qemux86-64', board: 'q35', system: 'qemu-system-x86_64', console: 'ttyS0' },
  x86: { machine: 'qemux86', board: 'pc', system: 'qemu-system-i386', console: 'ttyS0' },
  arm: {
    machine: 'qemuarm',
    board: 'virt',
    system: 'qemu-system-arm',
    console: 'ttyAMA0',
    cpu: '-cpu cortex-a15',
  },
  riscv64: { machine: 'qemuriscv64', board: 'virt', system: 'qemu-system-riscv64', console: 'ttyS0' },
};

/** Raspberry Pi device trees → Yocto machine and QEMU board, best first, per kernel arch. */
const PI_BOARDS: Array<{
  dtb: string;
  arch: Arch[];
  machine64: string;
  machine32: string;
  board: string | null;
}> = [
  {
    dtb: 'bcm2710-rpi-3-b.dtb',
    arch: ['aarch64', 'arm'],
    machine64: 'raspberrypi3-64',
    machine32: 'raspberrypi3',
    board: 'raspi3b',
  },
  {
    dtb: 'bcm2710-rpi-3-b-plus.dtb',
    arch: ['aarch64', 'arm'],
    machine64: 'raspberrypi3-64',
    machine32: 'raspberrypi3',
    board: 'raspi3b',
  },
  {
    dtb: 'bcm2837-rpi-3-b.dtb',
    arch: ['aarch64', 'arm'],
    machine64: 'raspberrypi3-64',
    machine32: 'raspberrypi3',
    board: 'raspi3b',
  },
  {
    dtb: 'bcm2710-rpi-zero-2-w.dtb',
    arch: ['aarch64', 'arm'],
    machine64: 'raspberrypi0-2w-64',
    machine32: 'raspberrypi0-2w',
    board: 'raspi3b',
  },
  {
    dtb: 'bcm2709-rpi-2-b.dtb',
    arch: ['arm'],
    machine64: 'raspberrypi2',
    machine32: 'raspberrypi2',
    board: 'raspi2b',
  },
  {
    dtb: 'bcm2711-rpi-4-b.dtb',
    arch: ['aarch64', 'arm'],
    machine64: 'raspberrypi4-64',
    machine32: 'raspberrypi4',
    board: 'raspi4b',
  },
  {
    dtb: 'bcm2712-rpi-5-b.dtb',
    arch: ['aarch64'],
    machine64: 'raspberrypi5',
    machine32: 'raspberrypi5',
    board: null,
  },
];

const KERNEL_NAMES = [
  'kernel8.img',
  'kernel_2712.img',
  'kernel7l.img',
  'kernel7.img',
  'kernel.img',
  'Image',
  'bzImage',
  'vmlinuz',
  'zImage',
];

/** Staged files: each becomes a store blob when the import is accepted. */
type Staged =
  | { role: FileRole; name: string; from: 'path'; path: string }
  | { role: FileRole; name: string; from: 'temp'; path: string; sha256: string; sourceSha256?: string }
  | { role: FileRole; name: string; from: 'buffer'; data: Buffer }
  | { role: FileRole; name: string; from: 'blob'; blob: StoredBlob };

interface Plan {
  id: string;
  name: string;
  machine: string;
  arch: string;
  board: string;
  files: Staged[];
  description?: string;
}

export async function importImage(input: string, opts: ImportOptions = {}): Promise<ImageRecord> {
  const store = opts.store ?? new Store();
  await store.init();
  const abs = path.resolve(input);
  const st = await fs.stat(abs).catch(() => null);
  if (!st) throw new Error(`${input}: no such file or directory`);
  const temps: string[] = [];
  const extracted: StoredBlob[] = [];
  try {
    let plan: Plan;
    if (st.isDirectory()) plan = await planDeployDir(abs, undefined, store, temps);
    else if (abs.endsWith('.qemuboot.conf')) plan = await planDeployDir(path.dirname(abs), abs, store, temps);
    else plan = await planFile(abs, opts, store, temps, extracted);
    if (opts.id) plan.id = slugId(opts.id);
    if (opts.name) plan.name = opts.name;
    return await commit(plan, store, opts.description, opts.source);
  } catch (err) {
    // Nothing from a refused import stays: temps go, and zip entries nobody else uses too.
    const refs = await store.refCounts();
    for (const b of extracted) if (!refs.get(b.sha256)) await fs.rm(b.path, { force: true });
    throw err;
  } finally {
    for (const t of temps) await fs.rm(t, { force: true });
  }
}

async function commit(
  plan: Plan,
  store: Store,
  description?: string,
  source: 'import' | 'build' = 'import',
): Promise<ImageRecord> {
  const files: ImageFile[] = [];
  for (const s of plan.files) {
    let blob: StoredBlob;
    let sourceSha256: string | undefined;
    if (s.from === 'path') blob = await store.putFile(s.path);
    else if (s.from === 'buffer') blob = await store.putBuffer(s.data);
    else if (s.from === 'blob') blob = s.blob;
    else {
      blob = await store.commit(s.path, s.sha256);
      sourceSha256 = s.sourceSha256;
    }
    files.push({ role: s.role, name: s.name, sha256: blob.sha256, sizeBytes: blob.sizeBytes, sourceSha256 });
  }
  const disk = files.find((f) => f.role === 'disk') ?? files.find((f) => f.role === 'rootfs')!;
  let id = plan.id;
  for (let n = 2; ; n++) {
    const existing = await store.getImage(id);
    if (!existing || existing.sha256 === disk.sha256) break;
    id = `${plan.id}-${n}`;
  }
  return store.addImage({
    id,
    name: plan.name,
    source,
    machine: plan.machine,
    arch: plan.arch,
    board: plan.board,
    files,
    sha256: disk.sha256,
    sizeBytes: files.reduce((a, f) => a + f.sizeBytes, 0),
    description: description ?? plan.description,
    createdAt: new Date().toISOString(),
    bootable: true,
  });
}

// ---- single files ----

async function planFile(
  abs: string,
  opts: ImportOptions,
  store: Store,
  temps: string[],
  extracted: StoredBlob[],
): Promise<Plan> {
  const label = path.basename(abs);
  let head = await readHead(abs);
  if (head.length === 0) throw new Error(`${label} is empty`);
  const codec = chooseCodec(label, head);
  let file = abs;
  let name = label;
  let staged: Staged = { role: 'disk', name: label, from: 'path', path: abs };
  if (codec === 'zip') {
    const files = await extractZip(abs, label, store);
    extracted.push(...files);
    const images = files.filter((f) => /\.(img|wic|direct|sdimg|ext[234]|qcow2)$/i.test(f.name));
    if (images.length !== 1) {
      throw new Error(
        `${label}: expected one disk image inside, found ${images.length ? images.map((f) => f.name).join(', ') : 'none'}`,
      );
    }
    file = images[0]!.path;
    name = path.basename(images[0]!.name);
    staged = { role: 'disk', name, from: 'blob', blob: images[0]! };
  } else if (codec) {
    const tmp = store.tempPath();
    temps.push(tmp);
    const sink = new HashingFileSink(tmp);
    const { stages, explain } = decodeStages(codec, label);
    const src = createHash('sha256');
    const input = createReadStream(abs, { highWaterMark: 1 << 20 });
    input.on('data', (c) => src.update(c as Buffer));
    try {
      await pipeline([input, ...stages, sink] as unknown as NodeJS.ReadWriteStream[]);
    } catch (err) {
      throw explain(err);
    }
    file = tmp;
    name = stripCodecSuffix(label);
    staged = {
      role: 'disk',
      name,
      from: 'temp',
      path: tmp,
      sha256: sink.digest(),
      sourceSha256: src.digest('hex'),
    };
  }
  head = await readHead(file);
  const stem = slugId(
    name.replace(/\.(wic|img|direct|sdimg|rpi-sdimg|ext[234]|qcow2)$/i, '').replace(/\.rootfs$/, ''),
  );

  const qcow = qcow2Header(head);
  if (qcow) {
    if (qcow.version < 2 || qcow.version > 3)
      throw new Error(`${label}: qcow2 version ${qcow.version} is not supported`);
    if (qcow.backingFile) {
      throw new Error(
        `${label} is a qcow2 overlay on ${qcow.backingFile}: import the base image, or flatten it with qemu-img convert`,
      );
    }
    const k = await kernelFor(abs, stem, opts.kernel, label);
    return rootfsPlan(
      stem,
      { ...staged, role: 'rootfs', name: `${stem}.qcow2` },
      k,
      'qcow2',
      `qcow2 disk, ${qcow.virtualSize} bytes virtual`,
    );
  }
  if (isExtFs(head)) {
    const k = await kernelFor(abs, stem, opts.kernel, label);
    return rootfsPlan(
      stem,
      { ...staged, role: 'rootfs', name: `${stem}.ext4` },
      k,
      'ext4',
      'ext4 root filesystem',
    );
  }
  const table = await partitions(file);
  if (!table) throw new Error(`${label}: unknown partition table, and not an ext4 or qcow2 image either`);
  return diskPlan(file, label, stem, { ...staged, name: `${stem}.wic` }, table.partitions);
}

interface FoundKernel {
  name: string;
  info: KernelInfo;
  staged: Staged;
}

async function kernelFor(
  image: string,
  stem: string,
  passed: string | undefined,
  label: string,
): Promise<FoundKernel> {
  if (passed) {
    const info = kernelArch(await readHead(passed).catch(() => Buffer.alloc(0)));
    if (!info) throw new Error(`${passed} is not a kernel image Stacklab recognises`);
    const name = path.basename(passed);
    return { name, info, staged: { role: 'kernel', name, from: 'path', path: passed } };
  }
  const dir = path.dirname(image);
  const names = (await fs.readdir(dir)).filter((n) =>
    /^(Image|bzImage|zImage|vmlinuz|vmlinux|kernel[0-9a-z_]*\.img)([-.].*)?$/.test(n),
  );
  // A kernel named for the same machine as the image first (Image-qemuarm64.bin beside …-qemuarm64.ext4).
  names.sort((a, b) => Number(machineHint(b, stem)) - Number(machineHint(a, stem)));
  for (const n of names) {
    const p = path.join(dir, n);
    const st = await fs.stat(p).catch(() => null);
    if (!st?.isFile() || st.size > 256 << 20) continue;
    const info = kernelArch(await readHead(p));
    if (info) return { name: n, info, staged: { role: 'kernel', name: n, from: 'path', path: p } };
  }
  throw new Error(
    `${label} has no kernel beside it: put one (Image, bzImage, zImage…) in the same folder or pass it`,
  );
}

/**
 * The initramfs the Pi firmware would load: `initramfs <file> followkernel` in config.txt,
 * or with `auto_initramfs=1` the one named after the kernel (kernel8.img → initramfs8).
 */
function initramfsOf(config: string, kernel: string): string | undefined {
  const named = /^\s*initramfs\s+([A-Za-z0-9._-]+)/m.exec(config)?.[1];
  if (named) return named;
  if (/^\s*auto_initramfs\s*=\s*1\b/m.test(config))
    return kernel.replace(/^kernel/i, 'initramfs').replace(/\.img$/i, '');
  return undefined;
}

function machineHint(kernelName: string, stem: string): boolean {
  const m = /-(qemu[a-z0-9-]+)$/.exec(stem.replace(/\.rootfs$/, ''));
  return !!m && kernelName.includes(m[1]!);
}

function rootfsPlan(stem: string, rootfs: Staged, k: FoundKernel, fstype: string, what: string): Plan {
  const g = GENERIC[k.info.arch];
  const machineFromName = /-(qemu(?:arm64|arm|x86-64|x86|riscv64))(?:\.|$)/.exec(stem)?.[1];
  const machine = machineFromName ?? g.machine;
  const keys: QemubootKeys = {
    machine,
    image_link_name: stem,
    deploy_dir_image: '.',
    qb_system_name: g.system,
    qb_machine: `-machine ${g.board}`,
    ...(g.cpu ? { qb_cpu: g.cpu } : {}),
    qb_mem: '-m 512',
    qb_default_kernel: k.name,
    qb_default_fstype: fstype,
    qb_kernel_root: '/dev/vda',
    ...(k.info.arch === 'aarch64' || k.info.arch === 'arm'
      ? {
          qb_rootfs_opt: `-drive id=disk0,file=@ROOTFS@,if=none,format=${fstype === 'qcow2' ? 'qcow2' : 'raw'} -device virtio-blk-pci,drive=disk0`,
        }
      : {}),
    serial_consoles: `115200;${g.console}`,
  };
  return {
    id: stem,
    name: stem,
    machine,
    arch: k.info.arch,
    board: g.board,
    description: `Imported ${what} with ${k.name}`,
    files: [
      rootfs,
      k.staged,
      {
        role: 'qemuboot',
        name: `${stem}.qemuboot.conf`,
        from: 'buffer',
        data: Buffer.from(writeQemuboot(keys)),
      },
    ],
  };
}

// ---- whole-disk images (.wic, SD cards) ----

async function diskPlan(
  file: string,
  label: string,
  stem: string,
  disk: Staged,
  parts: PartitionInfo[],
): Promise<Plan> {
  const fats = parts.filter((p) => p.fat);
  if (fats.length === 0) {
    throw new Error(
      `${label}: no FAT boot partition (partition types: ${parts.map((p) => p.type).join(', ')})`,
    );
  }
  let sawEfi = false;
  for (const part of fats) {
    const found = await withFat(file, part.index, async (fat) => {
      const lower = new Map(fat.names.map((n) => [n.toLowerCase(), n]));
      if (lower.has('efi')) sawEfi = true;
      const config = lower.has('config.txt')
        ? (await fat.read(lower.get('config.txt')!)).toString('utf8')
        : '';
      const cmdline = lower.has('cmdline.txt')
        ? (await fat.read(lower.get('cmdline.txt')!)).toString('utf8').trim()
        : '';
      const fromConfig = /^\s*kernel\s*=\s*(\S+)/m.exec(config)?.[1];
      const candidates = [fromConfig, ...KERNEL_NAMES].filter(
        (n): n is string => !!n && lower.has(n.toLowerCase()),
      );
      if (candidates.length === 0) return null;
      const kname = lower.get(candidates[0]!.toLowerCase())!;
      const kdata = await fat.read(kname);
      const dtbs = fat.names.filter((n) => /^bcm27\d\d-rpi-.*\.dtb$|^bcm2837-rpi-.*\.dtb$/i.test(n));
      const wanted = /^\s*device_tree\s*=\s*(\S+)/m.exec(config)?.[1];
      const iname = initramfsOf(config, kname);
      const initrd =
        iname && lower.has(iname.toLowerCase())
          ? { name: lower.get(iname.toLowerCase())!, data: await fat.read(lower.get(iname.toLowerCase())!) }
          : undefined;
      return { kname, kdata, dtbs, cmdline, wanted, initrd, read: fat.read };
    });
    if (!found) continue;
    const info = kernelArch(found.kdata.subarray(0, 64 * 1024));
    if (!info)
      throw new Error(
        `${label}: ${found.kname} on the boot partition is not a kernel image Stacklab recognises`,
      );
    const kernel: Staged = { role: 'kernel', name: found.kname, from: 'buffer', data: found.kdata };
    // The firmware would load the initramfs beside the kernel; QEMU is given it directly.
    const initrd: Staged[] = found.initrd
      ? [{ role: 'initrd', name: found.initrd.name, from: 'buffer', data: found.initrd.data }]
      : [];
    const initrdOpt: QemubootKeys = found.initrd
      ? { qb_opt_append: `-initrd @DEPLOY_DIR_IMAGE@/${found.initrd.name}` }
      : {};
    const rootIndex = parts.find((p) => !p.fat && p.index !== part.index)?.index;

    if (found.dtbs.length > 0) {
      if (info.arch === 'x86_64' || info.arch === 'x86' || info.arch === 'riscv64') {
        throw new Error(
          `${label}: ${found.kname} is an ${info.arch} kernel but the boot partition holds Raspberry Pi device trees (${found.dtbs.slice(0, 3).join(', ')})`,
        );
      }
      const has = new Set(found.dtbs.map((d) => d.toLowerCase()));
      const pick =
        PI_BOARDS.find((b) => found.wanted?.toLowerCase() === b.dtb && b.arch.includes(info.arch)) ??
        PI_BOARDS.find((b) => has.has(b.dtb) && b.arch.includes(info.arch));
      if (!pick)
        throw new Error(
          `${label}: no device tree here for a Pi that QEMU emulates (${found.dtbs.slice(0, 4).join(', ')})`,
        );
      if (!pick.board)
        throw new Error(`${label}: a ${pick.machine64} image; QEMU has no board for that Raspberry Pi`);
      const dtbName = found.dtbs.find((d) => d.toLowerCase() === pick.dtb)!;
      const dtbData = await withFat(file, part.index, (fat) => fat.read(dtbName));
      if (!isFdt(dtbData))
        throw new Error(`${label}: ${dtbName} on the boot partition is not a device tree blob`);
      const machine = info.arch === 'aarch64' ? pick.machine64 : pick.machine32;
      const root = /(?:^|\s)root=(\S+)/.exec(found.cmdline)?.[1] ?? `/dev/mmcblk0p${rootIndex ?? 2}`;
      // Keep what the image asks for except the consoles and root, which QEMU's wiring decides.
      const append = found.cmdline
        .split(/\s+/)
        .filter((w) => w && !/^(console|root)=/.test(w))
        .join(' ');
      const keys: QemubootKeys = {
        machine,
        image_link_name: stem,
        deploy_dir_image: '.',
        qb_system_name: 'qemu-system-aarch64',
        qb_machine: `-machine ${pick.board}`,
        qb_mem: pick.board === 'raspi2b' ? '-m 1024' : pick.board === 'raspi4b' ? '-m 2048' : '-m 1024',
        qb_default_kernel: found.kname,
        qb_dtb: dtbName,
        qb_default_fstype: 'wic',
        // The kernel comes from the boot partition and is passed to QEMU directly.
        qb_fsinfo: 'wic:no-kernel-in-fs',
        qb_rootfs_opt: '-drive if=sd,format=raw,file=@ROOTFS@',
        qb_kernel_root: root,
        qb_kernel_cmdline_append: append || 'rootwait',
        qb_network_device: '-device usb-net,netdev=net0',
        serial_consoles: '115200;ttyAMA0',
        ...initrdOpt,
      };
      return {
        id: stem,
        name: stem,
        machine,
        arch: info.arch,
        board: pick.board,
        description: `Imported Raspberry Pi SD image (${dtbName}, ${found.kname})`,
        files: [
          disk,
          kernel,
          ...initrd,
          { role: 'dtb', name: dtbName, from: 'buffer', data: dtbData },
          {
            role: 'qemuboot',
            name: `${stem}.qemuboot.conf`,
            from: 'buffer',
            data: Buffer.from(writeQemuboot(keys)),
          },
        ],
      };
    }

    const g = GENERIC[info.arch];
    const keys: QemubootKeys = {
      machine: g.machine,
      image_link_name: stem,
      deploy_dir_image: '.',
      qb_system_name: g.system,
      qb_machine: `-machine ${g.board}`,
      ...(g.cpu ? { qb_cpu: g.cpu } : {}),
      qb_mem: '-m 512',
      qb_default_kernel: found.kname,
      qb_default_fstype: 'wic',
      // The kernel comes from the boot partition and is passed to QEMU directly.
      qb_fsinfo: 'wic:no-kernel-in-fs',
      qb_kernel_root: `/dev/vda${rootIndex ?? 2}`,
      serial_consoles: `115200;${g.console}`,
      ...initrdOpt,
    };
    return {
      id: stem,
      name: stem,
      machine: g.machine,
      arch: info.arch,
      board: g.board,
      description: `Imported disk image (${found.kname} from the boot partition)`,
      files: [
        disk,
        kernel,
        ...initrd,
        {
          role: 'qemuboot',
          name: `${stem}.qemuboot.conf`,
          from: 'buffer',
          data: Buffer.from(writeQemuboot(keys)),
        },
      ],
    };
  }
  const looked = KERNEL_NAMES.join(', ');
  throw new Error(
    `${label}: no kernel on the boot partition (looked for ${looked})${sawEfi ? '; it boots through EFI, which needs firmware Stacklab does not add yet' : ''}`,
  );
}

// ---- Yocto deploy directories ----

async function planDeployDir(
  dir: string,
  conf: string | undefined,
  store: Store,
  temps: string[],
): Promise<Plan> {
  const label = path.basename(dir);
  let confPath = conf;
  if (!confPath) {
    const confs = (await fs.readdir(dir)).filter((n) => n.endsWith('.qemuboot.conf'));
    if (confs.length === 0)
      throw new Error(`${label}: no .qemuboot.conf here, so this is not a Yocto deploy directory`);
    const byImage = new Map<string, string>();
    for (const c of confs.sort((a, b) => a.length - b.length)) {
      const keys = readQemubootKeys(await fs.readFile(path.join(dir, c), 'utf8'));
      const link = keys.image_link_name ?? c;
      if (!byImage.has(link)) byImage.set(link, c); // the shortest name: the link, not the timestamped file
    }
    if (byImage.size > 1) {
      throw new Error(
        `${label} holds several images (${[...byImage.keys()].join(', ')}): import one of its .qemuboot.conf files`,
      );
    }
    confPath = path.join(dir, [...byImage.values()][0]!);
  }
  const text = await fs.readFile(confPath, 'utf8');
  const keys = readQemubootKeys(text);
  const staged: Staged[] = [];
  let fixedText = text;
  let kernelInfo: KernelInfo | null = null;
  for (const ref of referencedFiles(keys)) {
    const p = path.join(dir, ref.name);
    if (path.relative(dir, p).startsWith('..'))
      throw new Error(`${label}: the qemuboot.conf names a file outside the directory (${ref.name})`);
    const st = await fs.stat(p).catch(() => null);
    if (!st?.isFile()) {
      if (ref.role === 'kernel' || ref.role === 'rootfs') {
        throw new Error(`${label}: ${ref.name}, named by ${path.basename(confPath)}, is missing`);
      }
      continue;
    }
    if (ref.role === 'kernel') kernelInfo = kernelArch(await readHead(p));
    const codec = ref.role === 'rootfs' ? chooseCodec(ref.name, await readHead(p, 16)) : null;
    if (codec && codec !== 'zip') {
      const tmp = store.tempPath();
      temps.push(tmp);
      const sink = new HashingFileSink(tmp);
      const { stages, explain } = decodeStages(codec, ref.name);
      try {
        await pipeline([
          createReadStream(p, { highWaterMark: 1 << 20 }),
          ...stages,
          sink,
        ] as unknown as NodeJS.ReadWriteStream[]);
      } catch (err) {
        throw explain(err);
      }
      staged.push({
        role: ref.role,
        name: stripCodecSuffix(ref.name),
        from: 'temp',
        path: tmp,
        sha256: sink.digest(),
      });
      // The deploy dir will hold the decompressed rootfs: say so in the conf it carries.
      fixedText = fixedText.replace(
        /^(\s*qb_default_fstype\s*=\s*)(\S+)/m,
        (_l, k: string, t: string) => `${k}${t.replace(/\.(xz|bz2|gz|zst)$/, '')}`,
      );
    } else {
      staged.push({ role: ref.role, name: ref.name, from: 'path', path: p });
    }
  }
  const arch = archOfSystem(keys.qb_system_name) ?? kernelInfo?.arch;
  if (!arch)
    throw new Error(
      `${label}: cannot tell the architecture (no qb_system_name and no kernel Stacklab recognises)`,
    );
  if (kernelInfo && kernelInfo.arch !== arch) {
    throw new Error(
      `${label}: the qemuboot.conf says ${keys.qb_system_name} but ${keys.qb_default_kernel} is an ${kernelInfo.arch} kernel`,
    );
  }
  const generic = GENERIC[arch as Arch];
  const stem = keys.image_link_name ?? path.basename(confPath).replace(/\.qemuboot\.conf$/, '');
  staged.push({
    role: 'qemuboot',
    name: path.basename(confPath),
    from: 'buffer',
    data: Buffer.from(fixedText),
  });
  return {
    id: slugId(stem),
    name: stem,
    machine: keys.machine ?? generic?.machine ?? 'unknown',
    arch,
    board: boardOf(keys) ?? generic?.board ?? 'virt',
    description: `Imported Yocto deploy directory ${dir}`,
    files: staged,
  };
}
