// Real QEMU accepts the command lines buildBootPlan makes: each plan is started paused (-S),
// inspected over its own QMP socket and quit. Paths have spaces, quotes and commas on
// purpose. When the demo guests are built, one of them also boots to its login prompt.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type BootPlan, buildBootPlan } from '../../electron/engine/image/argv.ts';
import { type ImageDescriptor, loadDeployDir } from '../../electron/engine/image/descriptor.ts';
import { guestsDir } from '../../electron/engine/paths.ts';
import { findQemu, type QemuInstall } from '../../electron/engine/qemu/discovery.ts';
import {
  arm64Image,
  dtbBlob,
  referenceDeploy,
  removeTempDirs,
  scarthgapArm64Deploy,
  tempDir,
  writeDeploy,
} from '../helpers/deploy-fixtures.ts';

let qemu: QemuInstall | undefined;
try {
  qemu = await findQemu({ bundledDir: path.join(tempDir(), 'none') });
} catch (e) {
  console.log(`skipping real-QEMU argv tests: ${(e as Error).message}`);
}

const started: ChildProcess[] = [];
afterEach(() => {
  // Only the processes this file started, by their handles.
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Line-delimited QMP over a Unix socket: enough to ask a few questions and quit. */
class Qmp {
  private buf = '';
  private waiters: Array<(msg: Record<string, unknown>) => void> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) continue;
        this.waiters.shift()?.(msg);
      }
    });
  }

  static async connect(socket: string): Promise<Qmp> {
    for (let i = 0; i < 100; i++) {
      const s = await new Promise<net.Socket | undefined>((resolve) => {
        const c = net.connect(socket, () => resolve(c));
        c.once('error', () => resolve(undefined));
      });
      if (s) {
        const q = new Qmp(s);
        await q.next(); // greeting
        await q.run('qmp_capabilities');
        return q;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`QMP socket ${socket} never accepted a connection`);
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async run(cmd: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next();
    this.sock.write(`${JSON.stringify({ execute: cmd, ...(args ? { arguments: args } : {}) })}\n`);
    const msg = await reply;
    if ('error' in msg) throw new Error(`QMP ${cmd}: ${JSON.stringify(msg.error)}`);
    return msg.return;
  }

  close(): void {
    this.sock.destroy();
  }
}

interface Started {
  plan: BootPlan;
  child: ChildProcess;
  qmp: Qmp;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function start(
  desc: ImageDescriptor,
  where: string,
  opts: { overlaySize?: string; extraArgs?: string[] } = {},
): Promise<Started> {
  const vmDir = path.join(where, `vm "a", b's`);
  mkdirSync(vmDir, { recursive: true });
  const disk = path.join(vmDir, 'disk.qcow2');
  // The supervisor's job in the app; here just enough for QEMU to open a disk.
  execFileSync(qemu?.img as string, [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    desc.rootfsFormat,
    '-b',
    desc.rootfs,
    disk,
    ...(opts.overlaySize ? [opts.overlaySize] : []),
  ]);
  // Socket paths must stay short (Unix limit ~107 bytes), so they live under /tmp.
  const sockDir = tempDir('sl-');
  const sock = (n: string) => path.join(sockDir, n);
  const plan = await buildBootPlan(desc, {
    disk: { path: disk, format: 'qcow2' },
    accel: 'tcg',
    qmpSocket: sock('qmp'),
    monitorSocket: sock('mon'),
    serialSockets: desc.serialConsoles.map((_, i) => sock(`s${i}`)),
    name: `stacklab-test-${desc.machine}`,
    sshPort: 45000,
    extraArgs: opts.extraArgs ?? ['-S'],
  });
  const bin = qemu?.systems[plan.binary];
  if (!bin) throw new Error(`${plan.binary} is not installed`);
  const child = spawn(bin, plan.argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...plan.env },
  });
  started.push(child);
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const qmp = await Promise.race([
    Qmp.connect(
      plan.argv
        .find((a) => a.startsWith('socket,id=qmp0,path='))
        ?.replace(/^socket,id=qmp0,path=(.*),server=on,wait=off$/, '$1') ?? '',
    ),
    exited.then((code) => {
      throw new Error(`QEMU exited with ${code} before QMP was up: ${err.trim()}`);
    }),
  ]);
  return { plan, child, qmp, stderr: () => err, exited };
}

async function quit(s: Started): Promise<void> {
  await s.qmp.run('quit').catch(() => undefined);
  s.qmp.close();
  expect(await s.exited).toBe(0);
}

