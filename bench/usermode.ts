// User-mode emulation benchmarks against the bare host. The CPU figure: busybox sha256sum
// over 32 MiB of zeros piped from dd (each side's busybox sh running its own applets) — the demo arm64 guest's busybox under QEMU user mode
// vs the host's own busybox-static — through proot (the default) and through plain
// qemu-user -L. Plus the cost of starting one program, and of unpacking the demo rootfs
// (ours vs the system tar; libext2fs in WASM vs debugfs). Median of 3; ratio = ours/bare.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Library } from '../electron/engine/library.ts';
import { extractExt4 } from '../electron/engine/usermode/extract-ext4.ts';
import { extractTar } from '../electron/engine/usermode/extract-tar.ts';
import { which } from '../electron/engine/usermode/find.ts';
import { findRootfsFile, prepareRootfs, removeTree } from '../electron/engine/usermode/rootfs.ts';
import { runSpawn, type UsermodeSpawn, usermodeCommand } from '../electron/engine/usermode/run.ts';

export interface BenchRow {
  name: string;
  ours: number;
  bare: number;
  ratio: number;
  unit: string;
}

const RUNS = 3;
const MIB = 32;
const PIPELINE = `dd if=/dev/zero bs=1048576 count=${MIB} 2>/dev/null | sha256sum`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b;
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${path.basename(file)} failed (${code}): ${err.trim().split('\n').pop()}`)),
    );
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function compare(
  name: string,
  unit: 's' | 'ms',
  ours: () => Promise<unknown>,
  bare: () => Promise<unknown>,
): Promise<BenchRow> {
  const o: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    o.push(await timed(ours));
    b.push(await timed(bare));
  }
  const k = unit === 'ms' ? 1000 : 1;
  const row = { name, ours: median(o) * k, bare: median(b) * k, ratio: median(o) / median(b), unit };
  console.log(
    `${name}: ours ${row.ours.toFixed(3)} ${unit}, bare ${row.bare.toFixed(3)} ${unit}, ratio ${row.ratio.toFixed(2)}`,
  );
  return row;
}

export async function benchUsermode(): Promise<BenchRow[]> {
  if (process.platform !== 'linux') throw new Error('user-mode emulation needs a Linux host');
  const entry = await new Library().find('demo-qemuarm64');
  const rootfsFile = entry ? findRootfsFile(entry.deployDir) : undefined;
  if (!entry || !rootfsFile) throw new Error('demo guests not built: run npm run guests');
  const busybox = which('busybox');
  if (!busybox) throw new Error('the host has no busybox to compare with (apt-get install busybox-static)');

  const rootfs = (await prepareRootfs(rootfsFile)).dir;
  const proot = await usermodeCommand(rootfs, ['sh', '-c', PIPELINE], { arch: 'aarch64' });
  const qemuL = await usermodeCommand(rootfs, ['sh', '-c', PIPELINE], { arch: 'aarch64', engine: 'qemu' });
  const trueCmd = await usermodeCommand(rootfs, ['true'], { arch: 'aarch64' });

  // Every side must compute the same digest, or the comparison means nothing.
  const zeros = createHash('sha256')
    .update(Buffer.alloc(MIB << 20))
    .digest('hex');
  const check = (label: string) => (text: string) => {
    if (!text.startsWith(zeros))
      throw new Error(`${label} printed "${text.trim()}", not the sha256 of ${MIB} MiB of zeros`);
  };
  const guest = (spec: UsermodeSpawn, label: string) => async () => {
    const r = await runSpawn(spec);
    if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr.trim()}`);
    check(label)(r.stdout);
  };
  const hostPipeline = `${busybox} dd if=/dev/zero bs=1048576 count=${MIB} 2>/dev/null | ${busybox} sha256sum`;
  const host = async () => check('host busybox')(await run(busybox, ['sh', '-c', hostPipeline]));

  const rows: BenchRow[] = [];
  rows.push(
    await compare(
      `busybox sha256sum ${MIB} MiB: arm64 guest via proot + qemu-aarch64 vs host`,
      's',
      guest(proot, 'proot'),
      host,
    ),
  );
  rows.push(
    await compare(
      `busybox sha256sum ${MIB} MiB: arm64 guest via qemu-aarch64 -L vs host`,
      's',
      guest(qemuL, 'qemu -L'),
      host,
    ),
  );
  rows.push(
    await compare(
      'start one program (true): proot + qemu-aarch64 vs host busybox',
      'ms',
      async () => {
        const r = await runSpawn(trueCmd);
        if (r.status !== 0) throw new Error(`true failed: ${r.stderr.trim()}`);
      },
      () => run(busybox, ['true']),
    ),
  );

  // Unpacking: first-run cost of a tarball and of an ext4 image, each against a native tool.
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-um-'));
  try {
    let n = 0;
    const fresh = () => mkdtempSync(path.join(scratch, `${n++}-`));
    const tarball = findRootfsFile(entry.deployDir);
    if (tarball && /\.tar/.test(tarball)) {
      rows.push(
        await compare(
          `unpack ${path.basename(tarball)}: ours (bzip2 -dc + node-tar parser) vs tar -x`,
          's',
          () => extractTar(tarball, fresh()),
          () => run('tar', ['-xf', tarball, '-C', fresh()]),
        ),
      );
    }
    const ext4 = path.join(entry.deployDir, path.basename(rootfsFile).replace(/\.tar(\.\w+)?$/, '.ext4'));
    const debugfs = which('debugfs');
    if (debugfs && ext4 !== rootfsFile && existsSync(ext4)) {
      rows.push(
        await compare(
          `unpack ${path.basename(ext4)}: libext2fs (WASM) vs debugfs rdump`,
          's',
          () => extractExt4(ext4, fresh(), { reader: 'ext2fs' }),
          () => extractExt4(ext4, fresh(), { reader: 'debugfs' }),
        ),
      );
    }
  } finally {
    await removeTree(scratch);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchUsermode().then(
    (rows) => console.table(rows),
    (e: unknown) => {
      console.error((e as Error).message);
      process.exit(1);
    },
  );
}
