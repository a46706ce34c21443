// Output path of one terminal, modelled on VS Code's: bytes are decoded with a streaming
// UTF-8 decoder (a character split across chunks is held back, never mangled), coalesced
// for 5 ms into one `term.data` event, and counted until the front end acknowledges them.
// Above HIGH_WATERMARK unacknowledged characters the source is paused; it resumes once the
// count falls below LOW_WATERMARK. xterm.js goes unresponsive with ~500 kB queued, so
// this keeps a flood (`yes`, a chatty boot) from drowning the renderer while Ctrl-C still
// gets through: input is never gated, only output.

export const HIGH_WATERMARK_CHARS = 100_000;
export const LOW_WATERMARK_CHARS = 5_000;
export const COALESCE_MS = 5;

export interface Pausable {
  pause(): void;
  resume(): void;
}

export class OutputGate {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private timer: NodeJS.Timeout | null = null;
  /** Characters handed to `emit` (or about to be) that the front end has not acknowledged. */
  unacked = 0;
  paused = false;

  constructor(
    private readonly source: Pausable,
    private readonly emit: (data: string) => void,
  ) {}

  /** Raw bytes (or already-decoded text) from the source. */
  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (!text) return;
    this.pending += text;
    // Counted on arrival rather than on emit so the pause happens at most one chunk late.
    this.unacked += text.length;
    if (!this.paused && this.unacked > HIGH_WATERMARK_CHARS) {
      this.paused = true;
      this.source.pause();
    }
    this.timer ??= setTimeout(() => this.flush(), COALESCE_MS);
  }

  /** The front end parsed `chars` more characters (string length of what it was sent). */
  ack(chars: number): void {
    this.unacked = Math.max(0, this.unacked - chars);
    if (this.paused && this.unacked < LOW_WATERMARK_CHARS) {
      this.paused = false;
      this.source.resume();
    }
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending) return;
    const data = this.pending;
    this.pending = '';
    this.emit(data);
  }

  /** The source ended: emit what is left, including a dangling partial character as U+FFFD. */
  end(): void {
    this.pending += this.decoder.decode();
    this.flush();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = '';
  }
}
