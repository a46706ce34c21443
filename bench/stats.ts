// Shared by every benchmark: one row per measurement, ours against the bare tool.
export interface BenchRow {
  name: string;
  ours: number;
  bare: number;
  unit: string;
  /** ours / bare, in the direction where lower is better for time (for throughput, bare / ours). */
  ratio: number;
  note?: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
