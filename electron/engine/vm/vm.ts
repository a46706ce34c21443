// One running QEMU and everything attached to it: the process, QMP, the console and
// monitor channels, boot milestones and the state machine. QEMU starts paused (-S) so
// every console is connected before the guest prints its first byte; then QMP `cont`.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import type { Milestone, VmState, VmSummary } from '../../common/contract.ts';
import { Channel } from './channel.ts';
import { MilestoneTracker } from './milestones.ts';
import { register, spawnQemu, unregister } from './process.ts';
import { Qmp } from './qmp.ts';
import { ProcStats } from './stats.ts';

export interface LaunchPlan {
  vmId: string;
  imageId: string;
  name: string; // human name
  qemuName: string; // value of -name: lets the reaper recognise the process
  binary: string; // absolute path
  argv: string[]; // must include -S and the chardev/qmp sockets below
  commandLine: string;
  board: string;
  arch: string;
  accel: string;
  accelWhy: string;
  consoles: Array<{ index: number; name: string; socket: string }>;
  monitorSocket: string;
  qmpSocket: string;
  qmpControlSocket: string;
  /** Extra virtio-serial ports (name → socket) the engine talks through: the stack agent, nested consoles. */
  ports?: Array<{ name: string; socket: string }>;
  sshPort?: number;
  vmDir: string; // logs live here
  env?: Record<string, string>; // added to QEMU's environment (runqemu sets QEMU_AUDIO_DRV=none)
  parentId?: string;
  depth?: number;
}

/** Legal transitions; anything else is a bug we want to hear about in tests. */
const NEXT: Record<VmState, VmState[]> = {
  starting: ['booting', 'stopping', 'stopped', 'crashed', 'lost'],
  booting: ['running', 'stopping', 'stopped', 'crashed', 'lost'],
  running: ['stopping', 'stopped', 'crashed', 'lost'],
  stopping: ['stopped', 'crashed', 'lost'],
  stopped: [],
  crashed: [],
  lost: [],
};

const LAST_LINES = 40;

export class Vm extends EventEmitter<{ changed: []; exit: [] }> {
  state: VmState = 'starting';
  readonly startedAt = Date.now();
  readonly consoles: Channel[] = [];
  /** Channels on the extra virtio-serial ports, by port name. */
  readonly ports = new Map<string, Channel>();
  monitor!: Channel;
  proc?: ChildProcess;
  qmp?: Qmp;
  kernelVersion?: string;
  exit?: { code: number | null; signal: string | null };
  lastLines?: string[];
  protected readonly milestones: MilestoneTracker;
  private readonly sockets: Socket[] = [];
  protected readonly stats = new ProcStats();
  private usage: { cpuPercent?: number; rssBytes?: number } = {};
  protected statsTimer?: NodeJS.Timeout;
  protected stopRequested = false;
  protected guestShutdown = false;
  protected stderr = '';
  protected consoleLog?: WriteStream;
  protected exited: Promise<void>;
  private onExited!: () => void;

  constructor(readonly plan: LaunchPlan) {
    super();
    this.milestones = new MilestoneTracker(this.startedAt);
    this.exited = new Promise((r) => {
      this.onExited = r;
    });
  }

  get id(): string {
    return this.plan.vmId;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  hasReached(m: Milestone): boolean {
    return this.milestones.reached.has(m);
  }

  /** Resolves once the guest is running (un-paused); rejects with one line if QEMU refuses to start. */
  async start(): Promise<void> {
    const p = this.plan;
    this.consoleLog = createWriteStream(path.join(p.vmDir, 'console.log'), { flags: 'a' });
    const proc = spawnQemu(p.binary, p.argv, { cwd: p.vmDir, env: { ...process.env, ...p.env } });
    this.proc = proc;
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (t: string) => {
      this.stderr = (this.stderr + t).slice(-16_384);
    });
    proc.stdout?.resume();
    const exitedEarly = new Promise<never>((_, reject) => {
      proc.once('exit', () => reject(new Error(this.qemuError())));
      proc.once('error', (e) => reject(new Error(`could not start ${p.binary}: ${e.message}`)));
    });
    proc.once('exit', (code, signal) => this.onExit(code, signal));
    // A binary that cannot be executed never emits 'exit'; end the VM the same way.
    proc.once('error', () => {
      if (proc.pid === undefined) this.onExit(null, null);
    });
    if (proc.pid) {
      register({
        vmId: p.vmId,
        pid: proc.pid,
        ownerPid: process.pid,
        binary: p.binary,
        name: p.qemuName,
        qmpControl: p.qmpControlSocket,
        startedAt: this.startedAt,
        imageId: p.imageId,
        vmDir: p.vmDir,
      });
    }
    try {
      await Promise.race([this.attach(), exitedEarly]);
      await Promise.race([this.qmp!.execute('cont'), exitedEarly]);
    } catch (e) {
      if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
      await this.exited;
      throw e;
    }
    exitedEarly.catch(() => undefined);
    this.milestones.mark('firmware');
    this.transition('booting');
    this.statsTimer = setInterval(() => this.sampleStats(), 2000);
    this.statsTimer.unref();
  }

