import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBootPlan } from '../../electron/engine/image/argv.ts';
import {
  BOARD_PROFILES,
  boardAvailable,
  detectBoard,
  profileToQemuboot,
} from '../../electron/engine/image/boards.ts';
import { loadDeployDir } from '../../electron/engine/image/descriptor.ts';
import type { MachineInfo } from '../../electron/engine/qemu/discovery.ts';
import {
  arm64Image,
  bzImage,
  dtbBlob,
  removeTempDirs,
  tempDir,
  writeDeploy,
} from '../helpers/deploy-fixtures.ts';

const v = (major: number, minor: number) => ({
  major,
  minor,
  micro: 0,
  text: `QEMU emulator version ${major}.${minor}.0`,
});
const machines = (...names: string[]): MachineInfo[] =>
  names.map((name) => ({ name, description: name, isDefault: false }));
const MiB = 1024 * 1024;

const bootOpts = (dir: string) => ({
  disk: { path: path.join(dir, 'overlay.qcow2'), format: 'qcow2' as const },
  accel: 'tcg',
  qmpSocket: '/run/s/qmp',
  monitorSocket: '/run/s/mon',
  serialSockets: ['/run/s/serial0', '/run/s/serial1'],
  name: 'pi',
  sshPort: 43100,
  hostArch: 'x86_64',
});

describe('board profiles', () => {
  it('raspi4b is offered only on QEMU 9.0 or newer, and says why not', () => {
    const pi4 = BOARD_PROFILES['raspberrypi4-64'];
    expect(boardAvailable(pi4, v(7, 2), machines('raspi3b', 'virt'))).toEqual({
      ok: false,
      why: 'raspi4b needs QEMU 9.0 or newer; this QEMU is 7.2',
    });
    expect(boardAvailable(pi4, v(9, 0), machines('raspi4b'))).toEqual({ ok: true });
    expect(boardAvailable(pi4, v(10, 1), machines('raspi4b'))).toEqual({ ok: true });
    expect(boardAvailable(pi4, v(9, 0), machines('raspi3b'))).toEqual({
      ok: false,
      why: 'this qemu-system-aarch64 has no raspi4b board (it is not in -machine help)',
    });
    expect(boardAvailable(BOARD_PROFILES['raspberrypi3-64'], v(7, 2), machines('raspi3b'))).toEqual({
      ok: true,
    });
  });

  it('each profile says what the emulated board lacks, in sentences', () => {
    for (const p of Object.values(BOARD_PROFILES)) {
      expect(p.lacks.length).toBeGreaterThan(0);
      for (const s of p.lacks) expect(s).toMatch(/^[A-Z].*\.$/);
    }
    for (const id of ['raspberrypi3-64', 'raspberrypi4-64'] as const) {
      const text = BOARD_PROFILES[id].lacks.join(' ');
      expect(text).toContain('Wi-Fi');
      expect(text).toContain('Bluetooth');
      expect(text).toContain('GPU');
    }
    const pi4 = BOARD_PROFILES['raspberrypi4-64'].lacks.join(' ');
    expect(pi4).toContain('No PCIe');
    expect(pi4).toContain('No Ethernet');
  });

  it('qemuarm64 uses cortex-a57, not -cpu max (4x slower under TCG)', () => {
    expect(BOARD_PROFILES.qemuarm64.qb.qb_cpu).toBe('-cpu cortex-a57');
    expect(BOARD_PROFILES['qemux86-64'].board).toBe('q35');
  });

  it('guesses the board from file names', () => {
    expect(detectBoard(['Image', 'bcm2710-rpi-3-b.dtb', 'sd.wic'])).toBe('raspberrypi3-64');
    expect(detectBoard(['core-image-base-raspberrypi4-64.rootfs.wic'])).toBe('raspberrypi4-64');
    expect(detectBoard(['Image-qemuarm64.bin'])).toBe('qemuarm64');
    expect(detectBoard(['kernel', 'disk.img'])).toBeUndefined();
  });
});

