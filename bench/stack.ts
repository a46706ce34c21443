// From "Boot stack" to a shell in the innermost guest of the seed stack, through the
// engine (the request the button sends, then the nested console) against the same two
// QEMU commands run bare: the parent's argv pasted into a terminal, a login, and the
// nested command the stack agent ran typed at the parent's prompt. The nested images are
// installed before either is timed (a second click finds them cached).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEngine } from '../electron/engine/index.ts';
import { loadStack } from '../electron/engine/stack/model.ts';
import { reachShell } from '../electron/engine/vm/guest-shell.ts';
import { stripAnsi } from '../electron/engine/vm/milestones.ts';
import { imageInfo } from '../electron/engine/vm/overlay.ts';
import { bareCommand } from './bare.ts';
import { type BenchRow, median } from './stats.ts';

const PROMPT = /[#$] $/;
const LOGIN = /login: ?$/;

interface EngineRun {
  ms: number;
  parentArgv: string[];
  parentBinary: string;
  base: string;
  nestedCommand: string[];
}

async function engineRun(home: string): Promise<EngineRun> {
  const engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
  try {
    const t0 = performance.now();
    await engine.dispatcher.dispatch('stack.up', { preset: 'seed' });
    const stack = engine.stacks.get('seed')!;
    const [outer, inner] = stack.vms;
    await reachShell(inner!.vm.consoles[0]!, { timeoutMs: 1_200_000 });
    const ms = performance.now() - t0;
    const overlay = /file=([^,]+),/.exec(
      outer!.vm.plan.argv.find((a) => a.includes('disk.qcow2')) ?? '',
    )?.[1];
    const base = overlay && (await imageInfo((await engine.qemu()).img!, overlay)).backing;
    if (!base) throw new Error('could not find the base of the parent VM disk');
    return {
      ms,
      parentArgv: outer!.vm.plan.argv,
      parentBinary: outer!.vm.plan.binary,
      base,
      nestedCommand: [...inner!.vm.plan.commandLine.matchAll(/'([^']*)'/g)].map((m) => m[1]!),
    };
  } finally {
    await engine.dispose();
  }
}

/** What a person would type at the parent's prompt: the agent's command, console on stdio. */
export function bareNestedCommand(agentArgv: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < agentArgv.length; i++) {
    const a = agentArgv[i]!;
    const next = agentArgv[i + 1] ?? '';
    // The app's ends of the nested console, monitor and QMP: replaced by stdio, or dropped.
    if (a === '-chardev' && next.startsWith('pipe,')) i++;
    else if (
      (a === '-serial' && next.startsWith('chardev:')) ||
      (a === '-mon' && next.startsWith('chardev='))
    )
      i++;
    else if (a === '-pidfile') i++;
    else if (a === '-S' || a === '-daemonize') continue;
    else out.push(a);
  }
  out.push('-serial', 'mon:stdio', '-monitor', 'none');
  return out.map((a) => `'${a}'`).join(' ');
}

async function bareRun(r: EngineRun, qemuImg: string): Promise<number> {
  const { args, cleanup } = await bareCommand(r.parentArgv, qemuImg, r.base, false);
  const nested = bareNestedCommand(r.nestedCommand);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(r.parentBinary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    let stage: 'outer-login' | 'outer-shell' | 'nested-login' | 'nested-shell' = 'outer-login';
    const feed = (s: string) => {
      text = stripAnsi(text + s)
        .replace(/\r/g, '')
        .slice(-4000);
    };
    p.stdout.on('data', (b: Buffer) => {
      feed(b.toString('utf8'));
      if (stage === 'outer-login' && LOGIN.test(text)) {
        stage = 'outer-shell';
        text = '';
        p.stdin.write('root\r');
      } else if (stage === 'outer-shell' && PROMPT.test(text)) {
        stage = 'nested-login';
        text = '';
        p.stdin.write(`dmesg -n 1; ${nested}\r`);
      } else if (stage === 'nested-login' && LOGIN.test(text)) {
        stage = 'nested-shell';
        text = '';
        p.stdin.write('root\r');
      } else if (stage === 'nested-shell' && PROMPT.test(text)) {
        const ms = performance.now() - t0;
        p.kill('SIGKILL');
        resolve(ms);
      }
    });
    p.on('exit', () => {
      cleanup();
      if (stage !== 'nested-shell') reject(new Error(`bare stack stopped at ${stage}: ${text.slice(-300)}`));
    });
  });
}

export async function benchStack(
  runs = Number(process.env.STACKLAB_BENCH_STACK_RUNS ?? 1),
): Promise<BenchRow[]> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-stack-'));
  try {
    // Install the nested guests once (cached by content), as the first click does.
    const prep = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
    const qemuImg = (await prep.qemu()).img!;
    const t0 = performance.now();
    await prep.stacks.prepare(loadStack('seed'));
    const installMs = performance.now() - t0;
    await prep.dispose();
    const ours: number[] = [];
    const bare: number[] = [];
    let last: EngineRun | undefined;
    for (let i = 0; i < runs; i++) {
      last = await engineRun(home);
      ours.push(last.ms);
      bare.push(await bareRun(last, qemuImg));
    }
    const o = median(ours);
    const b = median(bare);
    return [
      {
        name: 'click to innermost shell: seed stack',
        ours: o / 1000,
        bare: b / 1000,
        unit: 's',
        ratio: o / b,
        note: `engine adds ${((o - b) / 1000).toFixed(1)} s; goal < 30 s; the first click also installs the nested guest (${(installMs / 1000).toFixed(1)} s); nested: ${last?.nestedCommand.join(' ')}`,
      },
    ];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
