// Booting a whole stack with one call: install the nested guests into the parent's disk,
// boot the parent with a virtio-serial port per nested console/monitor/QMP plus one for
// the stack agent, wait for the agent, then start each nested guest through it. Shut
// down from the inside out.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { buildBootPlan } from '../image/argv.ts';
import type { ImageDescriptor } from '../image/descriptor.ts';
import { findPvhKernel } from '../image/pvh.ts';
import type { Library } from '../library.ts';
import type { QemuInstall } from '../qemu/discovery.ts';
import { imageInfo } from '../vm/overlay.ts';
import type { Supervisor } from '../vm/supervisor.ts';
import type { Vm } from '../vm/vm.ts';
import { AgentLink } from './agent-link.ts';
import { flatten, type StackSpec, type StackVmSpec } from './model.ts';
import { AGENT_PORT, initrdOf, installNested, type NestedGuest } from './nested-install.ts';
import { nestedMachine } from './nested-machine.ts';
import { NestedVm } from './nested-vm.ts';

export interface RunningStack {
  spec: StackSpec;
  /** Outermost first. */
  vms: Array<{ spec: StackVmSpec; vm: Vm; depth: number }>;
}

const WHY_NESTED_TCG =
  'inside a guest there is no hardware virtualisation to borrow, so this QEMU translates every instruction itself (TCG), and the QEMU outside translates that translator again';

export class Stacks {
  private readonly running = new Map<string, RunningStack>();

  constructor(
    private readonly o: {
      library: Library;
      supervisor: Supervisor;
      qemu: () => Promise<QemuInstall>;
      home: string;
      onStep?: (stack: string, message: string) => void;
    },
  ) {}

  get(name: string): RunningStack | undefined {
    return this.running.get(name);
  }

  list(): RunningStack[] {
    return [...this.running.values()];
  }

  vmId(spec: StackSpec, vm: StackVmSpec): string {
    return `${spec.name}-${vm.name}`;
  }

  async up(spec: StackSpec): Promise<RunningStack> {
    const existing = this.running.get(spec.name);
    if (existing?.vms.some((v) => !v.vm.exit)) throw new Error(`stack ${spec.name} is already up`);
    const all = flatten(spec);
    const tooDeep = all.find((v) => v.depth > 2);
    if (tooDeep) {
      throw new Error(
        `${tooDeep.vm.name} is nested ${tooDeep.depth} deep; this version boots stacks two deep (a guest inside a guest)`,
      );
    }
    const step = (m: string) => this.o.onStep?.(spec.name, m);
    const qemu = await this.o.qemu();
    if (!qemu.img) throw new Error('qemu-img is not installed; it is needed for the stack disks');
    const top = spec.vm;
    const parent = await this.o.library.resolve(top.image);
    const children = top.nested ?? [];

    const guests = await this.nestedGuests(top);

    const parentId = this.vmId(spec, top);
    let baseOverride: { path: string; format: 'raw' | 'qcow2' } | undefined;
    if (guests.length) {
      step(`installing ${guests.map((g) => g.name).join(', ')} into ${top.name}'s disk`);
      const derived = await this.install(spec, guests);
      baseOverride = { path: derived.path, format: derived.format };
      // A stack's disk follows its base: when the nested images change, start from the new one.
      const disk = path.join(this.o.supervisor.vmDir(parentId), 'disk.qcow2');
      if (existsSync(disk) && (await imageInfo(qemu.img, disk)).backing !== derived.path) rmSync(disk);
    }

    step(`booting ${top.name} (${top.image})`);
    const ports = guests.length
      ? [AGENT_PORT, ...guests.flatMap((g) => [g.ports.console, g.ports.monitor, g.ports.qmp])]
      : [];
    const outer = await this.o.supervisor.boot(parent, {
      vmId: parentId,
      name: top.name,
      memMiB: top.memMiB,
      smp: top.smp,
      baseOverride,
      ports,
    });
    const stack: RunningStack = { spec, vms: [{ spec: top, vm: outer, depth: 1 }] };
    this.running.set(spec.name, stack);
    if (!guests.length) return stack;

    try {
      const agent = new AgentLink(outer.ports.get(AGENT_PORT)!);
      step(`waiting for the stack agent inside ${top.name}`);
      await agent.waitReady(300_000);
      for (const [i, g] of guests.entries()) {
        const c = children[i]!;
        const id = this.vmId(spec, c);
        step(`starting ${c.name} (${c.image}) inside ${top.name} on ${g.machineWhy}`);
        const nested = new NestedVm(
          {
            vmId: id,
            imageId: g.desc.id,
            name: c.name,
            qemuName: `stacklab-${id}`,
            binary: `${g.desc.systemBinary} inside ${top.name}`,
            argv: [],
            commandLine: '',
            board: g.desc.board,
            arch: g.desc.arch,
            accel: 'tcg',
            accelWhy: WHY_NESTED_TCG,
            consoles: [{ index: 0, name: g.desc.serialConsoles[0]?.tty ?? 'ttyS0', socket: '' }],
            monitorSocket: '',
            qmpSocket: '',
            qmpControlSocket: '',
            vmDir: this.o.supervisor.vmDir(id),
            parentId: outer.id,
            depth: 2,
          },
          outer,
          agent,
          g.name,
          {
            console: outer.ports.get(g.ports.console)!,
            monitor: outer.ports.get(g.ports.monitor)!,
            qmp: outer.ports.get(g.ports.qmp)!,
          },
        );
        this.o.supervisor.adopt(nested);
        await nested.start();
        stack.vms.push({ spec: c, vm: nested, depth: 2 });
      }
    } catch (e) {
      await this.down(spec.name).catch(() => undefined);
      throw e;
    }
    return stack;
  }