describe('Raspberry Pi 3 without a qemuboot.conf', () => {
  function piDir(extra: Record<string, Parameters<typeof writeDeploy>[1][string]> = {}) {
    const dir = path.join(tempDir(), 'my pi "image"');
    return writeDeploy(dir, {
      'kernel8.img': arm64Image(),
      'bcm2710-rpi-3-b.dtb': dtbBlob(),
      'bcm2837-rpi-3-b.dtb': dtbBlob(),
      'raspios-lite.img': { sdBytes: 64 * MiB },
      ...extra,
    });
  }

  it('profileToQemuboot fills in the kernel, device tree and root partition', async () => {
    const dir = piDir();
    const qb = await profileToQemuboot(BOARD_PROFILES['raspberrypi3-64'], dir);
    expect(qb.qb_default_kernel).toBe('kernel8.img');
    expect(qb.qb_dtb).toBe('bcm2710-rpi-3-b.dtb');
    expect(qb.qb_default_fstype).toBe('img');
    expect(qb.image_link_name).toBe('raspios-lite');
    expect(qb.qb_kernel_root).toBe('/dev/mmcblk0p2 rootwait');
    expect(qb.qb_machine).toBe('-machine raspi3b');
  });

  it('boots raspi3b with -drive if=sd, -dtb, usb-net, ttyAMA0 and a fixed 1 GiB', async () => {
    const dir = piDir();
    const desc = await loadDeployDir(dir); // no conf: the board is guessed from the dtb names
    expect(desc.profile).toBe('raspberrypi3-64');
    expect(desc.board).toBe('raspi3b');
    expect(desc.sdCard).toBe(true);
    expect(desc.serialConsoles).toEqual([{ baud: 115200, tty: 'ttyAMA0' }]);
    const plan = await buildBootPlan(desc, { ...bootOpts(dir), memMiB: 512, smp: 2 });
    const mac = plan.argv[3];
    expect(plan.argv).toEqual([
      '-name',
      'pi',
      '-device',
      mac,
      '-netdev',
      `user,id=net0,hostfwd=tcp:127.0.0.1:${plan.sshPort}-:22`,
      '-drive',
      `if=sd,file=${path.join(dir, 'overlay.qcow2')},format=qcow2`,
      '-machine',
      'raspi3b',
      '-accel',
      'tcg,thread=multi',
      '-m',
      '1024',
      '-chardev',
      'socket,id=qmp0,path=/run/s/qmp,server=on,wait=off',
      '-mon',
      'chardev=qmp0,mode=control',
      '-chardev',
      'socket,id=mon0,path=/run/s/mon,server=on,wait=off',
      '-mon',
      'chardev=mon0,mode=readline',
      '-chardev',
      'socket,id=serial0,path=/run/s/serial0,server=on,wait=off',
      '-serial',
      'chardev:serial0',
      '-serial',
      'null',
      '-display',
      'none',
      '-kernel',
      path.join(dir, 'kernel8.img'),
      '-append',
      'root=/dev/mmcblk0p2 rootwait rw ip=dhcp console=ttyAMA0',
      '-dtb',
      path.join(dir, 'bcm2710-rpi-3-b.dtb'),
    ]);
    expect(mac).toMatch(/^usb-net,netdev=net0,mac=52:54:00:/);
    expect(plan.notes).toEqual([
      'raspi3b always has 1024 MiB of RAM; 512 MiB is not possible on it',
      'raspi3b always has 4 CPUs; ignoring smp=2',
    ]);
  });

  it('cannot use KVM: falls back to TCG and says so', async () => {
    const dir = piDir();
    const plan = await buildBootPlan(await loadDeployDir(dir), { ...bootOpts(dir), accel: 'kvm' });
    expect(plan.accel).toBe('tcg');
    expect(plan.argv).toContain('tcg,thread=multi');
    expect(plan.notes[0]).toBe(
      'raspi3b has no qb_cpu_kvm (hardware-accelerated CPU settings), so it runs under TCG instead of kvm',
    );
  });

  it('a bare ext4 root goes on /dev/mmcblk0', async () => {
    const dir = writeDeploy(path.join(tempDir(), 'pi-ext4'), {
      Image: arm64Image(),
      'bcm2837-rpi-3-b.dtb': dtbBlob(),
      'core-image-minimal-raspberrypi3-64.rootfs.ext3': { ext4Blocks: 8192 },
    });
    const desc = await loadDeployDir(dir, { board: 'raspberrypi3-64' });
    expect(desc.conf.qb_kernel_root).toBe('/dev/mmcblk0 rootwait');
    expect(desc.dtb).toBe(path.join(dir, 'bcm2837-rpi-3-b.dtb'));
  });

  it('says what is missing, in one line', async () => {
    const noDtb = writeDeploy(path.join(tempDir(), 'x'), {
      'kernel8.img': arm64Image(),
      'a.wic': { sdBytes: 32 * MiB },
    });
    await expect(loadDeployDir(noDtb, { board: 'raspberrypi3-64' })).rejects.toThrow(
      `no device tree for raspberrypi3-64 in ${noDtb} (looked for bcm2710-rpi-3-b.dtb, bcm2710-rpi-3-b-plus.dtb, bcm2837-rpi-3-b.dtb, bcm2837-rpi-3-b-plus.dtb)`,
    );
    const packed = writeDeploy(path.join(tempDir(), 'y'), {
      'kernel8.img': arm64Image(),
      'bcm2710-rpi-3-b.dtb': dtbBlob(),
      'raspios.img.xz': Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]),
    });
    await expect(loadDeployDir(packed, { board: 'raspberrypi3-64' })).rejects.toThrow(
      `raspios.img.xz in ${packed} is compressed; unpack it first (or import it, and Stacklab unpacks it)`,
    );
    const truncated = piDir({
      'raspios-lite.img': { sdBytes: 16 * MiB, rootSectors: (64 * MiB) / 512 - 16384 },
    });
    await expect(loadDeployDir(truncated)).rejects.toThrow(
      'rootfs raspios-lite.img is truncated: its partition table ends at 64 MiB but the file has 16 MiB',
    );
    await expect(loadDeployDir(truncated, { board: 'raspberrypi5' })).rejects.toThrow(
      'unknown board "raspberrypi5" (known: qemuarm64, qemux86-64, raspberrypi3-64, raspberrypi4-64)',
    );
  });
});