describe.skipIf(!qemu)('QEMU accepts the argv', () => {
  it('scarthgap qemuarm64: paused, every chardev and the overlay disk in place', async () => {
    const parent = path.join(tempDir(), `it's a "lab", really`);
    const f = scarthgapArm64Deploy(parent);
    const s = await start(await loadDeployDir(f.dir), parent);
    expect(await s.qmp.run('query-status')).toMatchObject({ status: 'prelaunch', running: false });
    const chardevs = (await s.qmp.run('query-chardev')) as Array<{ label: string; filename: string }>;
    const labels = chardevs.map((c) => c.label);
    for (const id of ['qmp0', 'mon0', 'serial0', 'virtcon']) expect(labels).toContain(id);
    expect(chardevs.find((c) => c.label === 'serial0')?.filename).toMatch(
      /^(disconnected:)?unix:.*\/s0,server=on$/,
    );
    const blocks = (await s.qmp.run('query-block')) as Array<{
      device: string;
      qdev?: string;
      inserted?: { file: string };
    }>;
    const disk0 = blocks.find((b) => b.device === 'disk0');
    expect(disk0?.inserted?.file).toBe(path.join(parent, `vm "a", b's`, 'disk.qcow2'));
    const kvm = (await s.qmp.run('query-kvm')) as { enabled: boolean };
    expect(kvm.enabled).toBe(false);
    await quit(s);
    expect(s.stderr()).toBe('');
  });

  it('scarthgap qemux86-64: QEMU takes the kernel, the q35 machine and two UARTs', async () => {
    const parent = tempDir('x86 ');
    const f = referenceDeploy(parent, 'scarthgap-qemux86-64');
    const s = await start(await loadDeployDir(f.dir), parent);
    expect(await s.qmp.run('query-status')).toMatchObject({ status: 'prelaunch' });
    const labels = ((await s.qmp.run('query-chardev')) as Array<{ label: string }>).map((c) => c.label);
    expect(labels).toEqual(expect.arrayContaining(['serial0', 'serial1', 'mon0', 'qmp0']));
    const machine = (await s.qmp.run('query-target')) as { arch: string };
    expect(machine.arch).toBe('x86_64');
    await quit(s);
  });

  it('raspi3b from the board profile: SD card, usb-net and the device tree', async () => {
    const parent = tempDir('pi ');
    const dir = writeDeploy(path.join(parent, 'raspios, lite'), {
      'kernel8.img': arm64Image(),
      'bcm2710-rpi-3-b.dtb': dtbBlob(),
      'raspios.img': { sdBytes: 48 * 1024 * 1024 },
    });
    const desc = await loadDeployDir(dir);
    expect(desc.sdCard).toBe(true);
    // The SD card must be a power of two: the overlay is made 64 MiB.
    const s = await start(desc, parent, { overlaySize: '64M' });
    expect(await s.qmp.run('query-status')).toMatchObject({ status: 'prelaunch' });
    const blocks = (await s.qmp.run('query-block')) as Array<{ inserted?: { file: string } }>;
    expect(blocks.some((b) => b.inserted?.file.endsWith('disk.qcow2'))).toBe(true);
    await quit(s);
  });
});

const demo = path.join(guestsDir(), 'demo-qemuarm64');
const haveDemo = existsSync(demo);
if (!haveDemo) console.log(`skipping the demo-guest boot: ${demo} does not exist (npm run guests builds it)`);

describe.skipIf(!qemu || !haveDemo)('a demo guest boots with this argv', () => {
  it('demo-qemuarm64 reaches its login prompt on the first serial socket', async () => {
    const where = tempDir('boot ');
    const desc = await loadDeployDir(demo);
    const s = await start(desc, where);
    const console0 = s.plan.consoles[0];
    expect(console0?.name).toBe('ttyAMA0');
    let out = '';
    const serial = net.connect(console0?.socket as string);
    serial.setEncoding('utf8');
    serial.on('data', (d: string) => {
      out += d;
    });
    await new Promise((r) => serial.once('connect', r));
    const t0 = Date.now();
    await s.qmp.run('cont');
    while (!/login: $/m.test(out) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 100));
    console.log(`demo-qemuarm64: login prompt after ${Date.now() - t0} ms under TCG`);
    expect(out).toMatch(/login: $/m);
    expect(out).toContain(`Kernel command line: ${s.plan.kernelCmdline}`);
    serial.destroy();
    await quit(s);
  });
});

afterAll(removeTempDirs);
