import { describe, expect, it } from 'vitest';
import { parseBusyboxTime, taxRows } from '../../electron/engine/stack/layer-tax.ts';

describe('layer tax', () => {
  it("reads busybox time's real line", () => {
    expect(parseBusyboxTime('real\t0m 0.15s\nuser\t0m 0.08s\nsys\t0m 0.02s\n')).toBeCloseTo(0.15);
    expect(parseBusyboxTime('noise\nreal\t2m 3.50s\n')).toBeCloseTo(123.5);
    expect(() => parseBusyboxTime('sh: time: not found')).toThrow(/could not read/);
  });

  it('states each layer against the host, with a reason', () => {
    const rows = taxRows([
      { layer: 'pc', kind: 'host', seconds: 0.2 },
      { layer: 'arm64', kind: 'guest', seconds: 2 },
      { layer: 'x86', kind: 'nested', seconds: 30 },
    ]);
    expect(rows.map((r) => r.factor)).toEqual([1, 10, 150]);
    expect(rows[2]!.why).toMatch(/translat/);
  });
});
