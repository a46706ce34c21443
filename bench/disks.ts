// VM disk benchmark: making a VM's qcow2 overlay must cost the same whatever the size of
// the base, because it only records the base's name. ensureOverlay (ours) against a bare
// `qemu-img create` of the same overlay, on a sparse raw base of 64 MiB and of 4 GiB
// (made with truncate, so no real bytes are written). Median of 5, in milliseconds.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findQemu } from '../electron/engine/qemu/discovery.ts';
import { ensureOverlay } from '../electron/engine/vm/overlay.ts';
import { type BenchRow, median } from './stats.ts';

const RUNS = 5;

async function timeMs(fn: () => unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export async function benchDisks(): Promise<BenchRow[]> {
  // The qemu-img the engine itself would use (bundled, configured or on PATH).
  const qemuImg = (await findQemu({}).catch(() => undefined))?.img ?? 'qemu-img';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-disks-'));
  try {
    const sizes = [
      { label: '64 MiB', bytes: 64 * 2 ** 20 },
      { label: '4 GiB', bytes: 4 * 2 ** 30 },
    ];
    const ours: Record<string, number> = {};
    const rows: BenchRow[] = [];
    for (const s of sizes) {
      const base = path.join(dir, `base-${s.bytes}.raw`);
      writeFileSync(base, '');
      truncateSync(base, s.bytes);
      const o: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const ov = path.join(dir, `ours-${s.bytes}-${i}.qcow2`);
        const bare = path.join(dir, `bare-${s.bytes}-${i}.qcow2`);
        const runOurs = async () =>
          o.push(await timeMs(() => ensureOverlay({ qemuImg, base, baseFormat: 'raw', path: ov })));
        const runBare = async () =>
          b.push(
            await timeMs(() =>
              execFileSync(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, bare], {
                stdio: 'ignore',
              }),
            ),
          );
        // Alternate who goes first so neither always meets a warm (or a busy) machine.
        if (i % 2) await runBare().then(runOurs);
        else await runOurs().then(runBare);
        rmSync(ov);
        rmSync(bare);
      }
      ours[s.label] = median(o);
      rows.push({
        name: `disks: overlay on a ${s.label} base (ensureOverlay vs qemu-img create)`,
        ours: median(o),
        bare: median(b),
        unit: 'ms',
        ratio: median(o) / median(b),
      });
    }
    rows.push({
      name: 'disks: overlay on 4 GiB vs on 64 MiB (ours)',
      ours: ours['4 GiB']!,
      bare: ours['64 MiB']!,
      unit: 'ms',
      ratio: ours['4 GiB']! / ours['64 MiB']!,
      note: '~1 means overlay creation does not grow with the base',
    });
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
