import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  findQemubootConf,
  imageOfConf,
  parseQemuboot,
  readQemuboot,
} from '../../electron/engine/image/qemuboot.ts';
import {
  kirkstoneQemuarm64Conf,
  kirkstoneQemux86Conf,
  removeTempDirs,
  STAMP,
  scarthgapQemuarm64Conf,
  scarthgapQemux86Conf,
  tempDir,
} from '../helpers/deploy-fixtures.ts';

describe('parseQemuboot', () => {
  it('reads a scarthgap qemuarm64 qemuboot.conf into typed keys and the raw map', () => {
    const file = '/deploy/images/qemuarm64/core-image-minimal-qemuarm64.rootfs.qemuboot.conf';
    const c = parseQemuboot(scarthgapQemuarm64Conf(), file);
    expect(c.qb_system_name).toBe('qemu-system-aarch64');
    expect(c.qb_machine).toBe('-machine virt');
    expect(c.qb_cpu).toBe('-cpu cortex-a57');
    expect(c.qb_cpu_kvm).toBe('-cpu host -machine gic-version=3');
    expect(c.qb_mem).toBe('-m 256');
    // configparser strips the leading blank that ":append" leaves.
    expect(c.qb_kernel_cmdline_append).toBe('swiotlb=0');
    // Values keep their own '=' signs.
    expect(c.qb_rootfs_opt).toBe(
      '-drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-pci,drive=disk0',
    );
    expect(c.serial_consoles).toBe('115200;ttyAMA0 115200;hvc0');
    expect(c.qb_nfsrootfs_extra_opt).toBe('');
    expect(c.machine).toBe('qemuarm64');
    expect(c.image_link_name).toBe('core-image-minimal-qemuarm64.rootfs');
    // runqemu's path rules: "." is the conf's directory, "../x" becomes absolute.
    expect(c.deploy_dir_image).toBe('/deploy/images/qemuarm64');
    expect(c.staging_bindir_native).toBe(
      '/work/x86_64-linux/qemu-helper-native/1.0/recipe-sysroot-native/usr/bin',
    );
    expect(c.raw.staging_bindir_native).toBe(
      '../../../work/x86_64-linux/qemu-helper-native/1.0/recipe-sysroot-native/usr/bin/',
    );
    // Keys runqemu does not read stay in the raw map.
    expect(c.raw.qb_no_pni).toBe('net.ifnames=0');
    expect(c.lineOf.qb_machine).toBe(18);
  });

  it('reads all four reference confs (kirkstone and scarthgap, arm64 and x86-64)', () => {
    const k64 = parseQemuboot(kirkstoneQemuarm64Conf(), '/d/k.qemuboot.conf');
    expect(k64.qb_rootfs_opt).toContain('virtio-blk-device');
    expect(k64.qb_kernel_cmdline_append).toBeUndefined();
    const kx = parseQemuboot(kirkstoneQemux86Conf(), '/d/kx.qemuboot.conf');
    expect(kx.qb_cpu).toBe('-cpu IvyBridge -machine q35');
    expect(kx.qb_rootfs_opt).toBeUndefined();
    const sx = parseQemuboot(scarthgapQemux86Conf(), '/d/sx.qemuboot.conf');
    expect(sx.qb_cpu).toBe('-cpu IvyBridge -machine q35,i8042=off');
    expect(sx.qb_graphics).toBe('');
    expect(sx.qb_serial_opt).toBe('-serial mon:stdio -serial null');
  });

  it('tolerates CRLF, a BOM, comments, ":" as delimiter, other sections and continuation lines', () => {
    const text =
      '\uFEFF# written by hand\r\n[other]\r\nqb_mem = -m 9999\r\n\r\n[config_bsp]\r\n; a comment\r\n' +
      'qb_mem: -m 512\r\nqb_opt_append = -device a=b,c=d\r\n    -device e\r\nQB_SMP = -smp 2\r\n';
    const c = parseQemuboot(text, '/x/y.qemuboot.conf');
    expect(c.qb_mem).toBe('-m 512');
    expect(c.qb_opt_append).toBe('-device a=b,c=d\n-device e');
    expect(c.qb_smp).toBe('-smp 2');
    expect(c.lineOf.qb_opt_append).toBe(8);
  });

  it('applies configparser interpolation (%% and %(key)s)', () => {
    const c = parseQemuboot(
      '[config_bsp]\nmachine = qemuarm64\nqb_opt_append = -name %(machine)s-100%%\n',
      '/x.conf',
    );
    expect(c.qb_opt_append).toBe('-name qemuarm64-100%');
  });

  it.each([
    [
      'qb_mem = -m 256\n',
      '/c/a.qemuboot.conf:1: "qb_mem = -m 256" comes before any section; expected [config_bsp] first',
    ],
    [
      '[config_bsp]\nqb_mem = -m 256\nqb_smp = 2\nqb_mem = -m 512\n',
      '/c/a.qemuboot.conf:4: qb_mem is set twice (first on line 2)',
    ],
    [
      '[config_bsp]\nqb_mem -m 256\n',
      '/c/a.qemuboot.conf:2: cannot read "qb_mem -m 256": expected "key = value"',
    ],
    ['[other]\nqb_mem = 1\n', '/c/a.qemuboot.conf:1: no [config_bsp] section (is this a qemuboot.conf?)'],
    [
      '[config_bsp]\n\nqb_opt_append = 50% off\n',
      '/c/a.qemuboot.conf:3: a lone "%" in the value; write %% for a literal percent sign',
    ],
    [
      '[config_bsp]\nqb_opt_append = %(nope)s\n',
      '/c/a.qemuboot.conf:2: %(nope)s refers to a key that is not set',
    ],
    ['[config_bsp]\n[config_bsp]\n', '/c/a.qemuboot.conf:2: section [config_bsp] appears twice'],
  ])('reports bad input with file:line (%#)', (text, message) => {
    expect(() => parseQemuboot(text, '/c/a.qemuboot.conf')).toThrow(message);
    try {
      parseQemuboot(text, '/c/a.qemuboot.conf');
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('readQemuboot says which file it could not read', () => {
    expect(() => readQemuboot('/nonexistent/x.qemuboot.conf')).toThrow(
      'cannot read /nonexistent/x.qemuboot.conf: ENOENT',
    );
  });
});

describe('findQemubootConf', () => {
  function dirWith(names: Array<string | [string, string]>): string {
    const dir = tempDir();
    for (const n of names) {
      if (Array.isArray(n)) symlinkSync(n[1], path.join(dir, n[0]));
      else writeFileSync(path.join(dir, n), '[config_bsp]\n');
    }
    return dir;
  }

  it('finds the kirkstone link name next to its timestamped file', () => {
    const dir = dirWith([
      'core-image-minimal-qemuarm64-20220416133845.qemuboot.conf',
      [
        'core-image-minimal-qemuarm64.qemuboot.conf',
        'core-image-minimal-qemuarm64-20220416133845.qemuboot.conf',
      ],
      'core-image-minimal-qemuarm64.ext4',
    ]);
    expect(findQemubootConf(dir)).toBe(path.join(dir, 'core-image-minimal-qemuarm64.qemuboot.conf'));
  });

  it('finds the ≥ 4.3 ".rootfs" name, and the newest timestamped one when there is no link', () => {
    const dir = dirWith([
      `core-image-minimal-qemuarm64.rootfs-${STAMP}.qemuboot.conf`,
      'core-image-minimal-qemuarm64.rootfs.qemuboot.conf',
    ]);
    expect(findQemubootConf(dir)).toBe(path.join(dir, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'));
    const bare = dirWith([
      'core-image-minimal-qemuarm64.rootfs-20240101000000.qemuboot.conf',
      'core-image-minimal-qemuarm64.rootfs-20240520094853.qemuboot.conf',
    ]);
    expect(findQemubootConf(bare)).toBe(
      path.join(bare, 'core-image-minimal-qemuarm64.rootfs-20240520094853.qemuboot.conf'),
    );
  });

  it('with several images, names them unless one is picked by image name', () => {
    const dir = dirWith([
      'core-image-minimal-qemuarm64.rootfs.qemuboot.conf',
      'core-image-sato-qemuarm64.rootfs.qemuboot.conf',
    ]);
    expect(() => findQemubootConf(dir)).toThrow(
      `several images in ${dir}: core-image-minimal-qemuarm64, core-image-sato-qemuarm64; say which one to boot`,
    );
    expect(findQemubootConf(dir, 'core-image-sato')).toBe(
      path.join(dir, 'core-image-sato-qemuarm64.rootfs.qemuboot.conf'),
    );
    expect(findQemubootConf(dir, 'core-image-minimal-qemuarm64')).toBe(
      path.join(dir, 'core-image-minimal-qemuarm64.rootfs.qemuboot.conf'),
    );
    expect(() => findQemubootConf(dir, 'core-image-weston')).toThrow(
      `no qemuboot.conf for image core-image-weston in ${dir} (found: core-image-minimal-qemuarm64, core-image-sato-qemuarm64)`,
    );
  });

  it('skips initramfs images when there is another choice, as runqemu does', () => {
    const dir = dirWith([
      'core-image-minimal-initramfs-qemux86-64.qemuboot.conf',
      'core-image-minimal-qemux86-64.qemuboot.conf',
    ]);
    expect(findQemubootConf(dir)).toBe(path.join(dir, 'core-image-minimal-qemux86-64.qemuboot.conf'));
  });

  it('says when there is none, or no directory', () => {
    const dir = dirWith(['Image', 'rootfs.ext4']);
    expect(() => findQemubootConf(dir)).toThrow(`no *.qemuboot.conf in ${dir}`);
    const missing = path.join(dir, 'nope');
    expect(() => findQemubootConf(missing)).toThrow(`cannot read the deploy directory ${missing}: ENOENT`);
  });

  it('names images from conf file names', () => {
    expect(imageOfConf(`core-image-minimal-qemuarm64.rootfs-${STAMP}.qemuboot.conf`)).toBe(
      'core-image-minimal-qemuarm64',
    );
    expect(imageOfConf('core-image-minimal-qemux86-64-20220416133845.qemuboot.conf')).toBe(
      'core-image-minimal-qemux86-64',
    );
  });
});

afterAll(removeTempDirs);
