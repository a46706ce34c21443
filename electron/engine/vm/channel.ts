// A byte channel to one of a VM's character devices (a serial console or the HMP
// monitor). The supervisor owns the socket and keeps a bounded scrollback, so a terminal
// that attaches late still sees the boot; terminals subscribe and apply flow control by
// pausing the channel, which pauses the socket and so QEMU's chardev and the guest UART.
import { EventEmitter } from 'node:events';

export interface ChannelEvents {
  data: [chunk: Buffer];
  close: [];
}

export class Channel extends EventEmitter<ChannelEvents> {
  private chunks: Buffer[] = [];
  private size = 0;
  private pausers = new Set<object>();
  closed = false;

  constructor(
    readonly name: string,
    private readonly limit = 256 * 1024,
    private readonly sink: { write(b: Buffer): void; pause(): void; resume(): void } | null = null,
  ) {
    super();
  }

  /** Called by the owner when bytes arrive from QEMU. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
    this.emit('data', chunk);
  }

  /** What came before, bounded: the newest `limit` bytes (roughly; whole chunks). */
  history(): Buffer {
    return Buffer.concat(this.chunks);
  }

  write(data: string | Buffer): void {
    if (this.closed || !this.sink) return;
    this.sink.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  /** Several readers may pause; the source resumes only when all of them have resumed. */
  pause(by: object): void {
    const was = this.pausers.size;
    this.pausers.add(by);
    if (was === 0) this.sink?.pause();
  }

  resume(by: object): void {
    if (!this.pausers.delete(by)) return;
    if (this.pausers.size === 0) this.sink?.resume();
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
}
