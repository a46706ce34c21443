// A minimal QMP client: newline-delimited JSON over a stream socket. QEMU greets, we
// negotiate capabilities, then commands are answered in order (QMP is strictly
// request/response per connection) and asynchronous events arrive in between.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class Qmp extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buf = '';
  private queue: Pending[] = [];
  private greeted: Promise<void>;
  closed = false;

  constructor(private readonly sock: Socket) {
    super();
    let onGreeting!: () => void;
    this.greeted = new Promise((r) => {
      onGreeting = r;
    });
    sock.setEncoding('utf8');
    sock.on('data', (text: string) => {
      this.buf += text;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onMessage(line, onGreeting);
      }
    });
    sock.on('close', () => {
      this.closed = true;
      for (const p of this.queue.splice(0)) p.reject(new Error('QEMU closed the QMP connection'));
      this.emit('close');
    });
    sock.on('error', () => {
      /* 'close' follows and rejects what is pending */
    });
  }

  private onMessage(line: string, onGreeting: () => void): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU only sends JSON here; a torn line would be a QEMU bug, not ours to crash on
    }
    if ('QMP' in msg) {
      onGreeting();
      return;
    }
    if ('event' in msg) {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const p = this.queue.shift();
    if (!p) return;
    if ('error' in msg) {
      const err = msg.error as { desc?: string; class?: string };
      p.reject(new Error(err.desc ?? err.class ?? 'QMP error'));
    } else p.resolve(msg.return);
  }

  async handshake(): Promise<void> {
    await this.greeted;
    await this.execute('qmp_capabilities');
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('QMP connection is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(
        `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
      );
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
