// The VM supervisor: turns an image into a running, watched QEMU. It owns the per-VM
// directory (overlay disk, logs), the private sockets, the accelerator choice and the
// set of live VMs, and publishes every state change through the event hub.
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { VmSummary } from '../../common/contract.ts';
import type { EventHub } from '../engine.ts';
import { buildBootPlan, formatCommandLine } from '../image/argv.ts';
import type { ImageDescriptor } from '../image/descriptor.ts';
import { probeAccelerators } from '../qemu/accel.ts';
import type { QemuInstall } from '../qemu/discovery.ts';
import { ensureDir, runtimeDir } from '../paths.ts';
import { ensureOverlay, imageInfo, nextPowerOfTwo } from './overlay.ts';
import { reapStale } from './process.ts';
import { type LaunchPlan, Vm } from './vm.ts';

export interface BootOptions {
  vmId?: string;
  name?: string;
  memMiB?: number;
  smp?: number;
  parentId?: string;
  depth?: number;
  /** Extra QEMU arguments (nested stacks add virtio-serial ports this way). */
  extraArgs?: string[];
}

export class Supervisor {
  private readonly vms = new Map<string, Vm>();

  constructor(
    private readonly opts: {
      home: string;
      hub: EventHub;
      qemu: () => Promise<QemuInstall>;
      env?: NodeJS.ProcessEnv;
    },
  ) {
    // QEMU left behind by an engine that was killed: stop it before anything else.
    reapStale(opts.env);
  }

  get(vmId: string): Vm {
    const vm = this.vms.get(vmId);
    if (!vm) throw new Error(`no VM called ${vmId}`);
    return vm;
  }

  find(vmId: string): Vm | undefined {
    return this.vms.get(vmId);
  }

  list(): VmSummary[] {
    return [...this.vms.values()].map((v) => v.summary());
  }

  vmDir(vmId: string): string {
    return ensureDir(path.join(this.opts.home, 'vms', vmId));
  }

  async boot(image: ImageDescriptor, o: BootOptions = {}): Promise<Vm> {
    const vmId = o.vmId ?? image.id;
    const running = this.vms.get(vmId);
    if (running && !running.exit) throw new Error(`${vmId} is already running (pid ${running.pid})`);
    const qemu = await this.opts.qemu();
    const binary = qemu.systems[image.systemBinary];
    if (!binary) {
      throw new Error(`${image.systemBinary} is not installed (found: ${Object.keys(qemu.systems).join(', ') || 'none'})`);
    }
    const accel = await probeAccelerators(binary);
    const vmDir = this.vmDir(vmId);

    // The disk: a qcow2 overlay over the untouched base. Pi SD cards must be a power of two.
    const disk = path.join(vmDir, 'disk.qcow2');
    let sizeBytes: number | undefined;
    if (image.board.startsWith('raspi') && qemu.img) {
      const base = await imageInfo(qemu.img, image.rootfs);
      sizeBytes = nextPowerOfTwo(base.virtualSize);
    }
    if (!qemu.img) throw new Error('qemu-img is not installed; it is needed to create the VM disk overlay');
    await ensureOverlay({ qemuImg: qemu.img, base: image.rootfs, baseFormat: image.rootfsFormat, path: disk, sizeBytes });

    // Sockets in a short private directory (Unix socket paths are limited to ~107 bytes).
    const short = createHash('sha256').update(vmDir).digest('hex').slice(0, 12);
    const sockDir = path.join(runtimeDir(this.opts.env), short);
    rmSync(sockDir, { recursive: true, force: true });
    mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    const qemuName = `stacklab-${vmId}`;
    const sock = (n: string) => path.join(sockDir, n);
    const boot = await buildBootPlan(image, {
      disk: { path: disk, format: 'qcow2' },
      accel: accel.best,
      qmpSocket: sock('qmp.sock'),
      monitorSocket: sock('monitor.sock'),
      serialSockets: image.serialConsoles.map((_, i) => sock(`serial${i}.sock`)),
      name: qemuName,
      memMiB: o.memMiB,
      smp: o.smp,
      // Paused until every console is attached; a second QMP socket for other processes.
      extraArgs: ['-S', '-qmp', `unix:${sock('qmp-control.sock')},server=on,wait=off`, ...(o.extraArgs ?? [])],
    });
    const plan: LaunchPlan = {
      vmId,
      imageId: image.id,
      name: o.name ?? image.name,
      qemuName,
      binary,
      argv: boot.argv,
      commandLine: formatCommandLine(binary, boot.argv),
      board: image.board,
      arch: image.arch,
      accel: accel.best,
      accelWhy: accel.why,
      consoles: boot.consoles,
      monitorSocket: sock('monitor.sock'),
      qmpSocket: sock('qmp.sock'),
      qmpControlSocket: sock('qmp-control.sock'),
      sshPort: boot.sshPort,
      vmDir,
      parentId: o.parentId,
      depth: o.depth,
    };
    writeFileSync(path.join(vmDir, 'command-line.txt'), `${plan.commandLine}\n`);

    const vm = new Vm(plan);
    this.vms.set(vmId, vm);
    vm.on('changed', () => this.opts.hub.emit('vm.changed', vm.summary()));
    vm.on('exit', () => {
      writeFileSync(path.join(vmDir, 'last-exit.json'), JSON.stringify({ ...vm.exit, lastLines: vm.lastLines, at: Date.now() }));
      rmSync(sockDir, { recursive: true, force: true });
    });
    this.opts.hub.emit('vm.changed', vm.summary());
    try {
      await vm.start();
    } catch (e) {
      this.opts.hub.emit('vm.changed', vm.summary());
      throw e;
    }
    return vm;
  }

  async stop(vmId: string, force = false): Promise<void> {
    await this.get(vmId).stop({ force });
  }

  /** Forgets a VM that has ended (its disk stays until the image's VM is reset). */
  remove(vmId: string): void {
    const vm = this.get(vmId);
    if (!vm.exit) throw new Error(`${vmId} is still running; stop it first`);
    this.vms.delete(vmId);
    this.opts.hub.emit('vm.removed', { vmId });
  }

  /** Stops everything quickly (engine shutdown): QEMU's own quit, then SIGKILL. */
  async dispose(): Promise<void> {
    await Promise.all([...this.vms.values()].map((v) => v.stop({ force: true }).catch(() => undefined)));
  }
}
