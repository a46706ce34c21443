// Applying a customisation to a raw image: decide how this image wants to be customised,
// then edit its root file system (Yocto and other plain roots) or its Pi OS boot partition.
//
// The choice, in order:
//  1. a boot partition with cloud-init's user-data or meta-data → cloud-init files;
//  2. a boot partition with cmdline.txt and Raspberry Pi OS's first-boot machinery (issue.txt
//     on the boot partition; /etc/rpi-issue, userconf-pi or raspberrypi-sys-mods on the root)
//     → Imager-style userconf.txt / ssh / firstrun.sh;
//  3. an ext root file system → edit it directly (works with no first-boot machinery at
//     all, which is what Yocto images — meta-raspberrypi ones included — have);
//  4. a lone boot partition with cmdline.txt → Imager-style files.
import { withExt4 } from '../disk/ext4.ts';
import { withFat } from '../disk/fat.ts';
import type { DerivedImage } from '../disk/workbase.ts';
import { customiseRaspios } from './raspios.ts';
import { type ApplyResult, customiseRootfs } from './rootfs.ts';
import type { CustomiseSpec } from './spec.ts';

export type Flavour = 'rootfs' | 'raspios' | 'cloud-init';

export interface Detected {
  flavour: Flavour;
  why: string;
  /** Where the running system mounts the boot partition (raspios only). */
  bootDir?: string;
}

const PI_OS_ROOT_MARKERS = ['/etc/rpi-issue', '/usr/lib/userconf-pi', '/usr/lib/raspberrypi-sys-mods'];

export async function detectFlavour(img: DerivedImage): Promise<Detected> {
  const { boot, root } = img.partitions;
  let bootFiles = { cmdline: false, cloudInit: false, issue: false };
  if (boot) {
    bootFiles = await withFat(img.path, boot, { write: false }, async (fat) => ({
      cmdline: await fat.exists('/cmdline.txt'),
      cloudInit: (await fat.exists('/user-data')) || (await fat.exists('/meta-data')),
      issue: await fat.exists('/issue.txt'),
    }));
  }
  let rootInfo = { piOs: undefined as string | undefined, firmwareDir: false };
  if (root) {
    rootInfo = await withExt4(img.path, { offset: root.offset, write: false }, async (fs) => {
      let piOs: string | undefined;
      for (const m of PI_OS_ROOT_MARKERS) if (!piOs && (await fs.exists(m))) piOs = m;
      return { piOs, firmwareDir: await fs.exists('/boot/firmware') };
    });
  }
  const bootDir = rootInfo.firmwareDir ? '/boot/firmware' : '/boot';
  if (boot && bootFiles.cloudInit)
    return { flavour: 'cloud-init', why: 'the boot partition has cloud-init user-data', bootDir };
  if (boot && bootFiles.cmdline && (bootFiles.issue || rootInfo.piOs))
    return {
      flavour: 'raspios',
      why: `Raspberry Pi OS (${rootInfo.piOs ?? 'issue.txt on the boot partition'}): its first boot applies the settings`,
      bootDir,
    };
  if (root) return { flavour: 'rootfs', why: 'the root file system is edited directly' };
  if (boot && bootFiles.cmdline)
    return {
      flavour: 'raspios',
      why: 'a Raspberry Pi boot partition with no readable root: its first boot applies the settings',
      bootDir,
    };
  throw new Error(
    'this image has neither a Linux root file system (ext2/3/4) nor a Raspberry Pi boot partition to customise',
  );
}

export async function customiseImage(
  img: DerivedImage,
  spec: CustomiseSpec,
  opts: { salt?: string; flavour?: Flavour } = {},
): Promise<ApplyResult & Detected> {
  const detected = opts.flavour
    ? { flavour: opts.flavour, why: 'chosen by the caller' }
    : await detectFlavour(img);
  const { boot, root } = img.partitions;
  if (detected.flavour === 'rootfs') {
    if (!root) throw new Error('this image has no ext2/3/4 root file system to edit');
    const r = await withExt4(img.path, { offset: root.offset, write: true }, (fs) =>
      customiseRootfs(fs, spec, { salt: opts.salt }),
    );
    return { ...detected, ...r };
  }
  if (!boot) throw new Error('this image has no FAT boot partition for first-boot settings');
  const r = await withFat(img.path, boot, { write: true }, (fat) =>
    customiseRaspios(fat, spec, {
      salt: opts.salt,
      bootDir: ('bootDir' in detected && detected.bootDir) || '/boot',
      cloudInit: detected.flavour === 'cloud-init',
    }),
  );
  return { ...detected, ...r };
}
