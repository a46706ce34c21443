// Terminal sessions: a host shell in a pty, or a VM's serial console / HMP monitor.
// Each session runs its output through an OutputGate (UTF-8 decoding, 5 ms coalescing,
// VS Code-style flow control) and reports through the EventHub as `term.data` and,
// exactly once, `term.exit`.
import { randomBytes } from 'node:crypto';
import type { TermTarget } from '../../common/contract.ts';
import type { EventHub } from '../engine.ts';
import type { Channel } from '../vm/channel.ts';
import { OutputGate } from './flow-control.ts';
import {
  attachChannel,
  defaultHostShell,
  type HostShell,
  type SourceEvents,
  spawnHostShell,
  type TermSource,
} from './sources.ts';

export type ChannelTarget = Extract<TermTarget, { kind: 'serial' | 'monitor' }>;
export type ProcessTarget = Extract<TermTarget, { kind: 'host' | 'usermode' }>;

export interface TerminalsOptions {
  hub: EventHub;
  /** Finds a VM's console or monitor; throws a one-line Error for an unknown VM. */
  resolve: (target: ChannelTarget) => { title: string; channel: Channel };
  hostShell?: HostShell;
}

interface Session {
  id: string;
  target: TermTarget;
  source: TermSource;
  gate: OutputGate;
  ended: boolean;
}

export class Terminals {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly opts: TerminalsOptions) {}

  open(target: TermTarget, cols: number, rows: number): { termId: string; title: string } {
    if (target.kind === 'usermode')
      throw new Error('a user-mode terminal needs its root filesystem prepared first: use openProcess');
    if (target.kind === 'build') throw new Error("a build's log is opened through openSource");
    if (target.kind === 'host') {
      const shell = this.opts.hostShell ?? defaultHostShell();
      return this.openProcess(
        target,
        shell,
        `${shell.file.split(/[\\/]/).pop()} on this computer`,
        cols,
        rows,
      );
    }
    return this.start(target, cols, rows, (on) => {
      const r = this.opts.resolve(target);
      return { source: attachChannel(r.channel, on), title: r.title };
    });
  }

  /** A terminal on a program in a pty: the host shell, or a shell under qemu-user in a foreign rootfs. */
  openProcess(
    target: ProcessTarget,
    shell: HostShell,
    title: string,
    cols: number,
    rows: number,
  ): { termId: string; title: string } {
    return this.start(target, cols, rows, (on) => {
      try {
        return { source: spawnHostShell(shell, cols, rows, on), title };
      } catch (e) {
        throw new Error(`cannot start ${shell.file}: ${(e as Error).message.split('\n')[0]}`);
      }
    });
  }

  /** A terminal on any other source (a build's bitbake output); `make` may throw one line. */
  openSource(
    target: TermTarget,
    cols: number,
    rows: number,
    make: (on: SourceEvents) => { source: TermSource; title: string },
  ): { termId: string; title: string } {
    return this.start(target, cols, rows, make);
  }

  private start(
    target: TermTarget,
    _cols: number,
    _rows: number,
    make: (on: SourceEvents) => { source: TermSource; title: string },
  ): { termId: string; title: string } {
    const id = this.newId();
    const s = { id, target, ended: false } as Session;
    // The gate may pause the source before spawn returns (a long history replay), so it
    // reaches the source through the session rather than holding it directly.
    s.gate = new OutputGate({ pause: () => s.source.pause(), resume: () => s.source.resume() }, (data) =>
      this.opts.hub.emit('term.data', { termId: id, data }),
    );
    const on: SourceEvents = {
      data: (chunk) => {
        if (!s.ended) s.gate.push(chunk);
      },
      end: (code) => this.finish(s, code),
    };
    const made = make(on);
    s.source = made.source;
    const title = made.title;
    this.sessions.set(id, s);
    s.source.start();
    return { termId: id, title };
  }

  input(termId: string, data: string): void {
    this.get(termId).source.write(data);
  }

  resize(termId: string, cols: number, rows: number): void {
    this.get(termId).source.resize(cols, rows);
  }

  ack(termId: string, chars: number): void {
    // A late ack for a terminal that just ended is normal, not an error.
    this.sessions.get(termId)?.gate.ack(chars);
  }

  close(termId: string): void {
    const s = this.sessions.get(termId);
    if (!s) return;
    s.source.kill();
    // kill() ends a channel at once; a pty reports its exit asynchronously. Either way the
    // session is gone from now on and term.exit is sent exactly once.
    this.finish(s, null);
  }

  closeFor(vmId: string): void {
    for (const s of [...this.sessions.values()]) {
      if ('vmId' in s.target && s.target.vmId === vmId) this.close(s.id);
    }
  }

  closeAll(): void {
    for (const id of [...this.sessions.keys()]) this.close(id);
  }

  /** Open terminal ids (for diagnostics and tests). */
  list(): string[] {
    return [...this.sessions.keys()];
  }

  private finish(s: Session, code: number | null): void {
    if (s.ended) return;
    s.ended = true;
    s.gate.end();
    s.gate.dispose();
    this.sessions.delete(s.id);
    this.opts.hub.emit('term.exit', { termId: s.id, code });
  }

  private get(termId: string): Session {
    const s = this.sessions.get(termId);
    if (!s) throw new Error(`no open terminal ${termId}`);
    return s;
  }

  private newId(): string {
    let id: string;
    do id = `t${randomBytes(4).toString('hex')}`;
    while (this.sessions.has(id));
    return id;
  }
}