describe('profiles and qemuboot.conf give the same boot', () => {
  it('a deploy dir described by the qemux86-64 profile boots like the same values written as a qemuboot.conf', async () => {
    const dir = writeDeploy(path.join(tempDir(), 'x86'), {
      'bzImage-qemux86-64.bin': bzImage(),
      'core-image-minimal-qemux86-64.rootfs.ext4': { ext4Blocks: 8192 },
    });
    const byProfile = await loadDeployDir(dir, { board: 'qemux86-64' });
    const qb = await profileToQemuboot(BOARD_PROFILES['qemux86-64'], dir);
    const text = [
      '[config_bsp]',
      ...Object.keys(qb.raw)
        .sort()
        .map((k) => `${k} = ${qb.raw[k]}`),
      '',
    ].join('\n');
    writeFileSync(path.join(dir, 'core-image-minimal-qemux86-64.rootfs.qemuboot.conf'), text);
    const byConf = await loadDeployDir(dir);
    const strip = ({ conf: _c, profile: _p, ...rest }: typeof byProfile) => rest;
    expect(strip(byConf)).toEqual(strip(byProfile));
    const o = { ...bootOpts(dir), sshPort: 43200, mac: '52:54:00:00:00:01' };
    const a = await buildBootPlan(byProfile, o);
    const b = await buildBootPlan(byConf, o);
    expect(b.argv.map((x) => x.replace(/127\.0\.0\.1:\d+/, 'PORT'))).toEqual(
      a.argv.map((x) => x.replace(/127\.0\.0\.1:\d+/, 'PORT')),
    );
    expect(a.argv).toContain('Skylake-Client');
    expect(a.kernelCmdline).toBe(
      'root=/dev/vda rw ip=dhcp console=ttyS0 console=ttyS1 oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 swiotlb=0',
    );
  });
});

afterAll(removeTempDirs);
