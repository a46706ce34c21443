// The VM supervisor: turns an image into a running, watched QEMU. It owns the per-VM
// directory (overlay disk, logs), the private sockets, the accelerator choice and the
// set of live VMs, and publishes every state change through the event hub.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { VmSummary } from '../../common/contract.ts';
import { bundleQemuArgs } from '../bundle/index.ts';
import { workingBaseFor } from '../disk/workbase.ts';
import type { EventHub } from '../engine.ts';
import { buildBootPlan, formatCommandLine } from '../image/argv.ts';
import type { ImageDescriptor } from '../image/descriptor.ts';
import { ensureDir, runtimeDir } from '../paths.ts';
import { probeAccelerators } from '../qemu/accel.ts';
import { listMachines, type MachineInfo, type QemuInstall } from '../qemu/discovery.ts';
import { bundleRootOf } from '../qemu/select.ts';
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
  /** Extra QEMU arguments. */
  extraArgs?: string[];
  /** virtio-serial ports to add, each wired to a socket the engine holds (stack agent, nested consoles). */
  ports?: string[];
  /**
   * The disk the overlay sits on instead of the image's own (a derived working base, see
   * disk/workbase.ts). Left out: the VM's customised working base if it has one, else the image's.
   */
  baseOverride?: { path: string; format: 'raw' | 'qcow2' };
}

/** Whether two paths name the same file (the overlay records its base's path as given). */
function samePath(a: string | undefined, b: string): boolean {
  if (!a) return false;
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : path.resolve(p));
  return real(a) === real(b);
}

export class Supervisor {
  private readonly vms = new Map<string, Vm>();
  private readonly machines = new Map<string, Promise<MachineInfo[]>>();

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
      throw new Error(
        `${image.systemBinary} is not installed (found: ${Object.keys(qemu.systems).join(', ') || 'none'})`,
      );
    }
    // QEMU's own words for a missing board ("unsupported machine type") don't say which one.
    if (!this.machines.has(binary)) this.machines.set(binary, listMachines(binary));
    const machines = await this.machines.get(binary)!;
    if (!machines.some((m) => m.name === image.board || m.alias === image.board)) {
      const offered = machines.map((m) => m.name).filter((n) => n !== 'none');
      throw new Error(
        `${image.systemBinary} has no board called "${image.board}" (it offers ${offered.slice(0, 8).join(', ')}${offered.length > 8 ? ', …' : ''})`,
      );
    }
    const accel = await probeAccelerators(binary);
    const vmDir = this.vmDir(vmId);

    // The disk: a qcow2 overlay over the untouched base. SD cards must be a power of two.
    // An initramfs-only image has no disk: QEMU loads it read-only with -initrd.
    const disk = path.join(vmDir, 'disk.qcow2');
    if (image.rootfsKind === 'disk') {
      if (!qemu.img) throw new Error('qemu-img is not installed; it is needed to create the VM disk overlay');
      // The overlay's base: a derived working base when given or customised, else the image's own.
      const base = o.baseOverride ??
        workingBaseFor(vmDir) ?? { path: image.rootfs, format: image.rootfsFormat };
      if (existsSync(disk) && !samePath((await imageInfo(qemu.img, disk)).backing, base.path))
        throw new Error(
          `${vmId}'s disk was made over another base than ${path.basename(base.path)}; reset it with: stacklab disk reset ${vmId} --yes`,
        );
      let sizeBytes: number | undefined;
      if (image.sdCard) sizeBytes = nextPowerOfTwo((await imageInfo(qemu.img, base.path)).virtualSize);
      await ensureOverlay({
        qemuImg: qemu.img,
        base: base.path,
        baseFormat: base.format,
        path: disk,
        sizeBytes,
      });
    }

    // Sockets in a short private directory (Unix socket paths are limited to ~107 bytes).
    const short = createHash('sha256').update(vmDir).digest('hex').slice(0, 12);
    const sockDir = path.join(runtimeDir(this.opts.env), short);
    rmSync(sockDir, { recursive: true, force: true });
    mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    const qemuName = `stacklab-${vmId}`;
    const sock = (n: string) => path.join(sockDir, n);
    const ports = (o.ports ?? []).map((name, i) => ({ name, socket: sock(`port${i}.sock`) }));
    const portArgs = ports.length
      ? [
          '-device',
          'virtio-serial-pci,id=slports',
          ...ports.flatMap((p, i) => [
            '-chardev',
            `socket,id=slport${i},path=${p.socket},server=on,wait=off`,
            '-device',
            `virtserialport,bus=slports.0,chardev=slport${i},name=${p.name}`,
          ]),
        ]
      : [];
    const bundleRoot = bundleRootOf(qemu);
    const boot = await buildBootPlan(image, {
      disk: { path: disk, format: 'qcow2' },
      accel: accel.best,
      qmpSocket: sock('qmp.sock'),
      monitorSocket: sock('monitor.sock'),
      serialSockets: image.serialConsoles.map((_c, i) => sock(`serial${i}.sock`)),
      name: qemuName,
      memMiB: o.memMiB,
      smp: o.smp,
      // Paused until every console is attached; a second QMP socket for other processes.
      extraArgs: [
        '-S',
        '-qmp',
        `unix:${sock('qmp-control.sock')},server=on,wait=off`,
        ...portArgs,
        // A relocated bundle finds its firmware and option ROMs (SeaBIOS, pvh.bin) only through -L.
        ...(bundleRoot ? bundleQemuArgs(bundleRoot) : []),
        ...(o.extraArgs ?? []),
      ],
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
      accel: boot.accel,
      accelWhy:
        boot.accel === accel.best ? accel.why : `${accel.why}; this board has no KVM CPU model, so TCG`,
      consoles: boot.consoles,
      monitorSocket: sock('monitor.sock'),
      qmpSocket: sock('qmp.sock'),
      qmpControlSocket: sock('qmp-control.sock'),
      ports,
      sshPort: boot.sshPort,
      vmDir,
      env: boot.env,
      parentId: o.parentId,
      depth: o.depth,
    };
    writeFileSync(path.join(vmDir, 'command-line.txt'), `${plan.commandLine}\n`);

    const vm = new Vm(plan);
    this.vms.set(vmId, vm);
    vm.on('changed', () => this.opts.hub.emit('vm.changed', vm.summary()));
    vm.on('exit', () => {
      writeFileSync(
        path.join(vmDir, 'last-exit.json'),
        JSON.stringify({ ...vm.exit, lastLines: vm.lastLines, at: Date.now() }),
      );
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

  /** Takes charge of a VM started elsewhere (a nested guest the stack agent runs). */
  adopt(vm: Vm): void {
    const running = this.vms.get(vm.id);
    if (running && !running.exit) throw new Error(`${vm.id} is already running`);
    this.vms.set(vm.id, vm);
    vm.on('changed', () => this.opts.hub.emit('vm.changed', vm.summary()));
    this.opts.hub.emit('vm.changed', vm.summary());
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
