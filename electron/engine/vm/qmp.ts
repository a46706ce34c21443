// A minimal QMP client: newline-delimited JSON over a stream socket. QEMU greets, we
// negotiate capabilities, then commands are answered in order (QMP is strictly
// request/response per connection) and asynchronous events arrive in between. The
// transport is a socket for a local QEMU, or a Channel through a parent guest's
// virtio-serial port for a nested one.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Channel } from './channel.ts';

export interface QmpTransport {
  write(text: string): void;
  onData(cb: (text: string) => void): void;
  onClose(cb: () => void): void;
  close(): void;
}

export function socketTransport(sock: Socket): QmpTransport {
  sock.setEncoding('utf8');
  sock.on('error', () => {
    /* 'close' follows and rejects what is pending */
  });
  return {
    write: (t) => sock.write(t),
    onData: (cb) => sock.on('data', (t: string) => cb(t)),
    onClose: (cb) => sock.on('close', cb),
    close: () => sock.destroy(),
  };
}

export function channelTransport(ch: Channel): QmpTransport {
  const listeners: Array<(b: Buffer) => void> = [];
  return {
    write: (t) => ch.write(t),
    onData: (cb) => {
      const l = (b: Buffer) => cb(b.toString('utf8'));
      listeners.push(l);
      ch.on('data', l);
    },
    onClose: (cb) => ch.on('close', cb),
    // The port outlives one nested QEMU: closing the client only stops listening.
    close: () => {
      for (const l of listeners) ch.off('data', l);
    },
  };
}

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

  private readonly sock: QmpTransport;

  constructor(transport: Socket | QmpTransport) {
    super();
    const sock = 'onData' in transport ? transport : socketTransport(transport);
    this.sock = sock;
    let onGreeting!: () => void;
    this.greeted = new Promise((r) => {
      onGreeting = r;
    });
    sock.onData((text: string) => {
      this.buf += text;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onMessage(line, onGreeting);
      }
    });
    sock.onClose(() => {
      this.closed = true;
      for (const p of this.queue.splice(0)) p.reject(new Error('QEMU closed the QMP connection'));
      this.emit('close');
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
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('QMP connection closed'));
    this.sock.close();
  }
}
