import { describe, expect, it } from 'vitest';
import { layerTaxChart, TAX_WHY } from '../../renderer/src/lib/layer-tax.ts';

describe('layer tax chart', () => {
  it('is empty with no samples, so the UI can say "not measured yet"', () => {
    const c = layerTaxChart([]);
    expect(c.bars).toEqual([]);
    expect(c.height).toBe(0);
  });

  it('draws one bar per layer, host first, as times slower than the host on a log scale', () => {
    const c = layerTaxChart(
      [
        { layer: 'nested', seconds: 200 },
        { layer: 'host', seconds: 2 },
        { layer: 'guest', seconds: 20 },
      ],
      { width: 500, labelWidth: 100 },
    );
    expect(c.baseline).toBe('host');
    expect(c.bars.map((b) => b.layer)).toEqual(['host', 'guest', 'nested']);
    expect(c.bars.map((b) => b.factor)).toEqual([1, 10, 100]);
    expect(c.bars.map((b) => b.text)).toEqual(['native', '10× slower', '100× slower']);
    // Two decades: the guest's bar is half the nested one's, the host's the minimum.
    const max = c.barMax;
    expect(max).toBe(500 - 100 - 86);
    expect(c.bars[2]!.width).toBeCloseTo(max);
    expect(c.bars[1]!.width).toBeCloseTo(max / 2);
    expect(c.bars[0]!.width).toBe(4);
    expect(c.bars.map((b) => b.y)).toEqual([0, c.rowHeight, 2 * c.rowHeight]);
    expect(c.ticks.map((t) => t.label)).toEqual(['1×', '10×', '100×']);
    expect(c.ticks[2]!.x).toBeCloseTo(100 + max);
    expect(c.bars[2]!.why).toBe(TAX_WHY.nested);
  });

  it('keeps the fastest of repeated runs and drops bad numbers', () => {
    const c = layerTaxChart([
      { layer: 'host', seconds: 3 },
      { layer: 'host', seconds: 2 },
      { layer: 'guest', seconds: Number.NaN },
      { layer: 'guest', seconds: -1 },
      { layer: 'usermode', seconds: 9 },
    ]);
    expect(c.bars.map((b) => [b.layer, b.seconds])).toEqual([
      ['host', 2],
      ['usermode', 9],
    ]);
    expect(c.bars[1]!.text).toBe('4.5× slower');
  });

  it('compares with the fastest layer when the host was not measured', () => {
    const c = layerTaxChart([
      { layer: 'nested', seconds: 30 },
      { layer: 'guest', seconds: 6 },
    ]);
    expect(c.baseline).toBe('fastest');
    expect(c.bars.map((b) => b.text)).toEqual(['native', '5.0× slower']);
    // One decade at least, so a factor of 5 does not fill the whole width.
    expect(c.bars[1]!.width).toBeLessThan(c.barMax);
  });

  it('explains every layer in one sentence', () => {
    for (const s of Object.values(TAX_WHY)) {
      expect(s.length).toBeGreaterThan(20);
      expect(s.split(/\.\s/).length).toBe(1);
    }
  });
});