  /**
   * The parent's disk with the nested guests installed, made once per content (the first
   * boot of a stack pays for it, later ones find it cached).
   */
  async prepare(spec: StackSpec): Promise<{ path: string; cached: boolean } | undefined> {
    const guests = await this.nestedGuests(spec.vm);
    return guests.length ? this.install(spec, guests) : undefined;
  }

  private async nestedGuests(parent: StackVmSpec): Promise<NestedGuest[]> {
    const children = parent.nested ?? [];
    if (!children.length) return [];
    const parentArch = (await this.o.library.resolve(parent.image)).arch;
    const guests: NestedGuest[] = [];
    for (const [i, c] of children.entries()) {
      const desc = await this.o.library.resolve(c.image);
      guests.push(await nestedGuest(c, desc, i, parentArch));
    }
    return guests;
  }

  private async install(spec: StackSpec, guests: NestedGuest[]) {
    const qemu = await this.o.qemu();
    if (!qemu.img) throw new Error('qemu-img is not installed; it is needed for the stack disks');
    return installNested({
      qemuImg: qemu.img,
      parent: await this.o.library.resolve(spec.vm.image),
      guests,
      cacheDir: path.join(this.o.home, 'stacks', 'bases'),
    });
  }

  /** Inside out: the deepest guests first, then their parents. */
  async down(name: string): Promise<void> {
    const stack = this.running.get(name);
    if (!stack) throw new Error(`stack ${name} is not up`);
    const byDepth = [...stack.vms].sort((a, b) => b.depth - a.depth);
    for (const v of byDepth) await v.vm.stop({ timeoutMs: 5000 }).catch(() => undefined);
    this.running.delete(name);
  }
}

/**
 * Kernel options for guests that run inside a guest, where every instruction is translated
 * twice (measured in docs/ARCHITECTURE.md, "Nested boot time"):
 * - quiet: every byte the kernel prints crosses two emulated UARTs (the login prompt still
 *   shows; milestones before it are filled in when it does).
 * - cryptomgr.notests: the crypto self-tests run known answers through every built-in
 *   algorithm at boot, ~4 s when nested; the algorithms themselves are unchanged.
 * - mitigations=off: they work around how a physical CPU speculates on the guest's own code;
 *   QEMU's translated code does not run that way, so they cost time and protect little.
 *   Page-table isolation alone flushes QEMU's TLB on every system call and adds a second
 *   W+X page-table walk at boot (~3 s).
 */
export const NESTED_APPEND = ['quiet', 'cryptomgr.notests', 'mitigations=off'];

/** What the agent needs to launch a nested guest: machine, CPU, command line, as runqemu would or lighter. */
async function nestedGuest(
  spec: StackVmSpec,
  desc: ImageDescriptor,
  index: number,
  parentArch: string,
): Promise<NestedGuest> {
  const plan = await buildBootPlan(desc, {
    disk: { path: '/dev/null', format: 'qcow2' },
    accel: 'tcg',
    qmpSocket: '/dev/null',
    monitorSocket: '/dev/null',
    serialSockets: desc.serialConsoles.map(() => '/dev/null'),
    name: spec.name,
    network: 'none',
  });
  const pick = (flag: string) => {
    const i = plan.argv.indexOf(flag);
    return i >= 0 ? [flag, plan.argv[i + 1]!] : [];
  };
  const memFromConf = Number(/(\d+)/.exec(desc.conf.qb_mem ?? '')?.[1] ?? 256);
  const pvhKernel = desc.arch === 'x86_64' ? findPvhKernel(desc.deployDir, desc.machine) : undefined;
  const machine = nestedMachine({
    child: desc,
    parentArch,
    planArgs: [...pick('-machine'), ...pick('-cpu')],
    pvhKernel,
    initrd: initrdOf(desc),
  });
  const extra = [...NESTED_APPEND, ...machine.append].filter(
    (a) => !plan.kernelCmdline.split(/\s+/).includes(a),
  );
  return {
    name: spec.name,
    desc,
    memMiB: spec.memMiB ?? memFromConf,
    smp: spec.smp ?? 1,
    ports: {
      console: `stacklab.nested${index}`,
      monitor: `stacklab.nested${index}.monitor`,
      qmp: `stacklab.nested${index}.qmp`,
    },
    pvhKernel,
    append: [plan.kernelCmdline, ...extra].join(' '),
    qemuArgs: machine.qemuArgs,
    bus: machine.bus,
    machineWhy: machine.why,
  };
}
