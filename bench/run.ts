// `npm run bench`: every benchmark, each reported as a ratio against the bare tool measured
// in the same run (never as a timed assertion). Results also go to test-results/bench.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import type { BenchRow } from './stats.ts';

type Bench = { name: string; run: () => Promise<BenchRow[]> };

const only = process.argv.slice(2);
const benches: Bench[] = [
  { name: 'boot', run: async () => (await import('./boot.ts')).benchBoot() },
  { name: 'images', run: async () => (await import('./images.ts')).benchImages() },
  { name: 'usermode', run: async () => (await import('./usermode.ts')).benchUsermode() },
  { name: 'stack', run: async () => (await import('./stack.ts')).benchStack() },
  { name: 'layers', run: async () => (await import('./layers.ts')).benchLayers() },
  { name: 'disks', run: async () => (await import('./disks.ts')).benchDisks() },
  { name: 'flash', run: async () => (await import('./flash.ts')).benchFlash() },
  { name: 'lab', run: async () => (await import('./lab.ts')).benchLab() },
];

const rows: BenchRow[] = [];
for (const b of benches) {
  if (only.length && !only.includes(b.name)) continue;
  process.stderr.write(`[bench] ${b.name}…\n`);
  try {
    const r = await b.run();
    rows.push(...r);
    for (const row of r) print(row);
  } catch (e) {
    process.stderr.write(`[bench] ${b.name} failed: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

function print(r: BenchRow): void {
  const f = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));
  console.log(
    `${r.name.padEnd(52)} ours ${f(r.ours).padStart(8)} ${r.unit.padEnd(5)} bare ${f(r.bare).padStart(8)} ${r.unit.padEnd(5)} ratio ${r.ratio.toFixed(2)}${r.note ? `  ${r.note}` : ''}`,
  );
}

mkdirSync('test-results', { recursive: true });
writeFileSync('test-results/bench.json', `${JSON.stringify(rows, null, 2)}\n`);
