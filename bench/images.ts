// Image pipeline benchmarks: our stream decoders against the xz/zstd/gzip command-line
// tools on the same ~64 MiB file, and our downloader (hash + write + fsync + rename into
// the store) against curl writing a file, both over loopback. Median of 3, as time
// ratios ours/bare (1.0 = as fast as the tool; higher is slower).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decodeStages } from '../electron/engine/images/codecs.ts';
import { download } from '../electron/engine/images/download.ts';
import { Store } from '../electron/engine/images/store.ts';

export interface BenchRow {
  name: string;
  ours: number;
  bare: number;
  ratio: number;
  unit: string;
}

const SIZE = 64 << 20;
const RUNS = 3;

function has(tool: string): boolean {
  return !spawnSync(tool, ['--version'], { stdio: 'ignore' }).error;
}

/** ~64 MiB that compresses like a root filesystem: the host's own /usr files, else mixed data. */
function sample(dir: string): string {
  const file = path.join(dir, 'sample.img');
  if (existsSync(file) && statSync(file).size === SIZE) return file;
  const parts: Buffer[] = [];
  let n = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (n >= SIZE) return;
      const p = path.join(d, name);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 1024 && st.size < 8 << 20) {
        try {
          const b = readFileSync(p);
          parts.push(b);
          n += b.length;
        } catch {
          /* unreadable: skip */
        }
      }
    }
  };
  walk('/usr/lib');
  let i = 0;
  while (n < SIZE) {
    // Hosts without /usr (Windows): text, zeros and hash output, in disk-image proportions.
    const b = Buffer.concat([
      Buffer.from(`line ${i++} of a fairly repetitive configuration file\n`.repeat(64)),
      Buffer.alloc(4096),
      createHash('sha512').update(String(i)).digest(),
    ]);
    parts.push(b);
    n += b.length;
  }
  writeFileSync(file, Buffer.concat(parts).subarray(0, SIZE));
  return file;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

function runTool(cmd: string, args: string[], stdout: 'ignore' | number = 'ignore'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', stdout, 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function ourDecode(codec: 'xz' | 'zst' | 'gz', file: string): Promise<void> {
  const { stages, explain } = decodeStages(codec, path.basename(file));
  const sink = new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });
  await pipeline([
    createReadStream(file, { highWaterMark: 1 << 20 }),
    ...stages,
    sink,
  ] as unknown as NodeJS.ReadWriteStream[]).catch((err) => {
    throw explain(err);
  });
}

async function pair(name: string, ours: () => Promise<void>, bare: () => Promise<void>): Promise<BenchRow> {
  const o: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    b.push(await time(bare));
    o.push(await time(ours));
  }
  const row = { name, ours: median(o), bare: median(b), ratio: median(o) / median(b), unit: 's' };
  return { ...row, ratio: Math.round(row.ratio * 100) / 100 };
}

export async function benchImages(): Promise<BenchRow[]> {
  const dir = path.join(os.tmpdir(), 'stacklab-bench-images');
  await fs.mkdir(dir, { recursive: true });
  const src = sample(dir);
  const rows: BenchRow[] = [];

  const codecs = [
    { codec: 'xz' as const, tool: 'xz', make: ['-T1', '-3', '-k', '-c'], ext: 'xz' },
    { codec: 'zst' as const, tool: 'zstd', make: ['-q', '-3', '-c'], ext: 'zst' },
    { codec: 'gz' as const, tool: 'gzip', make: ['-c'], ext: 'gz' },
  ];
  for (const c of codecs) {
    if (!has(c.tool)) {
      console.log(`bench: ${c.tool} decompression skipped: no ${c.tool} on this machine`);
      continue;
    }
    const packed = `${src}.${c.ext}`;
    if (!existsSync(packed))
      writeFileSync(packed, execFileSync(c.tool, [...c.make, src], { maxBuffer: SIZE * 2 }));
    rows.push(
      await pair(
        `decompress .${c.ext} 64 MiB (vs ${c.tool} -dc)`,
        () => ourDecode(c.codec, packed),
        () => runTool(c.tool, ['-dc', packed]),
      ),
    );
  }

  if (has('curl')) {
    const body = readFileSync(src);
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': body.length, etag: '"bench"' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sample.img`;
    const out = path.join(dir, 'curl.out');
    try {
      rows.push(
        await pair(
          'download 64 MiB over loopback (vs curl -o)',
          async () => {
            const store = new Store(await fs.mkdtemp(path.join(dir, 'store-')));
            await download({ url, store });
            await fs.rm(store.root, { recursive: true, force: true });
          },
          () => runTool('curl', ['-sS', '-o', out, url]),
        ),
      );
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await fs.rm(out, { force: true });
    }
  } else console.log('bench: download skipped: no curl on this machine');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchImages().then(
    (rows) => console.table(rows),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
