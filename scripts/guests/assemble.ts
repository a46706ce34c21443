// Assembling one guest's Yocto-style deploy directory from the unpacked Debian packages.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DebPackage } from './apt.ts';
import { writeBmap } from './bmap.ts';
import { makeBootVfat, makeExt4, makeTarBz2, makeWic } from './disk-images.ts';
import { removeFdtNode } from './fdt.ts';
import type { GuestSpec } from './guests.ts';
import { initramfsName, RPI_BT_NODE, RPI_CMDLINE, RPI_DTB, rootfsBase } from './guests.ts';
import { checkHostQemu, unpackHostQemu } from './host-qemu.ts';
import { buildInitramfs } from './initramfs.ts';
import { type KernelModule, type KernelTree, moduleBytes, vmlinuxFromBzImage } from './kernel.ts';
import type { BuiltKernel } from './kernel-build.ts';
import { writeManifest, writeQemuboot } from './qemuboot.ts';
import { writeUserspace } from './userspace.ts';

export interface ArchInputs {
  /** Debian's kernel package, unpacked (absent when every guest of this architecture builds its own). */
  kernel?: KernelTree;
  kernelPkg?: DebPackage;
  busybox: string;
  busyboxPkg: DebPackage;
  applets: string[];
}

export interface BuildContext {
  work: string; // scratch directory
  out: string; // the build's top directory (deploy dirs go under it)
  arch: Record<GuestSpec['debArch'], ArchInputs>;
  /** Kernels built from linux-source, by config fragment name (GuestSpec.kernelBuild). */
  builtKernels: ReadonlyMap<string, BuiltKernel>;
  hostQemu: { tarball: string; pkgs: DebPackage[] };
  debianSuite: string;
  log: (line: string) => void;
}

export interface GuestEntry {
  name: string;
  machine: string;
  arch: string;
  board: string;
  description: string;
  deployDir: string;
  qemubootConf: string;
}

