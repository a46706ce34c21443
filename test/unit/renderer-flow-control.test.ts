// Renderer side of terminal flow control: acknowledge parsed characters in 5 000-char
// batches, and split big input without breaking characters.
import { describe, expect, it } from 'vitest';
import { HIGH_WATERMARK_CHARS, LOW_WATERMARK_CHARS } from '../../electron/engine/term/flow-control.ts';
import { ACK_BATCH_CHARS, AckBatcher, chunkInput } from '../../renderer/src/lib/flow-control.ts';

describe('AckBatcher', () => {
  it('sends nothing until a whole batch has been parsed, then the exact count', () => {
    const sent: number[] = [];
    const acks = new AckBatcher((n) => sent.push(n));
    acks.written(1200);
    acks.written(3799);
    expect(sent).toEqual([]);
    expect(acks.unacknowledged).toBe(4999);
    acks.written(1);
    expect(sent).toEqual([5000]);
    acks.written(12_345);
    expect(sent).toEqual([5000, 12_345]);
    expect(acks.unacknowledged).toBe(0);
    expect(acks.acknowledged).toBe(17_345);
  });

  it('acknowledges every character of a long flood, one message per batch or larger chunk', () => {
    const sent: number[] = [];
    const acks = new AckBatcher((n) => sent.push(n));
    let total = 0;
    for (let i = 0; i < 1000; i++) {
      const len = 1 + ((i * 7919) % 4096);
      total += len;
      acks.written(len);
    }
    const acked = sent.reduce((a, b) => a + b, 0);
    expect(acked + acks.unacknowledged).toBe(total);
    expect(acks.unacknowledged).toBeLessThan(ACK_BATCH_CHARS);
    expect(sent.every((n) => n >= ACK_BATCH_CHARS)).toBe(true);
  });

  it('never holds back enough to keep the engine paused', () => {
    // The engine resumes below its low watermark; what the renderer keeps unacknowledged
    // must stay under it, and one batch must be well below the pause threshold.
    expect(ACK_BATCH_CHARS).toBeLessThanOrEqual(LOW_WATERMARK_CHARS);
    expect(ACK_BATCH_CHARS * 4).toBeLessThan(HIGH_WATERMARK_CHARS);
  });

  it('starts a new count after reset (a reopened terminal)', () => {
    const sent: number[] = [];
    const acks = new AckBatcher((n) => sent.push(n), 10);
    acks.written(9);
    acks.reset();
    acks.written(9);
    expect(sent).toEqual([]);
    acks.written(1);
    expect(sent).toEqual([10]);
  });
});

describe('chunkInput', () => {
  it('keeps small input whole and splits large input in order', () => {
    expect(chunkInput('ls\r')).toEqual(['ls\r']);
    expect(chunkInput('')).toEqual([]);
    const big = 'x'.repeat(150_000);
    const parts = chunkInput(big);
    expect(parts.map((p) => p.length)).toEqual([65536, 65536, 18928]);
    expect(parts.join('')).toBe(big);
  });

  it('never cuts a surrogate pair in half', () => {
    const text = `${'a'.repeat(3)}😀${'b'.repeat(3)}`; // the emoji sits across the 4-char boundary
    const parts = chunkInput(text, 4);
    expect(parts.join('')).toBe(text);
    // A lone surrogate at either end of a chunk would mean a character was cut.
    for (const p of parts) expect(p).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
  });
});
