// createEngine(): the engine assembled. Every front end (Electron main, lab mode, CLI,
// tests) calls this and then talks to it only through `dispatcher` and `hub`.
import { Builds } from './build/builds.ts';
import { VmDisks } from './disks/vm-disks.ts';
import { Dispatcher, EventHub, type Handlers } from './engine.ts';
import { FlashJobs, type TestOnlyDrive } from './flash/flash-jobs.ts';
import { buildHandlers } from './handlers/build.ts';
import { flashHandlers } from './handlers/flash.ts';
import { hostInfo } from './host.ts';
import { ImageService } from './images/service.ts';
import { Library } from './library.ts';
import { stacklabHome } from './paths.ts';
import type { QemuInstall } from './qemu/discovery.ts';
import { selectQemu } from './qemu/select.ts';
import { createSettings, type Settings } from './settings.ts';
import {
  type LayerTax,
  measureCommand,
  measureGuest,
  measureHost,
  TAX_SCRIPT,
  taxRows,
} from './stack/layer-tax.ts';
import { flatten, PRESETS } from './stack/model.ts';
import { Stacks } from './stack/stacks.ts';
import { type ChannelTarget, Terminals } from './term/terminals.ts';
import { prepareRootfs, rootfsForImage } from './usermode/rootfs.ts';
import { openUsermode, usermodeCommand } from './usermode/run.ts';
import { Supervisor } from './vm/supervisor.ts';

export interface Engine {
  dispatcher: Dispatcher;
  hub: EventHub;
  library: Library;
  images: ImageService;
  supervisor: Supervisor;
  disks: VmDisks;
  stacks: Stacks;
  terminals: Terminals;
  builds: Builds;
  qemu(): Promise<QemuInstall>;
  dispose(): Promise<void>;
}

