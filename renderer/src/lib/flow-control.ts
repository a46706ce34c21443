// Terminal flow control as VS Code does it: count characters only once xterm.js has
// parsed them (from the write callback), and acknowledge them in batches so the engine
// can pause a flooding producer (`yes`) instead of burying the renderer.
export const ACK_BATCH_CHARS = 5000;

export class AckBatcher {
  private pending = 0;
  private sent = 0;

  constructor(
    private readonly send: (chars: number) => void,
    readonly batch = ACK_BATCH_CHARS,
  ) {}

  /** Call from `terminal.write(data, cb)`'s callback with `data.length`. */
  written(chars: number): void {
    this.pending += chars;
    if (this.pending >= this.batch) {
      const n = this.pending;
      this.pending = 0;
      this.sent += n;
      this.send(n);
    }
  }

  /** Characters parsed but not yet acknowledged (always below one batch). */
  get unacknowledged(): number {
    return this.pending;
  }

  get acknowledged(): number {
    return this.sent;
  }

  /** A new terminal id starts a new count on the engine side. */
  reset(): void {
    this.pending = 0;
    this.sent = 0;
  }
}

/**
 * Splits outgoing input to fit `term.input`'s limit without cutting a surrogate pair,
 * so a large paste arrives whole and in order.
 */
export function chunkInput(data: string, max = 65536): string[] {
  if (max < 2) throw new Error('chunk size must be at least 2');
  const out: string[] = [];
  let i = 0;
  while (i < data.length) {
    let end = Math.min(i + max, data.length);
    const code = data.charCodeAt(end - 1);
    if (end < data.length && code >= 0xd800 && code <= 0xdbff) end -= 1;
    out.push(data.slice(i, end));
    i = end;
  }
  return out;
}
