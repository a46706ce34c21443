// Flash benchmark: writing a 256 MiB image to a file with Stacklab's flash() (etcher-sdk)
// against the bare tools on the same bytes in the same run:
//  - unverified: flash(verify off) vs `dd bs=4M conv=fsync`;
//  - verified:   flash(verify on, xxhash read-back) vs `dd bs=4M conv=fsync` + `cmp`;
//  - xz source:  flash(.xz, decompressed on the fly) vs `xz -dc` piped into `dd conv=fsync`.
// Median of 3 runs each, alternating who goes first; seconds, lower is better.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { flash } from '../electron/engine/flash/flash.ts';
import { type BenchRow, median } from './stats.ts';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const RUNS = 3;

function run(
  cmd: string,
  args: string[],
  opts: { stdinFrom?: ReturnType<typeof spawn> } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.stdinFrom ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    if (opts.stdinFrom) opts.stdinFrom.stdout!.pipe(child.stdin!);
    let err = '';
    child.stderr!.on('data', (b) => {
      err += b;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim().split('\n').pop()}`)),
    );
  });
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Half random (like a root file system's compressed blocks), half text (like its configuration): xz has work to do. */
function makeImage(file: string): void {
  const fd = openSync(file, 'w');
  const text = Buffer.from('Stacklab flash benchmark: ordinary text that compresses well.\n'.repeat(16384));
  for (let pos = 0; pos < SIZE; ) {
    const chunk = pos < SIZE / 2 ? randomBytes(4 * MiB) : text.subarray(0, Math.min(text.length, SIZE - pos));
    writeSync(fd, chunk);
    pos += chunk.length;
  }
  closeSync(fd);
}

export async function benchFlash(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-flash-'));
  try {
    const img = path.join(dir, 'card.img');
    makeImage(img);
    await run('xz', ['-T2', '-1', '-k', img]);
    const xz = `${img}.xz`;
    const out = path.join(dir, 'out.img');
    const dd = () => run('dd', [`if=${img}`, `of=${out}`, 'bs=4M', 'conv=fsync', 'status=none']);
    const cases: Array<{ name: string; ours: () => Promise<unknown>; bare: () => Promise<unknown> }> = [
      {
        name: 'flash: 256 MiB raw image to a file, unverified (flash vs dd conv=fsync)',
        ours: () => flash({ source: img, target: { file: out }, verify: false }),
        bare: dd,
      },
      {
        name: 'flash: 256 MiB raw image to a file, verified (flash vs dd + cmp)',
        ours: () => flash({ source: img, target: { file: out }, verify: true }),
        bare: async () => {
          await dd();
          await run('cmp', [img, out]);
        },
      },
      {
        name: 'flash: 256 MiB from .xz, unverified (flash vs xz -dc | dd conv=fsync)',
        ours: () => flash({ source: xz, target: { file: out }, verify: false }),
        bare: async () => {
          const dec = spawn('xz', ['-dc', xz], { stdio: ['ignore', 'pipe', 'ignore'] });
          await run('dd', [`of=${out}`, 'bs=4M', 'iflag=fullblock', 'conv=fsync', 'status=none'], {
            stdinFrom: dec,
          });
        },
      },
    ];
    const rows: BenchRow[] = [];
    for (const c of cases) {
      const o: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        rmSync(out, { force: true });
        const runOurs = async () => o.push(await seconds(c.ours));
        const runBare = async () => b.push(await seconds(c.bare));
        if (i % 2)
          await runBare()
            .then(() => rmSync(out, { force: true }))
            .then(runOurs);
        else
          await runOurs()
            .then(() => rmSync(out, { force: true }))
            .then(runBare);
      }
      const ours = median(o);
      const bare = median(b);
      rows.push({
        name: c.name,
        ours,
        bare,
        unit: 's',
        ratio: ours / bare,
        note: `${(SIZE / MiB / ours).toFixed(0)} MiB/s vs ${(SIZE / MiB / bare).toFixed(0)} MiB/s`,
      });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
