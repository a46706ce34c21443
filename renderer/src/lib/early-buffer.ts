// Terminal output can arrive before `term.open` has answered with the terminal's id
// (the engine replays scrollback straight away). Such output is held here, bounded,
// until the session that owns the id claims it.
export class EarlyBuffer {
  private readonly held = new Map<string, { chunks: string[]; size: number; at: number }>();

  constructor(
    private readonly maxChars = 1_000_000,
    private readonly maxAgeMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  hold(termId: string, data: string): void {
    this.expire();
    let entry = this.held.get(termId);
    if (!entry) {
      entry = { chunks: [], size: 0, at: this.now() };
      this.held.set(termId, entry);
    }
    entry.chunks.push(data);
    entry.size += data.length;
    // Keep the newest output: the end of a replay matters more than its start.
    while (entry.size > this.maxChars && entry.chunks.length > 1) entry.size -= entry.chunks.shift()!.length;
  }

  claim(termId: string): string[] {
    const entry = this.held.get(termId);
    this.held.delete(termId);
    return entry?.chunks ?? [];
  }

  get size(): number {
    return this.held.size;
  }

  private expire(): void {
    const limit = this.now() - this.maxAgeMs;
    for (const [id, e] of this.held) if (e.at < limit) this.held.delete(id);
  }
}