export async function createEngine(
  opts: {
    env?: NodeJS.ProcessEnv;
    settings?: Settings;
    /** TEST-ONLY MOCK: a drive list fed in as data, file-backed targets included (flash/flash-jobs.ts). */
    testOnlyDrives?: TestOnlyDrive[];
  } = {},
): Promise<Engine> {
  const env = opts.env ?? process.env;
  const home = stacklabHome(env);
  const hub = new EventHub();
  // Electron passes its electron-store-backed settings; lab mode and the CLI use conf. Same file.
  const settings = opts.settings ?? createSettings({ cwd: home });
  let qemuFound: Promise<QemuInstall> | undefined;
  const qemu = () => {
    qemuFound ??= selectQemu({ configuredPath: settings.get('qemuPath'), env })
      .then((c) => c.install)
      .catch((e: unknown) => {
        qemuFound = undefined; // let the user install QEMU and try again without restarting
        throw e;
      });
    return qemuFound;
  };
  const library = new Library(env);
  const images = new ImageService(library, hub, () => settings.get('catalogueUrls'), env);
  const supervisor = new Supervisor({ home, hub, qemu, env });
  const disks = new VmDisks({ supervisor, library, qemu }, env);
  const stacks = new Stacks({
    library,
    supervisor,
    qemu,
    home,
    onStep: (name, message) =>
      hub.emit('progress', {
        taskId: `stack-${name}`,
        label: `Stack ${name}`,
        state: 'running',
        done: 0,
        unit: 'items',
        message,
      }),
  });
  const channelFor = (t: ChannelTarget) => {
    const vm = supervisor.get(t.vmId);
    if (t.kind === 'monitor') return { title: `${vm.plan.name} — QEMU monitor`, channel: vm.monitor };
    const ch = vm.consoles[t.index];
    if (!ch) throw new Error(`${t.vmId} has no serial console ${t.index}`);
    return { title: `${vm.plan.name} — ${ch.name}`, channel: ch };
  };
  const terminals = new Terminals({ hub, resolve: channelFor });
  const builds = new Builds({ hub, library, home, env });
  const flashJobs = new FlashJobs({
    engine: { library, supervisor, qemu },
    hub,
    testOnlyDrives: opts.testOnlyDrives,
  });

  const handlers: Handlers = {
    'host.info': async () => hostInfo(),
    'images.list': () => library.summaries(),
    'host.qemu': async () => {
      const c = await selectQemu({ configuredPath: settings.get('qemuPath'), env });
      return {
        source: c.install.source,
        why: c.install.why,
        dir: c.install.dir,
        bundle: {
          present: c.bundle.present,
          ok: c.bundle.check?.ok,
          version: c.bundle.check?.version ?? undefined,
          problems: c.bundle.check?.problems ?? [],
        },
        warning: c.warning,
      };
    },
    'images.catalogue': () => images.catalogue(),
    'images.install': async (p) => ({ taskId: (await images.install(p.entryId)).taskId }),
    'images.import': (p) => images.import(p.path),
    'images.remove': async (p) => ({ freedBytes: await images.remove(p.imageId) }),
    'task.cancel': async (p) => {
      if (!flashJobs.cancel(p.taskId)) images.cancel(p.taskId);
      return { ok: true as const };
    },
    'vm.list': async () => supervisor.list(),
    'vm.boot': async (p) => {
      const image = await library.resolve(p.imageId);
      const vm = await supervisor.boot(image, { memMiB: p.memMiB, smp: p.smp });
      return vm.summary();
    },
    'vm.stop': async (p) => {
      await supervisor.stop(p.vmId, p.force);
      return { ok: true as const };
    },
    'vm.restart': async (p) => {
      const vm = supervisor.get(p.vmId);
      await vm.stop({});
      terminals.closeFor(p.vmId);
      const image = await library.resolve(vm.plan.imageId);
      return (await supervisor.boot(image, { vmId: p.vmId })).summary();
    },
    'vm.remove': async (p) => {
      supervisor.remove(p.vmId);
      return { ok: true as const };
    },
    'vm.log': async (p) => {
      const vm = supervisor.get(p.vmId);
      const text = vm.consoles[0]?.history().toString('utf8') ?? '';
      return { text: `$ ${vm.plan.commandLine}\n\n${text}` };
    },
    'disk.snapshots': (p) => disks.listSnapshots(p.vmId),
    'disk.snapshot.take': (p) => disks.takeSnapshot(p.vmId, p.name),
    'disk.snapshot.revert': (p) => disks.revertSnapshot(p.vmId, p.name),
    'disk.snapshot.delete': async (p) => {
      await disks.deleteSnapshot(p.vmId, p.name);
      return { ok: true as const };
    },
    'disk.reset': async (p) => disks.reset(p.vmId),
    'disk.resize': async (p) => ({
      ...(await disks.resize(p.vmId, p.sizeBytes, { dropSnapshots: p.dropSnapshots })),
    }),
    'disk.usage': async (p) => disks.usage(p.vmId),
    'stack.presets': async () =>
      Object.values(PRESETS).map((st) => ({
        name: st.name,
        title: st.title ?? st.name,
        description: st.description ?? '',
        layers: flatten(st).map((l) => ({ name: l.vm.name, image: l.vm.image, depth: l.depth })),
      })),
    'stack.up': async (p) => {
      const spec = PRESETS[p.preset];
      if (!spec) throw new Error(`no stack preset called ${p.preset} (${Object.keys(PRESETS).join(', ')})`);
      // The steps (install, boot, agent, nested) arrive through the Stacks onStep hook.
      return hub.task(`stack-${spec.name}`, `Stack ${spec.name}`, async () => {
        const st = await stacks.up(spec);
        return { name: spec.name, vmIds: st.vms.map((v) => v.vm.id) };
      });
    },
    'stack.layerTax': async (p) => {
      const st = stacks.get(p.name);
      if (!st) throw new Error(`stack ${p.name} is not up`);
      const rows: Array<{ layer: string; kind: LayerTax['kind']; seconds: number }> = [
        { layer: 'this PC', kind: 'host', seconds: await measureHost() },
      ];
      if (process.platform === 'linux') {
        // User mode runs the outer guest's own busybox on this kernel: the same program, no guest kernel.
        const top = st.vms[0]!;
        const dir = (await prepareRootfs(await rootfsForImage(top.spec.image, library, env), { env })).dir;
        const spec = await usermodeCommand(dir, ['/bin/busybox', 'time', 'sh', '-c', TAX_SCRIPT], { env });
        rows.push({
          layer: `${top.spec.name} in user mode`,
          kind: 'usermode',
          seconds: await measureCommand(spec.file, spec.args, spec.env),
        });
      }
      for (const v of st.vms) {
        rows.push({
          layer: v.spec.name,
          kind: v.depth === 1 ? 'guest' : 'nested',
          seconds: await measureGuest(v.vm),
        });
      }
      return taxRows(rows);
    },
    'stack.down': async (p) => {
      await stacks.down(p.name);
      return { ok: true as const };
    },
    'term.open': async (p) => {
      const t = p.target;
      if (t.kind === 'build')
        return terminals.openSource(t, p.cols, p.rows, (on) => builds.attach(t.buildId, on));
      if (t.kind !== 'usermode') return terminals.open(t, p.cols, p.rows);
      // Unpacking a root filesystem the first time can take a while: show it as a task.
      if (process.platform !== 'linux') throw new Error('user-mode emulation runs on Linux hosts only');
      return hub.task(
        `um-${t.imageId}`.slice(0, 100),
        `Preparing ${t.imageId}'s root filesystem`,
        async (step) => {
          const rootfs = await rootfsForImage(t.imageId, library, env);
          const spec = await openUsermode(rootfs, [], { arch: t.arch, env, onNote: step });
          return terminals.openProcess(
            t,
            spec,
            `${t.imageId} userspace on this kernel (qemu-${spec.arch})`,
            p.cols,
            p.rows,
          );
        },
      );
    },
    'term.input': async (p) => {
      terminals.input(p.termId, p.data);
      return { ok: true as const };
    },
    'term.resize': async (p) => {
      terminals.resize(p.termId, p.cols, p.rows);
      return { ok: true as const };
    },
    'term.ack': async (p) => {
      terminals.ack(p.termId, p.chars);
      return { ok: true as const };
    },
    'term.close': async (p) => {
      terminals.close(p.termId);
      return { ok: true as const };
    },
    ...flashHandlers({ library, supervisor, qemu, hub }, flashJobs),
    'settings.get': async () => settings.all(),
    'settings.set': async (p) => {
      settings.set(p.key, p.value);
      if (p.key === 'qemuPath') qemuFound = undefined;
      return { ok: true as const };
    },
    ...buildHandlers(builds),
  };

  return {
    dispatcher: new Dispatcher(handlers),
    hub,
    library,
    images,
    supervisor,
    disks,
    stacks,
    terminals,
    builds,
    qemu,
    async dispose() {
      terminals.closeAll();
      await builds.dispose();
      for (const st of stacks.list()) await stacks.down(st.spec.name).catch(() => undefined);
      await supervisor.dispose();
    },
  };
}
