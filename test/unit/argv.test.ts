import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { split } from 'shlex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BootOptions,
  buildBootPlan,
  findFreePort,
  formatCommandLine,
  macFor,
  parseMemMiB,
  uartIndex,
} from '../../electron/engine/image/argv.ts';
import { loadDeployDir } from '../../electron/engine/image/descriptor.ts';
import {
  arm64Image,
  dtbBlob,
  referenceDeploy,
  removeTempDirs,
  tempDir,
  writeDeploy,
} from '../helpers/deploy-fixtures.ts';

// One parent directory whose name has a space, quotes and a comma: every path below goes
// through it, so the argv must carry such paths intact (and QEMU option lists escaped).
const parent = path.join(tempDir(), `lab "one", it's`);
const disk = path.join(parent, 'vm 1', 'disk.qcow2');
const sock = (n: string) => path.join('/run/stacklab-0/ab12', n);
const esc = (s: string) => s.replaceAll(',', ',,');

// Ports from 42000 up are what these tests ask for; a server holds the first so the planner must bump.
let blocker: net.Server;
let firstPort: number;
beforeAll(async () => {
  firstPort = await findFreePort(42000);
  blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(firstPort, '127.0.0.1', r));
});
afterAll(() => new Promise<void>((r) => blocker.close(() => r())));

function opts(extra: Partial<BootOptions> = {}): BootOptions {
  return {
    disk: { path: disk, format: 'qcow2' },
    accel: 'tcg',
    qmpSocket: sock('qmp.sock'),
    monitorSocket: sock('monitor.sock'),
    serialSockets: [sock('serial0.sock'), sock('serial1.sock')],
    name: 'stacklab-vm1',
    sshPort: firstPort,
    hostArch: 'x86_64',
    ...extra,
  };
}

const control = [
  '-chardev',
  `socket,id=qmp0,path=${sock('qmp.sock')},server=on,wait=off`,
  '-mon',
  'chardev=qmp0,mode=control',
  '-chardev',
  `socket,id=mon0,path=${sock('monitor.sock')},server=on,wait=off`,
  '-mon',
  'chardev=mon0,mode=readline',
];

