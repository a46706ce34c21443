// Start-to-shell through the engine against the same QEMU command run bare, per demo
// guest, median of N runs. "Bare" is the engine's own argv with the serial console on
// stdio and without -S: exactly what a person would paste into a terminal.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEngine } from '../electron/engine/index.ts';
import { reachShell } from '../electron/engine/vm/guest-shell.ts';
import { stripAnsi } from '../electron/engine/vm/milestones.ts';
import { bareCommand } from './bare.ts';
import { type BenchRow, median } from './stats.ts';

const PROMPT = /[#$] $/;

async function engineRun(
  imageId: string,
): Promise<{ ms: number; argv: string[]; binary: string; rootfs: string; sd: boolean }> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-'));
  const engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
  try {
    const t0 = performance.now();
    const image = await engine.library.resolve(imageId);
    const vm = await engine.supervisor.boot(image);
    await reachShell(vm.consoles[0]!, { timeoutMs: 300_000 });
    const ms = performance.now() - t0;
    return { ms, argv: vm.plan.argv, binary: vm.plan.binary, rootfs: image.rootfs, sd: image.sdCard };
  } finally {
    await engine.dispose();
    rmSync(home, { recursive: true, force: true });
  }
}

/** The same argv, run bare: serial on stdio, not paused, nobody on the other sockets. */
async function bareRun(
  binary: string,
  argv: string[],
  qemuImg: string,
  rootfs: string,
  sd: boolean,
): Promise<number> {
  const { args, cleanup } = await bareCommand(argv, qemuImg, rootfs, sd);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    let loggedIn = false;
    p.stdout.on('data', (b: Buffer) => {
      text = stripAnsi(text + b.toString('utf8'))
        .replace(/\r/g, '')
        .slice(-4000);
      if (!loggedIn && /login: ?$/.test(text)) {
        loggedIn = true;
        p.stdin.write('root\r');
      } else if (loggedIn && PROMPT.test(text)) {
        const ms = performance.now() - t0;
        p.kill('SIGKILL');
        resolve(ms);
      }
    });
    p.on('exit', () => {
      cleanup();
      if (!loggedIn) reject(new Error(`bare QEMU exited before a login prompt: ${text.slice(-300)}`));
    });
  });
}

export async function benchBoot(runs = 5): Promise<BenchRow[]> {
  const engine = await createEngine();
  const images = (await engine.library.summaries()).filter(
    (i) => i.bootable && ['demo-qemuarm64', 'demo-qemux86-64', 'demo-raspberrypi3-64'].includes(i.id),
  );
  const qemuImg = (await engine.qemu()).img!;
  await engine.dispose();
  const rows: BenchRow[] = [];
  for (const img of images) {
    const ours: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await engineRun(img.id);
      ours.push(r.ms);
      bare.push(await bareRun(r.binary, r.argv, qemuImg, r.rootfs, r.sd));
    }
    const o = median(ours);
    const b = median(bare);
    rows.push({
      name: `boot to shell: ${img.id}`,
      ours: o / 1000,
      bare: b / 1000,
      unit: 's',
      ratio: o / b,
      note: `engine adds ${((o - b) / 1000).toFixed(2)} s (target: ≤ 10 % or ≤ 0.3 s)`,
    });
  }
  return rows;
}
