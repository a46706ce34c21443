// The "layer tax": how much slower the same CPU benchmark runs at each layer of a stack.
// Pure geometry for a small horizontal SVG bar chart, so it can be unit-tested; the
// component only draws what this returns.

export type TaxLayer = 'host' | 'guest' | 'nested' | 'usermode';

export interface TaxSample {
  layer: TaxLayer;
  /** Wall-clock seconds the benchmark took at this layer. */
  seconds: number;
}

export const TAX_ORDER: readonly TaxLayer[] = ['host', 'usermode', 'guest', 'nested'];

export const TAX_LABEL: Record<TaxLayer, string> = {
  host: 'Host',
  usermode: 'User mode',
  guest: 'Guest',
  nested: 'Nested guest',
};

/** One plain sentence per layer on why it costs what it costs. */
export const TAX_WHY: Record<TaxLayer, string> = {
  host: 'Native: the benchmark runs straight on the real processor, nothing in between.',
  usermode:
    'User mode: no guest kernel; qemu-user translates the program and its system calls go straight to the host kernel.',
  guest: "QEMU TCG: translates every block of the guest's instructions into host code before running it.",
  nested: "Nested: the inner QEMU's translator itself runs as translated code inside the outer QEMU.",
};

export interface TaxBar {
  layer: TaxLayer;
  label: string;
  why: string;
  seconds: number;
  /** Times slower than the host (or the fastest layer measured when the host is missing). */
  factor: number;
  y: number;
  width: number;
  /** "native" for the baseline, "12× slower" otherwise. */
  text: string;
}

export interface TaxChart {
  width: number;
  height: number;
  /** Where the bars start (left of it are the layer names). */
  barX: number;
  barMax: number;
  rowHeight: number;
  bars: TaxBar[];
  /** Log-scale ticks: 1×, 10×, 100×… up to the slowest layer. */
  ticks: Array<{ factor: number; x: number; label: string }>;
  baseline: 'host' | 'fastest';
}

export interface TaxOptions {
  width?: number;
  labelWidth?: number;
  rowHeight?: number;
}

function factorText(f: number): string {
  if (f < 1.05) return 'native';
  const n = f < 10 ? f.toFixed(1) : String(Math.round(f));
  return `${n}× slower`;
}

/**
 * Lays out one bar per measured layer (host first, then outward), on a log scale since
 * each layer can cost ten times the last. Samples that are not positive finite numbers
 * are dropped; with none left the chart is empty and the UI says "not measured yet".
 */
export function layerTaxChart(samples: readonly TaxSample[], opts: TaxOptions = {}): TaxChart {
  const width = opts.width ?? 520;
  const barX = opts.labelWidth ?? 104;
  const rowHeight = opts.rowHeight ?? 26;
  const barMax = width - barX - 86; // room for the "123× slower" text after the longest bar
  const best = new Map<TaxLayer, number>();
  for (const s of samples) {
    if (!Number.isFinite(s.seconds) || s.seconds <= 0 || !TAX_ORDER.includes(s.layer)) continue;
    // Repeated runs: the fastest is the least disturbed by the rest of the machine.
    best.set(s.layer, Math.min(best.get(s.layer) ?? Number.POSITIVE_INFINITY, s.seconds));
  }
  const layers = TAX_ORDER.filter((l) => best.has(l));
  const hostSec = best.get('host');
  const base = hostSec ?? Math.min(...layers.map((l) => best.get(l)!));
  const factors = layers.map((l) => best.get(l)! / base);
  const maxFactor = Math.max(1, ...factors);
  // Decades on the axis; at least one decade so a lone native bar still has a scale.
  const decades = Math.max(1, Math.ceil(Math.log10(maxFactor) - 1e-9));
  const scale = (f: number) => (Math.log10(Math.max(1, f)) / decades) * barMax;
  const minBar = 4;
  const bars: TaxBar[] = layers.map((layer, i) => {
    const factor = factors[i]!;
    return {
      layer,
      label: TAX_LABEL[layer],
      why: TAX_WHY[layer],
      seconds: best.get(layer)!,
      factor,
      y: i * rowHeight,
      width: Math.max(minBar, scale(factor)),
      text: factorText(factor),
    };
  });
  const ticks = Array.from({ length: decades + 1 }, (_, d) => {
    const factor = 10 ** d;
    return { factor, x: barX + scale(factor), label: `${factor}×` };
  });
  return {
    width,
    height: bars.length * rowHeight + (bars.length ? 18 : 0),
    barX,
    barMax,
    rowHeight,
    bars,
    ticks,
    baseline: hostSec === undefined ? 'fastest' : 'host',
  };
}