/** A stable UUID-shaped id derived from a name, so rebuilding gives the same file system ids. */
function stableId(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export async function buildGuest(spec: GuestSpec, ctx: BuildContext): Promise<GuestEntry> {
  const inputs = ctx.arch[spec.debArch];
  const deploy = path.join(ctx.out, spec.name);
  const work = path.join(ctx.work, spec.name);
  mkdirSync(deploy, { recursive: true });
  mkdirSync(work, { recursive: true });
  const base = rootfsBase(spec.machine);

  const kernel = guestKernel(spec, ctx);
  ctx.log(
    `kernel ${kernel.kver}${spec.initramfsModules.length ? `, initramfs modules: ${spec.initramfsModules.join(' ')}` : ' (root disk drivers built in, no initramfs)'}`,
  );
  copyFileSync(kernel.image, path.join(deploy, spec.kernelFile));
  if (spec.kernelImageType === 'bzImage') {
    // As Yocto deploys it with KERNEL_IMAGETYPES += "vmlinux": nested boots load it directly (PVH).
    writeFileSync(path.join(deploy, `vmlinux-${spec.machine}.bin`), vmlinuxFromBzImage(kernel.image));
  }
  let initramfs: string | undefined;
  if (spec.initramfsModules.length) {
    const mods = await modulesOf(kernel, spec).resolve(spec.initramfsModules);
    initramfs = path.join(deploy, initramfsName(spec.machine));
    await buildInitramfs(path.join(work, 'initramfs'), initramfs, inputs.busybox, mods);
  }

  const root = path.join(work, 'rootfs');
  mkdirSync(root, { recursive: true });
  const manifest: DebPackage[] = [kernel.pkg, inputs.busyboxPkg];
  if (spec.withHostQemu) {
    ctx.log('root file system: Debian arm64 qemu-system-x86 and its libraries');
    await unpackHostQemu(ctx.hostQemu.tarball, root);
    manifest.push(...ctx.hostQemu.pkgs);
  }
  ctx.log('root file system: busybox userspace');
  writeUserspace(root, {
    busybox: inputs.busybox,
    applets: inputs.applets,
    hostname: spec.name,
    consoles: spec.consoles,
    loadModules: spec.rootfsModules,
    extraDirs: spec.extraDirs,
    prettyName: `Stacklab demo guest (${spec.machine}, from Debian ${ctx.debianSuite} packages)`,
    debianSuite: ctx.debianSuite,
  });
  if (spec.rootfsModules.length) await installModules(modulesOf(kernel, spec), spec.rootfsModules, root);
  if (spec.withHostQemu) {
    const version = await checkHostQemu(root);
    ctx.log(`nested qemu-system-x86_64 ${version} runs under qemu-aarch64-static`);
  }
  writeManifest(path.join(deploy, `${base}.manifest`), manifest);
  ctx.log('rootfs tarball (tar.bz2)');
  await makeTarBz2(root, path.join(deploy, `${base}.tar.bz2`));

  const ext4 = spec.layout === 'qemu' ? path.join(deploy, `${base}.ext4`) : path.join(work, 'root.ext4');
  const ext4MiB = await makeExt4(root, ext4, {
    label: 'root',
    uuid: stableId(`${spec.name}-root`),
    freeMiB: spec.freeMiB,
  });
  ctx.log(`ext4 root file system: ${ext4MiB} MiB`);

  if (spec.layout === 'raspberrypi') {
    if (!initramfs) throw new Error(`${spec.name}: the Raspberry Pi layout needs an initramfs`);
    await raspberryPiDeploy(spec, modulesOf(kernel, spec), initramfs, ext4, deploy, work, ctx);
  }

  const conf = path.join(deploy, `${base}.qemuboot.conf`);
  writeQemuboot(conf, spec.qemuboot);
  return {
    name: spec.name,
    machine: spec.machine,
    arch: spec.arch,
    board: spec.board,
    description: spec.description,
    deployDir: spec.name,
    qemubootConf: path.join(spec.name, path.basename(conf)),
  };
}

interface GuestKernel {
  image: string;
  kver: string;
  pkg: DebPackage;
  tree?: KernelTree; // Debian's kernels only: modules and device trees
}

function guestKernel(spec: GuestSpec, ctx: BuildContext): GuestKernel {
  if (spec.kernelBuild) {
    const built = ctx.builtKernels.get(spec.kernelBuild);
    if (!built) throw new Error(`${spec.name}: kernel ${spec.kernelBuild} was not built`);
    return { image: built.bzImage, kver: built.kver, pkg: built.pkg };
  }
  const { kernel, kernelPkg } = ctx.arch[spec.debArch];
  if (!kernel || !kernelPkg) throw new Error(`${spec.name}: no Debian ${spec.debArch} kernel was unpacked`);
  return { image: kernel.image, kver: kernel.kver, pkg: kernelPkg, tree: kernel };
}

function modulesOf(kernel: GuestKernel, spec: GuestSpec): KernelTree {
  if (!kernel.tree) throw new Error(`${spec.name}: kernel ${kernel.kver} is built without modules`);
  return kernel.tree;
}

/**
 * Copies modules (and their dependencies) into /lib/modules with a modules.dep in depmod's
 * format: each line names every module the first one needs, the one to load first last.
 */
async function installModules(kernel: KernelTree, names: readonly string[], root: string): Promise<void> {
  const dir = path.join(root, 'lib', 'modules', kernel.kver);
  const plain = (m: KernelModule) => m.rel.replace(/\.(xz|zst|gz)$/, '');
  const lines: string[] = [];
  for (const m of await kernel.resolve(names)) {
    const at = path.join(dir, plain(m));
    mkdirSync(path.dirname(at), { recursive: true });
    writeFileSync(at, await moduleBytes(m.file));
    const needs = (await kernel.resolve([m.name])).filter((d) => d.name !== m.name).reverse();
    lines.push(`${plain(m)}:${needs.map((d) => ` ${plain(d)}`).join('')}`);
  }
  writeFileSync(path.join(dir, 'modules.dep'), `${lines.join('\n')}\n`);
  for (const f of ['modules.builtin', 'modules.order'])
    copyFileSync(path.join(kernel.modulesDir, f), path.join(dir, f));
}

/**
 * meta-raspberrypi's deploy layout: the kernel as Image, the board's dtb, bootfiles/ with
 * config.txt and cmdline.txt, and a .wic SD card image whose FAT boot partition holds the
 * kernel as kernel8.img (QEMU does not run the Pi firmware; the engine reads these itself).
 */
async function raspberryPiDeploy(
  spec: GuestSpec,
  kernel: KernelTree,
  initramfs: string,
  ext4: string,
  deploy: string,
  work: string,
  ctx: BuildContext,
): Promise<void> {
  const base = rootfsBase(spec.machine);
  // What the firmware's dtoverlay=disable-bt does on a real Pi 3: the PL011 UART becomes ttyAMA0
  // instead of the Bluetooth link, which QEMU's raspi3b has no chip for.
  const dtb = removeFdtNode(readFileSync(kernel.dtb(`broadcom/${RPI_DTB}`)), RPI_BT_NODE);
  writeFileSync(path.join(deploy, RPI_DTB), dtb);

  const boot = path.join(work, 'boot');
  mkdirSync(boot, { recursive: true });
  copyFileSync(kernel.image, path.join(boot, 'kernel8.img'));
  writeFileSync(path.join(boot, RPI_DTB), dtb);
  copyFileSync(initramfs, path.join(boot, 'initrd.img'));
  writeFileSync(path.join(boot, 'cmdline.txt'), `${RPI_CMDLINE}\n`);
  writeFileSync(path.join(boot, 'config.txt'), CONFIG_TXT);
  mkdirSync(path.join(deploy, 'bootfiles'), { recursive: true });
  for (const f of ['cmdline.txt', 'config.txt'])
    copyFileSync(path.join(boot, f), path.join(deploy, 'bootfiles', f));

  const bootFiles = ['kernel8.img', RPI_DTB, 'initrd.img', 'cmdline.txt', 'config.txt'].map((f) =>
    path.join(boot, f),
  );
  const bytes = bootFiles.reduce((n, f) => n + readFileSync(f).length, 0);
  const bootMiB = Math.max(48, Math.ceil((bytes * 1.1) / (1024 * 1024)) + 8);
  const vfat = path.join(work, 'boot.vfat');
  await makeBootVfat(vfat, bootMiB, bootFiles, '5354414b');
  const wic = path.join(deploy, `${base}.wic`);
  const layout = await makeWic(wic, vfat, ext4, '5354414b');
  ctx.log(
    `SD card image: ${(layout.totalBytes / 1048576).toFixed(0)} MiB (boot ${bootMiB} MiB + root ${layout.rootMiB} MiB)`,
  );
  writeBmap(wic, `${wic}.bmap`);
}

const CONFIG_TXT = `# Raspberry Pi firmware settings for the Stacklab demo SD card (meta-raspberrypi style).
# The dtb here is Debian's bcm2837-rpi-3-b.dtb with uart0's Bluetooth node removed, which is
# what dtoverlay=disable-bt does: the PL011 UART is then the serial console, ttyAMA0.
arm_64bit=1
enable_uart=1
kernel=kernel8.img
device_tree=bcm2837-rpi-3-b.dtb
initramfs initrd.img followkernel
`;
