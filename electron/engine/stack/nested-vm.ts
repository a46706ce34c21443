// A guest running inside another guest. Its QEMU is a process of the parent's kernel,
// started by the stack agent; the app reaches its console, monitor and QMP through the
// parent's virtio-serial ports, so the nested VM looks like any other VM to the UI —
// same states, milestones and terminals — and is marked lost if the parent goes away.
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import type { Channel } from '../vm/channel.ts';
import { channelTransport, Qmp } from '../vm/qmp.ts';
import { type LaunchPlan, Vm } from '../vm/vm.ts';
import type { AgentLink } from './agent-link.ts';

export interface NestedPorts {
  console: Channel;
  monitor: Channel;
  qmp: Channel;
}

export class NestedVm extends Vm {
  private nestedPid?: number;

  constructor(
    plan: LaunchPlan,
    readonly parent: Vm,
    private readonly agent: AgentLink,
    private readonly guestName: string,
    private readonly channels: NestedPorts,
  ) {
    super(plan);
    // The parent going away takes this VM with it: no process can be left behind.
    parent.once('exit', () => {
      if (this.exit) return;
      this.markLost();
      this.onExit(null, null);
    });
  }

  override get pid(): number | undefined {
    return this.nestedPid;
  }

  override async start(): Promise<void> {
    this.consoleLog = createWriteStream(path.join(this.plan.vmDir, 'console.log'), { flags: 'a' });
    this.consoles[0] = this.channels.console;
    this.monitor = this.channels.monitor;
    const onData = (b: Buffer) => this.onConsole(b);
    this.channels.console.on('data', onData);
    this.once('exit', () => this.channels.console.off('data', onData));
    const qmp = new Qmp(channelTransport(this.channels.qmp));
    this.qmp = qmp;
    qmp.on('event', (ev) => {
      if (ev.event === 'SHUTDOWN') void this.confirmGone();
    });
    const lines = await this.agent.call(`start ${this.guestName}`, 60_000);
    const m = lines.map((l) => /^\S+ running (\d+)/.exec(l)).find(Boolean);
    if (m) this.nestedPid = Number(m[1]);
    const cmd = lines.find((l) => l.startsWith('cmdline '));
    if (cmd) this.plan.commandLine = cmd.slice('cmdline '.length);
    await withTimeout(qmp.handshake(), 60_000, 'the nested QEMU did not answer on QMP');
    // The agent starts it paused, so no byte of its boot is missed.
    await qmp.execute('cont');
    this.milestones.mark('firmware');
    this.transition('booting');
  }

  /** QEMU said SHUTDOWN: ask the agent whether the process really ended. */
  private async confirmGone(): Promise<void> {
    for (let i = 0; i < 20 && !this.exit; i++) {
      const status = await this.agent.call('status').catch(() => [] as string[]);
      const mine = status.find((l) => l.startsWith(`${this.guestName} `));
      if (mine && !mine.includes(' running ')) {
        this.onExit(0, null);
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  override async stop(opts: { force?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.exit) return;
    this.stopRequested = true;
    this.transition('stopping');
    const qmp = this.qmp;
    if (!opts.force && qmp && !qmp.closed) {
      await qmp.execute('system_powerdown').catch(() => undefined);
      if (await settles(this.waitExit(), opts.timeoutMs ?? 5000)) return;
    }
    // QMP quit, then the agent's own stop (SIGTERM, then SIGKILL) if QEMU ignored it.
    if (qmp && !qmp.closed) await qmp.execute('quit').catch(() => undefined);
    void this.confirmGone();
    if (await settles(this.waitExit(), 8000)) return;
    await this.agent.call(`stop ${this.guestName}`, 30_000).catch(() => undefined);
    if (!this.exit) this.onExit(null, null);
  }

  /** The ports belong to the parent and outlive this guest: stop listening, don't end them. */
  protected override releaseChannels(): void {
    this.qmp?.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
