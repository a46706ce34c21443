// The same CPU benchmark (layer-tax.ts: busybox hashing 16 MiB) on the host, under
// user-mode emulation and in a system-mode guest, in one run: the cost of each kind of
// emulation as a ratio against the bare host.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEngine } from '../electron/engine/index.ts';
import { measureCommand, measureGuest, measureHost, TAX_SCRIPT } from '../electron/engine/stack/layer-tax.ts';
import { prepareRootfs, rootfsForImage } from '../electron/engine/usermode/rootfs.ts';
import { usermodeCommand } from '../electron/engine/usermode/run.ts';
import { type BenchRow, median } from './stats.ts';

const RUNS = 3;

export async function benchLayers(): Promise<BenchRow[]> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-layers-'));
  const engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
  try {
    const host: number[] = [];
    const user: number[] = [];
    const system: number[] = [];
    const dir = (await prepareRootfs(await rootfsForImage('demo-qemuarm64', engine.library))).dir;
    const spec = await usermodeCommand(dir, ['/bin/busybox', 'time', 'sh', '-c', TAX_SCRIPT], {
      arch: 'aarch64',
    });
    const vm = await engine.supervisor.boot(await engine.library.resolve('demo-qemuarm64'));
    for (let i = 0; i < RUNS; i++) {
      host.push(await measureHost());
      user.push(await measureCommand(spec.file, spec.args, spec.env));
      system.push(await measureGuest(vm));
    }
    const [h, u, s] = [median(host), median(user), median(system)];
    return [
      {
        name: 'CPU benchmark: user mode vs host',
        ours: u,
        bare: h,
        unit: 's',
        ratio: u / h,
        note: 'qemu-aarch64 under proot',
      },
      {
        name: 'CPU benchmark: system mode vs host',
        ours: s,
        bare: h,
        unit: 's',
        ratio: s / h,
        note: 'demo-qemuarm64, TCG',
      },
      {
        name: 'CPU benchmark: system mode vs user mode',
        ours: s,
        bare: u,
        unit: 's',
        ratio: s / u,
        note: 'the price of a whole emulated machine',
      },
    ];
  } finally {
    await engine.dispose();
    rmSync(home, { recursive: true, force: true });
  }
}