describe('buildBootPlan: the runqemu command line', () => {
  it('scarthgap qemuarm64 under TCG: exact argv', async () => {
    const f = referenceDeploy(parent, 'scarthgap-qemuarm64');
    const plan = await buildBootPlan(await loadDeployDir(f.dir), opts());
    expect(plan.sshPort).toBeGreaterThan(firstPort); // the first one was busy
    const mac = macFor('stacklab-vm1');
    expect(plan.argv).toEqual([
      '-name',
      'stacklab-vm1',
      '-device',
      `virtio-net-pci,netdev=net0,mac=${mac}`,
      '-netdev',
      `user,id=net0,hostfwd=tcp:127.0.0.1:${plan.sshPort}-:22`,
      '-object',
      'rng-random,filename=/dev/urandom,id=rng0',
      '-device',
      'virtio-rng-pci,rng=rng0',
      '-drive',
      `id=disk0,file=${esc(disk)},if=none,format=qcow2`,
      '-device',
      'virtio-blk-pci,drive=disk0',
      '-device',
      'qemu-xhci',
      '-device',
      'usb-tablet',
      '-device',
      'usb-kbd',
      '-machine',
      'virt',
      '-cpu',
      'cortex-a57',
      '-smp',
      '4',
      '-accel',
      'tcg,thread=multi',
      '-m',
      '256',
      ...control,
      '-chardev',
      `socket,id=serial0,path=${sock('serial0.sock')},server=on,wait=off`,
      '-serial',
      'chardev:serial0',
      '-serial',
      'null',
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,id=virtcon,path=${sock('serial1.sock')},server=on,wait=off`,
      '-device',
      'virtconsole,chardev=virtcon',
      '-display',
      'none',
      '-device',
      'virtio-gpu-pci',
      '-kernel',
      f.kernel,
      '-append',
      'root=/dev/vda rw mem=256M ip=dhcp console=ttyAMA0 console=hvc0 swiotlb=0',
    ]);
    expect(plan.kernelCmdline).toBe(
      'root=/dev/vda rw mem=256M ip=dhcp console=ttyAMA0 console=hvc0 swiotlb=0',
    );
    expect(plan.binary).toBe('qemu-system-aarch64');
    expect(plan.accel).toBe('tcg');
    expect(plan.consoles).toEqual([
      { index: 0, name: 'ttyAMA0', socket: sock('serial0.sock') },
      { index: 1, name: 'hvc0', socket: sock('serial1.sock') },
    ]);
    expect(plan.env).toEqual({ QEMU_AUDIO_DRV: 'none' });
    expect(plan.notes).toEqual([]);
  });

  it('with KVM uses qb_cpu_kvm and -accel kvm', async () => {
    const f = referenceDeploy(parent, 'scarthgap-qemuarm64');
    const plan = await buildBootPlan(await loadDeployDir(f.dir), opts({ accel: 'kvm' }));
    const at = plan.argv.indexOf('-machine');
    expect(plan.argv.slice(at, at + 12)).toEqual([
      '-machine',
      'virt',
      '-cpu',
      'host',
      '-machine',
      'gic-version=3',
      '-smp',
      '4',
      '-accel',
      'kvm',
      '-m',
      '256',
    ]);
    expect(plan.accel).toBe('kvm');
  });

  it('kirkstone qemuarm64: virtio-mmio devices from the conf, no swiotlb', async () => {
    const f = referenceDeploy(parent, 'kirkstone-qemuarm64');
    const desc = await loadDeployDir(f.dir);
    expect(desc.kernel).toBe(f.kernel); // qb_default_kernel is missing; found as Image*
    const plan = await buildBootPlan(desc, opts({ disk: { path: disk, format: 'raw' } }));
    expect(plan.argv).toContain(`id=disk0,file=${esc(disk)},if=none,format=raw`);
    expect(plan.argv).toContain('virtio-blk-device,drive=disk0');
    expect(plan.argv).toContain(`virtio-net-device,netdev=net0,mac=${macFor('stacklab-vm1')}`);
    const hvc = plan.argv.indexOf('virtio-serial-device');
    expect(plan.argv.slice(hvc - 1, hvc + 5)).toEqual([
      '-device',
      'virtio-serial-device',
      '-chardev',
      `socket,id=virtcon,path=${sock('serial1.sock')},server=on,wait=off`,
      '-device',
      'virtconsole,chardev=virtcon',
    ]);
    expect(plan.kernelCmdline).toBe('root=/dev/vda rw mem=256M ip=dhcp console=ttyAMA0 console=hvc0');
  });

  it('scarthgap qemux86-64: runqemu default drive, no mem=, two UARTs, no stdio', async () => {
    const f = referenceDeploy(parent, 'scarthgap-qemux86-64');
    const plan = await buildBootPlan(await loadDeployDir(f.dir), opts());
    expect(plan.argv).toEqual([
      '-name',
      'stacklab-vm1',
      '-device',
      `virtio-net-pci,netdev=net0,mac=${macFor('stacklab-vm1')}`,
      '-netdev',
      `user,id=net0,hostfwd=tcp:127.0.0.1:${plan.sshPort}-:22`,
      '-object',
      'rng-random,filename=/dev/urandom,id=rng0',
      '-device',
      'virtio-rng-pci,rng=rng0',
      '-drive',
      `file=${esc(disk)},if=virtio,format=qcow2`,
      '-usb',
      '-device',
      'usb-tablet',
      '-usb',
      '-device',
      'usb-kbd',
      '-cpu',
      'IvyBridge',
      '-machine',
      'q35,i8042=off',
      '-smp',
      '4',
      '-accel',
      'tcg,thread=multi',
      '-m',
      '256',
      ...control,
      '-chardev',
      `socket,id=serial0,path=${sock('serial0.sock')},server=on,wait=off`,
      '-chardev',
      `socket,id=serial1,path=${sock('serial1.sock')},server=on,wait=off`,
      '-serial',
      'chardev:serial0',
      '-serial',
      'chardev:serial1',
      '-display',
      'none',
      '-kernel',
      f.kernel,
      '-append',
      'root=/dev/vda rw ip=dhcp console=ttyS0 console=ttyS1 oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 swiotlb=0',
    ]);
    expect(plan.argv).not.toContain('mon:stdio');
  });

  it('kirkstone qemux86-64: the same shape, from its own values', async () => {
    const f = referenceDeploy(parent, 'kirkstone-qemux86-64');
    const plan = await buildBootPlan(await loadDeployDir(f.dir), opts({ memMiB: 512, smp: 2 }));
    const at = plan.argv.indexOf('-cpu');
    expect(plan.argv.slice(at, at + 10)).toEqual([
      '-cpu',
      'IvyBridge',
      '-machine',
      'q35',
      '-smp',
      '2',
      '-accel',
      'tcg,thread=multi',
      '-m',
      '512',
    ]);
    expect(plan.kernelCmdline).toBe(
      'root=/dev/vda rw ip=dhcp console=ttyS0 console=ttyS1 oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1',
    );
  });
});

describe('buildBootPlan: placeholders and rules', () => {
  async function custom(
    confLines: string,
    extra: Partial<BootOptions> = {},
    files: Record<string, Buffer> = {},
  ) {
    const dir = path.join(tempDir(), 'deploy, "custom"');
    writeDeploy(dir, {
      'img-qemuarm64.qemuboot.conf': `[config_bsp]\nmachine = qemuarm64\nqb_system_name = qemu-system-aarch64\nqb_machine = -machine virt\nqb_cpu = -cpu cortex-a57\nqb_default_fstype = ext4\nqb_default_kernel = Image\nimage_link_name = img-qemuarm64\n${confLines.includes('serial_consoles') ? '' : 'serial_consoles = 115200;ttyAMA0\n'}${confLines}`,
      Image: arm64Image(),
      'img-qemuarm64.ext4': { ext4Blocks: 4096 },
      ...files,
    });
    const desc = await loadDeployDir(dir);
    return {
      dir,
      desc,
      plan: await buildBootPlan(desc, opts({ serialSockets: [sock('serial0.sock')], ...extra })),
    };
  }

  it('replaces @DEPLOY_DIR_IMAGE@ (commas doubled only inside option lists) and keeps format=raw for a raw disk', async () => {
    const { dir, plan } = await custom(
      'qb_opt_append = -initrd @DEPLOY_DIR_IMAGE@/initrd.cpio.gz -drive if=none,id=extra,file=@DEPLOY_DIR_IMAGE@/extra.img\n' +
        'qb_rootfs_opt = -drive id=disk0,file=@ROOTFS@,if=none,format=raw -device virtio-blk-pci,drive=disk0\n',
      { disk: { path: '/vms/a,b/base.img', format: 'raw' } },
    );
    expect(plan.argv).toContain(`${dir}/initrd.cpio.gz`);
    expect(plan.argv).toContain(`if=none,id=extra,file=${esc(dir)}/extra.img`);
    expect(plan.argv).toContain('id=disk0,file=/vms/a,,b/base.img,if=none,format=raw');
  });

  it('adds format= to a qb_rootfs_opt drive that has none', async () => {
    const { plan } = await custom('qb_rootfs_opt = -drive file=@ROOTFS@,if=virtio\n');
    expect(plan.argv).toContain(`file=${esc(disk)},if=virtio,format=qcow2`);
  });

  it('@MAC@ becomes a stable, locally administered unicast MAC per VM', async () => {
    const { plan } = await custom('qb_network_device = -device virtio-net-pci,netdev=net0,mac=@MAC@\n');
    const mac = macFor('stacklab-vm1');
    expect(plan.argv).toContain(`virtio-net-pci,netdev=net0,mac=${mac}`);
    expect(macFor('stacklab-vm1')).toBe(mac);
    expect(macFor('stacklab-vm2')).not.toBe(mac);
    expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = Number.parseInt(mac.slice(0, 2), 16);
    expect(first & 0x02).toBe(0x02); // locally administered
    expect(first & 0x01).toBe(0); // unicast
  });

  it('without qb_network_device uses runqemu’s e1000; network none gives -nic none and no ip=', async () => {
    const { plan } = await custom('');
    expect(plan.argv).toContain(`e1000,netdev=net0,mac=${macFor('stacklab-vm1')}`);
    const off = await custom('', { network: 'none' });
    expect(off.plan.argv.slice(2, 4)).toEqual(['-nic', 'none']);
    expect(off.plan.kernelCmdline).not.toContain('ip=');
    expect(off.plan.sshPort).toBeUndefined();
  });

  it('qb_kernel_cmdline = none drops the generated command line; bootparams still go through', async () => {
    const { plan } = await custom('qb_kernel_cmdline = none\nqb_kernel_cmdline_append = quiet\n');
    expect(plan.argv).not.toContain('-append');
    const withParams = await custom('qb_kernel_cmdline = none\n', { bootparams: 'init=/bin/sh' });
    expect(withParams.plan.argv.slice(-2)).toEqual(['-append', 'init=/bin/sh']);
  });

  it('mem= follows runqemu: from qb_mem or memMiB, never with a device tree', async () => {
    expect((await custom('qb_mem = -m 384\n')).plan.kernelCmdline).toContain('mem=384M');
    expect((await custom('qb_mem = 1G\n')).plan.argv).toContain('1024');
    const override = await custom('qb_mem = -m 384\n', { memMiB: 768 });
    expect(override.plan.kernelCmdline).toContain('mem=768M');
    expect(
      override.plan.argv.slice(override.plan.argv.indexOf('-m'), override.plan.argv.indexOf('-m') + 2),
    ).toEqual(['-m', '768']);
    const withDtb = await custom('qb_dtb = virt.dtb\n', {}, { 'virt.dtb': dtbBlob() });
    expect(withDtb.plan.kernelCmdline).not.toContain('mem=');
    expect(withDtb.plan.argv.slice(-2)[0]).toBe('-dtb');
  });

  it('orders console= as serial_consoles lists them, after root, mem and ip', async () => {
    const { plan } = await custom(
      'serial_consoles = 115200;hvc0 115200;ttyAMA0\nqb_kernel_root = /dev/vdb ro\n',
      {
        serialSockets: [sock('a'), sock('b')],
      },
    );
    expect(plan.kernelCmdline).toBe('root=/dev/vdb ro mem=256M ip=dhcp console=hvc0 console=ttyAMA0');
    // No qb_serial_opt: Stacklab adds the virtio console itself.
    expect(plan.argv.join(' ')).toContain(
      `-device virtio-serial-pci -chardev socket,id=hvc0,path=${sock('a')},server=on,wait=off -device virtconsole,chardev=hvc0`,
    );
    expect(plan.consoles.map((c) => c.name)).toEqual(['hvc0', 'ttyAMA0']);
  });

  it('rewrites qb_slirp_opt forwards to 127.0.0.1 and free ports', async () => {
    const { plan } = await custom(
      `qb_slirp_opt = -netdev user,id=net0,hostfwd=tcp::${firstPort}-:22,hostfwd=tcp::${firstPort}-:23\n`,
    );
    const netdev = plan.argv[plan.argv.indexOf('-netdev') + 1] ?? '';
    const ports = [...netdev.matchAll(/hostfwd=tcp:127\.0\.0\.1:(\d+)-:(\d+)/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(ports).toHaveLength(2);
    expect(ports[0]?.[0]).not.toBe(firstPort);
    expect(ports[0]?.[0]).toBe(plan.sshPort);
    expect(ports[0]?.[0]).not.toBe(ports[1]?.[0]);
  });

  it('an initramfs image boots with -initrd and root=/dev/ram0', async () => {
    const dir = path.join(tempDir(), 'ramfs');
    writeDeploy(dir, {
      'tiny-qemuarm64.qemuboot.conf':
        '[config_bsp]\nmachine = qemuarm64\nqb_system_name = qemu-system-aarch64\nqb_machine = -machine virt\nqb_default_fstype = cpio.gz\nqb_default_kernel = Image\nimage_link_name = tiny-qemuarm64\nserial_consoles = 115200;ttyAMA0\n',
      Image: arm64Image(),
      'tiny-qemuarm64.cpio.gz': Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
    });
    const desc = await loadDeployDir(dir);
    expect(desc.rootfsKind).toBe('initramfs');
    const plan = await buildBootPlan(desc, opts({ serialSockets: [sock('s')] }));
    expect(plan.argv).toContain('-initrd');
    expect(plan.argv).toContain(desc.rootfs);
    expect(plan.argv.join(' ')).not.toContain(disk);
    expect(plan.kernelCmdline.startsWith('root=/dev/ram0 rw debugshell mem=256M')).toBe(true);
  });

  it('does not force MTTCG for an x86 guest on an Arm host', async () => {
    const f = referenceDeploy(parent, 'scarthgap-qemux86-64');
    const plan = await buildBootPlan(await loadDeployDir(f.dir), opts({ hostArch: 'aarch64' }));
    expect(plan.argv[plan.argv.indexOf('-accel') + 1]).toBe('tcg');
  });

  it('says when there are fewer sockets than consoles', async () => {
    const f = referenceDeploy(parent, 'scarthgap-qemuarm64');
    await expect(
      buildBootPlan(await loadDeployDir(f.dir), opts({ serialSockets: [sock('x')] })),
    ).rejects.toThrow('the image has 2 serial consoles (ttyAMA0, hvc0) but 1 sockets were given');
  });

  it('reports a qb value that cannot be split, with file:line', async () => {
    const dir = path.join(tempDir(), 'quote');
    const f = referenceDeploy(dir, 'scarthgap-qemuarm64');
    writeFileSync(
      f.conf,
      `${'[config_bsp]\n'}qb_system_name = qemu-system-aarch64\nqb_machine = -machine virt\nmachine = qemuarm64\nqb_default_fstype = ext4\nimage_link_name = core-image-minimal-qemuarm64.rootfs\nqb_default_kernel = Image-qemuarm64.bin\nqb_opt_append = -device "usb-kbd\n`,
    );
    const desc = await loadDeployDir(f.dir);
    await expect(buildBootPlan(desc, opts({ serialSockets: [sock('x')] }))).rejects.toThrow(
      `${f.conf}:8: qb_opt_append cannot be split into arguments`,
    );
  });
});

describe('helpers', () => {
  it('formatCommandLine quotes for a POSIX shell so the line splits back to the same argv', () => {
    const argv = [
      '-kernel',
      `/a b/it's "x"/Image`,
      '-append',
      'root=/dev/vda rw console=ttyAMA0',
      '-drive',
      'file=/x,,y,if=none',
    ];
    const line = formatCommandLine('/usr/bin/qemu-system-aarch64', argv);
    expect(line).toBe(
      `/usr/bin/qemu-system-aarch64 -kernel '/a b/it'"'"'s "x"/Image' -append 'root=/dev/vda rw console=ttyAMA0' -drive file=/x,,y,if=none`,
    );
    expect(split(line)).toEqual(['/usr/bin/qemu-system-aarch64', ...argv]);
  });

  it('parseMemMiB reads runqemu-style sizes', () => {
    expect(parseMemMiB('-m 256')).toBe(256);
    expect(parseMemMiB('512M')).toBe(512);
    expect(parseMemMiB('-m 2G')).toBe(2048);
    expect(parseMemMiB('-m lots')).toBeUndefined();
  });

  it('uartIndex maps guest ttys to QEMU serial ports', () => {
    expect(uartIndex('virt', 'ttyAMA0')).toBe(0);
    expect(uartIndex('q35', 'ttyS1')).toBe(1);
    expect(uartIndex('raspi3b', 'ttyAMA0')).toBe(0);
    // The Pi's mini UART is QEMU's second serial port, whatever Linux numbers it.
    expect(uartIndex('raspi3b', 'ttyS1')).toBe(1);
    expect(uartIndex('raspi3b', 'ttyS0')).toBe(1);
    expect(uartIndex('virt', 'console')).toBeUndefined();
  });

  it('findFreePort skips a busy port and does not hand the same port out twice', async () => {
    const a = await findFreePort(firstPort);
    const b = await findFreePort(firstPort);
    expect(a).not.toBe(firstPort);
    expect(b).not.toBe(a);
  });
});

afterAll(removeTempDirs);
