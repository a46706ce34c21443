// Owns every terminal session, routes `term.data`/`term.exit` to them by terminal id,
// and knows which one the panel shows.
import type { TermTarget } from '../../../../electron/common/contract.ts';
import { EarlyBuffer } from '../early-buffer.ts';
import { targetKey, targetVmId } from '../stack-tree.ts';
import type { Transport } from '../transport.ts';
import { type SessionHub, TerminalSession } from './terminal-session.svelte.ts';

export class Terminals implements SessionHub {
  active = $state<TerminalSession | null>(null);
  /** User-mode shells (an image's programs under qemu-user), drawn in the host's userspace. */
  usermode = $state<TerminalSession[]>([]);
  private readonly sessions = new Map<string, TerminalSession>();
  private readonly byTermId = new Map<string, TerminalSession>();
  private readonly early = new EarlyBuffer();

  /** Where F6 sends the keyboard from a terminal. */
  onLeave: (() => void) | null = null;

  constructor(private readonly t: Transport) {
    t.on('term.data', ({ termId, data }) => {
      const s = this.byTermId.get(termId);
      if (s) s.receive(data);
      else this.early.hold(termId, data);
    });
    t.on('term.exit', ({ termId, code }) => {
      this.byTermId.get(termId)?.exited(code);
      this.early.claim(termId);
    });
  }

  /** The session for a target, created on first use. */
  session(target: TermTarget, label: string, subtitle = ''): TerminalSession {
    const key = targetKey(target);
    let s = this.sessions.get(key);
    if (!s) {
      s = new TerminalSession(key, target, label, this.t, this);
      s.title = subtitle;
      s.onLeave = () => this.onLeave?.();
      if (target.kind === 'usermode') this.usermode.push(s);
      this.sessions.set(key, s);
    }
    return s;
  }

  show(target: TermTarget, label: string, subtitle = ''): TerminalSession {
    const s = this.session(target, label, subtitle);
    this.active = s;
    return s;
  }

  /** Closes a session for good (the ✕ on a user-mode shell). */
  drop(key: string): void {
    const s = this.sessions.get(key);
    if (!s) return;
    if (this.active === s) this.active = null;
    this.usermode = this.usermode.filter((u) => u !== s);
    s.dispose();
    this.sessions.delete(key);
  }

  get(key: string): TerminalSession | undefined {
    return this.sessions.get(key);
  }

  register(termId: string, session: TerminalSession): string[] {
    this.byTermId.set(termId, session);
    return this.early.claim(termId);
  }

  unregister(termId: string): void {
    this.byTermId.delete(termId);
  }

  /** The connection dropped: no terminal id survives it. */
  disconnected(): void {
    for (const s of this.sessions.values()) s.orphaned();
  }

  /** After a reconnection every terminal id is stale; the shown one reopens at once. */
  reconnected(): void {
    for (const s of this.sessions.values()) s.orphaned();
    const a = this.active;
    if (a?.element.isConnected) void a.connect();
  }

  /** A VM came (back) to life: its ended consoles may reopen; the shown one does so now. */
  vmLive(vmId: string): void {
    for (const s of this.sessions.values()) {
      if (targetVmId(s.target) !== vmId || (s.status !== 'exited' && s.status !== 'error')) continue;
      s.orphaned();
      s.status = 'idle';
      if (s === this.active && s.element.isConnected) void s.connect();
    }
  }

  /** A VM is gone: its consoles go with it. */
  dropVm(vmId: string): void {
    for (const [key, s] of this.sessions) {
      if (targetVmId(s.target) !== vmId) continue;
      if (this.active === s) this.active = null;
      s.dispose();
      this.sessions.delete(key);
    }
  }
}
