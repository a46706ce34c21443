// The app's end of the stack agent running inside a parent guest. It speaks a line
// protocol over a dedicated virtio-serial port, so the parent's own console (the user's
// shell) is never used for control: the agent says READY once, then answers each
// command with its output lines and a final "OK" or "ERR <one line>".
import type { Channel } from '../vm/channel.ts';

export class AgentLink {
  private buf = '';
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private chain: Promise<unknown> = Promise.resolve();
  private ready = false;

  constructor(private readonly channel: Channel) {
    channel.on('data', (b) => this.onData(b));
    channel.on('close', () => this.wake());
  }

  private onData(b: Buffer): void {
    this.buf += b.toString('utf8').replace(/\r/g, '');
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      // The agent says READY each time it (re)starts; it is a state, not an answer.
      if (line === 'READY') this.ready = true;
      else this.lines.push(line);
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async next(deadline: number, what: string): Promise<void> {
    if (this.channel.closed) throw new Error(`the parent VM went away while waiting for ${what}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`the stack agent did not answer ${what} in time`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Waits for the agent to start inside the parent (it runs from init). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready)
      await this.next(deadline, 'its start-up (is stacklab-agent installed in the parent?)');
  }

  /** One command; resolves with its output lines, or rejects with the agent's one-line error. */
  call(command: string, timeoutMs = 60_000): Promise<string[]> {
    const p = this.chain.then(async () => {
      this.lines = [];
      this.channel.write(`${command}\n`);
      const deadline = Date.now() + timeoutMs;
      const out: string[] = [];
      for (;;) {
        while (this.lines.length === 0) await this.next(deadline, `"${command}"`);
        const line = this.lines.shift()!;
        if (line === 'OK') return out;
        if (line.startsWith('ERR'))
          throw new Error(line.slice(3).trim() || `the stack agent refused "${command}"`);
        out.push(line);
      }
    });
    this.chain = p.catch(() => undefined);
    return p;
  }
}