  private async attach(): Promise<void> {
    const p = this.plan;
    const qmpSock = await connectWhenReady(p.qmpSocket, () => this.proc?.exitCode !== null);
    this.sockets.push(qmpSock);
    this.qmp = new Qmp(qmpSock);
    this.qmp.on('event', (ev) => {
      if (ev.event === 'SHUTDOWN' && (ev.data as { guest?: boolean } | undefined)?.guest)
        this.guestShutdown = true;
    });
    await this.qmp.handshake();
    for (const c of p.consoles) {
      const sock = await connectWhenReady(c.socket, () => this.proc?.exitCode !== null);
      this.sockets.push(sock);
      const ch = new Channel(c.name, 256 * 1024, sock);
      sock.on('data', (b: Buffer) => {
        ch.push(b);
        if (c.index === 0) this.onConsole(b);
        else this.consoleLog?.write(b);
      });
      sock.on('close', () => ch.end());
      sock.on('error', () => undefined);
      this.consoles[c.index] = ch;
    }
    for (const port of p.ports ?? []) {
      const sock = await connectWhenReady(port.socket, () => this.proc?.exitCode !== null);
      this.sockets.push(sock);
      const ch = new Channel(port.name, 256 * 1024, sock);
      sock.on('data', (b: Buffer) => ch.push(b));
      sock.on('close', () => ch.end());
      sock.on('error', () => undefined);
      this.ports.set(port.name, ch);
    }
    const mon = await connectWhenReady(p.monitorSocket, () => this.proc?.exitCode !== null);
    this.sockets.push(mon);
    this.monitor = new Channel('monitor', 64 * 1024, mon);
    mon.on('data', (b: Buffer) => this.monitor.push(b));
    mon.on('close', () => this.monitor.end());
    mon.on('error', () => undefined);
  }

  protected onConsole(b: Buffer): void {
    this.consoleLog?.write(b);
    const text = b.toString('latin1');
    if (!this.kernelVersion) this.kernelVersion = MilestoneTracker.kernelVersion(text);
    const reached = this.milestones.feed(text);
    if (reached.length === 0) return;
    if ((reached.includes('login') || reached.includes('shell')) && this.state === 'booting')
      this.transition('running');
    else this.emit('changed');
  }

  private sampleStats(): void {
    if (!this.pid || this.exit) return;
    this.usage = this.stats.sample(this.pid);
    this.emit('changed');
  }

  protected transition(to: VmState): void {
    if (this.state === to) return;
    if (!NEXT[this.state].includes(to)) return; // late events after an end state are ignored
    this.state = to;
    this.emit('changed');
  }

  private qemuError(): string {
    const lines = this.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const line =
      lines.find((l) => /error|invalid|unsupported|could not|failed|no such/i.test(l)) ?? lines.at(-1);
    const code = this.proc?.exitCode;
    return line
      ? `QEMU refused to start: ${line.replace(/^qemu-system-\S+: /, '')}`
      : `QEMU exited during start-up (status ${code ?? this.proc?.signalCode})`;
  }

  /** The process is gone: its sockets, and so its channels, end with it. */
  protected releaseChannels(): void {
    for (const s of this.sockets) s.destroy();
    for (const c of this.consoles) c?.end();
    for (const c of this.ports.values()) c.end();
    this.monitor?.end();
  }

  protected onExit(code: number | null, signal: NodeJS.Signals | null): void {
    clearInterval(this.statsTimer);
    this.exit = { code, signal };
    unregister(this.plan.vmId, this.plan.vmDir);
    this.releaseChannels();
    this.consoleLog?.end();
    const clean = this.stopRequested || (this.guestShutdown && code === 0);
    if (!clean) {
      const tail = Buffer.concat([this.consoles[0]?.history() ?? Buffer.alloc(0)])
        .toString('utf8')
        .replace(/\r/g, '')
        .split('\n');
      this.lastLines = [...tail.slice(-LAST_LINES), ...this.stderr.trim().split('\n').filter(Boolean)].slice(
        -LAST_LINES,
      );
    }
    this.transition(clean ? 'stopped' : 'crashed');
    this.onExited();
    this.emit('exit');
  }

  /** Marks a nested VM lost when its parent disappears. */
  markLost(): void {
    this.transition('lost');
  }

  waitExit(): Promise<void> {
    return this.exited;
  }

  /** Graceful: ACPI power button, then `quit` after the timeout, then SIGKILL. */
  async stop(opts: { force?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.exit) return;
    this.stopRequested = true;
    this.transition('stopping');
    if (!opts.force && this.qmp && !this.qmp.closed) {
      await this.qmp.execute('system_powerdown').catch(() => undefined);
      if (await within(this.exited, opts.timeoutMs ?? 10_000)) return;
    }
    if (this.qmp && !this.qmp.closed) {
      await this.qmp.execute('quit').catch(() => undefined);
      if (await within(this.exited, 3000)) return;
    }
    this.proc?.kill('SIGKILL');
    await this.exited;
  }

  summary(): VmSummary {
    const p = this.plan;
    return {
      id: p.vmId,
      imageId: p.imageId,
      name: p.name,
      state: this.state,
      milestones: this.milestones.list(),
      startedAt: this.startedAt,
      pid: this.pid,
      binary: p.binary,
      board: p.board,
      arch: p.arch,
      accel: p.accel,
      accelWhy: p.accelWhy,
      argv: p.argv,
      commandLine: p.commandLine,
      kernelVersion: this.kernelVersion,
      consoles: p.consoles.map((c) => ({ index: c.index, name: c.name })),
      sshPort: p.sshPort,
      cpuPercent: this.usage.cpuPercent,
      rssBytes: this.usage.rssBytes,
      exit: this.exit,
      lastLines: this.lastLines,
      parentId: p.parentId,
      depth: p.depth ?? 1,
    };
  }
}

function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** QEMU creates its listening sockets during start-up; retry briefly until they accept. */
async function connectWhenReady(
  socketPath: string,
  gone: () => boolean,
  timeoutMs = 15_000,
): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(socketPath);
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (e) {
      if (gone()) throw new Error('QEMU exited before its sockets were ready');
      if (Date.now() > deadline)
        throw new Error(`QEMU did not open ${path.basename(socketPath)}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
