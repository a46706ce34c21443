// Downloads over real HTTP on 127.0.0.1 into a real store on disk. The compressed fixtures
// are made here with the system xz, bzip2, zstd, gzip and zip tools.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, loadCatalogue } from '../../electron/engine/images/catalogue.ts';
import {
  type DownloadProgress,
  DownloadQueue,
  download,
  partPaths,
} from '../../electron/engine/images/download.ts';
import { installEntry } from '../../electron/engine/images/install.ts';
import { Store } from '../../electron/engine/images/store.ts';

const TOOLS = ['xz', 'bzip2', 'zstd', 'gzip', 'zip'];
const missing = TOOLS.filter((t) => spawnSync(t, ['--help'], { stdio: 'ignore' }).error);
if (missing.length)
  console.log(`download tests skipped: missing ${missing.join(', ')} (apt-get install ${missing.join(' ')})`);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Route {
  body: Buffer;
  etag?: string;
  /** Close the socket after this many bytes of the first full response. */
  cutAfter?: number;
  /** Bytes per 20 ms tick, to make a download slow enough to watch or cancel. */
  throttle?: number;
}

interface Hit {
  path: string;
  range?: string;
  ifRange?: string;
}

let server: http.Server;
let base: string;
let work: string;
const routes = new Map<string, Route>();
const hits: Hit[] = [];
let concurrent = 0;
let maxConcurrent = 0;

function serve(p: string, r: Route): string {
  routes.set(p, r);
  return `${base}${p}`;
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const r = routes.get(req.url ?? '');
  hits.push({
    path: req.url ?? '',
    range: req.headers.range,
    ifRange: req.headers['if-range'] as string | undefined,
  });
  if (!r) {
    res.writeHead(404).end();
    return;
  }
  concurrent++;
  maxConcurrent = Math.max(maxConcurrent, concurrent);
  res.on('close', () => concurrent--);
  const etag = r.etag ?? `"${sha(r.body).slice(0, 16)}"`;
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m && (!req.headers['if-range'] || req.headers['if-range'] === etag)) start = Number(m[1]);
  const slice = r.body.subarray(start);
  const headers: http.OutgoingHttpHeaders = {
    etag,
    'content-length': slice.length,
    'accept-ranges': 'bytes',
  };
  if (start > 0) {
    headers['content-range'] = `bytes ${start}-${r.body.length - 1}/${r.body.length}`;
    res.writeHead(206, headers);
  } else res.writeHead(200, headers);
  if (r.cutAfter !== undefined && start === 0) {
    const cut = r.cutAfter;
    r.cutAfter = undefined; // only the first response is cut
    // Let the client take every byte sent, then drop the connection mid-body.
    res.write(slice.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 100));
    return;
  }
  if (r.throttle) {
    let off = 0;
    const tick = setInterval(() => {
      if (res.destroyed) return clearInterval(tick);
      const chunk = slice.subarray(off, off + r.throttle!);
      off += chunk.length;
      if (off >= slice.length) {
        clearInterval(tick);
        res.end(chunk);
      } else res.write(chunk);
    }, 20);
    res.on('close', () => clearInterval(tick));
    return;
  }
  res.end(slice);
}

/** ~3 MiB that compresses like a disk image: text, zero runs and incompressible bytes. */
function payload(): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 48; i++) {
    parts.push(Buffer.from(`block ${i} `.repeat(2000)));
    parts.push(Buffer.alloc(16384));
    parts.push(randomBytes(16384));
  }
  return Buffer.concat(parts);
}

let raw: Buffer;
const packed: Record<string, Buffer> = {};

function freshStore(): Store {
  return new Store(fs.mkdtempSync(path.join(work, 'store-')));
}

function storeFiles(store: Store): { blobs: string[]; temps: string[]; partial: string[] } {
  const blobs = fs.existsSync(store.blobDir) ? fs.readdirSync(store.blobDir) : [];
  return {
    blobs: blobs.filter((n) => /^[0-9a-f]{64}$/.test(n)),
    temps: blobs.filter((n) => n.startsWith('.tmp')),
    partial: fs.existsSync(store.partialDir) ? fs.readdirSync(store.partialDir) : [],
  };
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'stacklab-dl-'));
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  raw = payload();
  const src = path.join(work, 'disk.img');
  fs.writeFileSync(src, raw);
  if (missing.length) return;
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { maxBuffer: 64 << 20 });
  packed.xz = run('xz', ['-c', '-T1', src]);
  packed.bz2 = run('bzip2', ['-c', src]);
  packed.zst = run('zstd', ['-q', '-c', src]);
  packed.gz = run('gzip', ['-c', src]);
  execFileSync('zip', ['-q', '-j', path.join(work, 'disk.zip'), src]);
  packed.zip = fs.readFileSync(path.join(work, 'disk.zip'));
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  fs.rmSync(work, { recursive: true, force: true });
});

describe.skipIf(missing.length > 0)('download', () => {
  for (const codec of ['gz', 'bz2', 'zst', 'xz', 'zip'] as const) {
    it(`decompresses .${codec} on the fly and verifies the published digest`, async () => {
      const store = freshStore();
      const name = codec === 'zip' ? 'disk.zip' : `disk.img.${codec}`;
      const url = serve(`/codec/${name}`, { body: packed[codec]! });
      const r = await download({ url, store, sha256: sha(packed[codec]!) });
      expect(r.codec).toBe(codec);
      expect(r.files).toHaveLength(1);
      expect(r.files[0]!.name).toBe('disk.img');
      expect(r.files[0]!.sha256).toBe(sha(raw));
      expect(sha(fs.readFileSync(r.files[0]!.path))).toBe(sha(raw));
      expect(r.sourceSha256).toBe(sha(packed[codec]!));
      expect(storeFiles(store)).toEqual({ blobs: [sha(raw)], temps: [], partial: [] });
    });
  }

  it('stores base files read-only and keeps one copy of the same bytes', async () => {
    const store = freshStore();
    const a = await download({ url: serve('/same/a/disk.img', { body: raw }), store, sha256: sha(raw) });
    const b = await download({ url: serve('/same/b/disk.img.gz', { body: packed.gz! }), store });
    expect(a.files[0]!.path).toBe(b.files[0]!.path);
    expect(storeFiles(store).blobs).toEqual([sha(raw)]);
    expect(fs.statSync(a.files[0]!.path).mode & 0o777).toBe(0o444);
  });

  it('resumes a download cut off half way with Range/If-Range and verifies it', async () => {
    const store = freshStore();
    const cut = 1_000_000;
    const url = serve('/cut/disk.img', { body: raw, cutAfter: cut });
    await expect(download({ url, store, sha256: sha(raw), retries: 0 })).rejects.toThrow(
      /disk\.img: the connection dropped after \d+ bytes.*gave up after 1 tries; the partial file is kept to resume/,
    );
    const { part, meta } = partPaths(store, url, 'disk.img');
    // Bytes still in the socket buffer when it dropped are lost: the part holds what was read.
    const kept = fs.statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(cut);
    expect(JSON.parse(fs.readFileSync(meta, 'utf8')).etag).toMatch(/^"/);
    const before = hits.length;
    const r = await download({ url, store, sha256: sha(raw) });
    expect(hits.slice(before)).toEqual([
      { path: '/cut/disk.img', range: `bytes=${kept}-`, ifRange: expect.stringMatching(/^"/) },
    ]);
    expect(r.resumedFrom).toBe(kept);
    expect(r.files[0]!.sha256).toBe(sha(raw));
    expect(storeFiles(store)).toEqual({ blobs: [sha(raw)], temps: [], partial: [] });
  });

  it('retries by itself after a dropped connection, re-decoding the part of a compressed file', async () => {
    const store = freshStore();
    const cut = Math.floor(packed.xz!.length / 2);
    const url = serve('/cut/disk.img.xz', { body: packed.xz!, cutAfter: cut });
    const before = hits.length;
    const r = await download({ url, store, sha256: sha(packed.xz!) });
    const mine = hits.slice(before);
    expect(mine).toHaveLength(2);
    expect(mine[0]!.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(mine[1]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(cut);
    expect(r.files[0]!.sha256).toBe(sha(raw));
    expect(storeFiles(store)).toEqual({ blobs: [sha(raw)], temps: [], partial: [] });
  });

  it('restarts from zero when the file changed on the server (If-Range mismatch)', async () => {
    const store = freshStore();
    const url = serve('/changed/disk.img', { body: raw, cutAfter: 500_000, etag: '"v1"' });
    await expect(download({ url, store, retries: 0 })).rejects.toThrow(/connection dropped/);
    routes.set('/changed/disk.img', { body: packed.gz!, etag: '"v2"' }); // same URL, new bytes
    const r = await download({ url, store, decompress: false });
    expect(r.resumedFrom).toBe(0);
    expect(r.files[0]!.sha256).toBe(sha(packed.gz!));
  });

  it('fails the checksum on wrong bytes and leaves nothing behind', async () => {
    const store = freshStore();
    const wrong = Buffer.from(raw);
    wrong[12345] = wrong[12345]! ^ 0xff;
    const url = serve('/wrong/disk.img.gz', { body: execFileSync('gzip', ['-c'], { input: wrong }) });
    await expect(download({ url, store, sha256: sha(packed.gz!) })).rejects.toThrow(
      /^disk\.img\.gz failed its checksum: sha256 [0-9a-f]{12}… where [0-9a-f]{12}… was published \(the download was discarded\)$/,
    );
    expect(storeFiles(store)).toEqual({ blobs: [], temps: [], partial: [] });
  });

  it('says a truncated .xz is truncated, in one line, and stores nothing', async () => {
    const store = freshStore();
    const url = serve('/trunc/download.xz', {
      body: packed.xz!.subarray(0, Math.floor(packed.xz!.length * 0.6)),
    });
    const err = await download({ url, store }).catch((e: Error) => e);
    expect((err as Error).message).toBe('download.xz is truncated: the xz stream ended early');
    expect(storeFiles(store)).toEqual({ blobs: [], temps: [], partial: [] });
  });

  it('says a truncated .zst and .bz2 are truncated too', async () => {
    for (const codec of ['zst', 'bz2', 'gz'] as const) {
      const store = freshStore();
      const url = serve(`/trunc/download.${codec}`, {
        body: packed[codec]!.subarray(0, packed[codec]!.length >> 1),
      });
      const err = await download({ url, store }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(
        new RegExp(`^download\\.${codec} is truncated: the \\w+ stream ended early$`),
      );
      expect(storeFiles(store)).toEqual({ blobs: [], temps: [], partial: [] });
    }
  });

  it('refuses a zip whose entry would escape the target directory', async () => {
    const store = freshStore();
    // zip(1) strips "../", so store a same-length name and patch it in both headers.
    const dir = fs.mkdtempSync(path.join(work, 'evil-'));
    fs.writeFileSync(path.join(dir, 'abcevil'), 'pwned');
    fs.writeFileSync(path.join(dir, 'ok.img'), 'fine');
    execFileSync('zip', ['-q', 'evil.zip', 'ok.img', 'abcevil'], { cwd: dir });
    const zipped = fs.readFileSync(path.join(dir, 'evil.zip'));
    const evil = Buffer.from(zipped.toString('latin1').replaceAll('abcevil', '../evil'), 'latin1');
    const url = serve('/evil/evil.zip', { body: evil });
    await expect(download({ url, store })).rejects.toThrow(
      /^evil\.zip: refusing zip entry "\.\.\/evil": it would escape the target directory$/,
    );
    expect(storeFiles(store).blobs).toEqual([]);
    expect(storeFiles(store).temps).toEqual([]);
  });

  it('refuses a .xz that is not xz data', async () => {
    const store = freshStore();
    const url = serve('/notxz/image.wic.xz', { body: raw });
    await expect(download({ url, store })).rejects.toThrow(
      /^image\.wic\.xz is not xz data \(it starts with [0-9a-f]+\)$/,
    );
    expect(storeFiles(store)).toEqual({ blobs: [], temps: [], partial: [] });
  });

  it('cancel keeps a resumable part; progress comes at most ~10 times a second', async () => {
    const store = freshStore();
    const url = serve('/slow/disk.img', { body: raw, throttle: 64 * 1024 });
    const ac = new AbortController();
    const events: DownloadProgress[] = [];
    const t0 = performance.now();
    const p = download({
      url,
      store,
      signal: ac.signal,
      onProgress: (e) => {
        events.push(e);
        if (e.bytes > 1_500_000) ac.abort();
      },
    });
    await expect(p).rejects.toThrow(
      /^download of disk\.img cancelled \(the partial file is kept to resume\)$/,
    );
    const secs = (performance.now() - t0) / 1000;
    expect(events.length).toBeLessThanOrEqual(Math.ceil(secs * 10) + 2);
    const last = events.at(-1)!;
    expect(last.total).toBe(raw.length);
    expect(last.ratePerSec).toBeGreaterThan(0);
    expect(last.etaSec).toBeGreaterThan(0);
    const { part } = partPaths(store, url, 'disk.img');
    const kept = fs.statSync(part).size;
    expect(kept).toBeGreaterThan(1_000_000);
    expect(storeFiles(store).blobs).toEqual([]);
    routes.set('/slow/disk.img', { body: raw }); // full speed for the resume
    const r = await download({ url, store, sha256: sha(raw) });
    expect(r.resumedFrom).toBe(kept);
    expect(r.files[0]!.sha256).toBe(sha(raw));
  });

  it('runs at most two downloads at once from the queue', async () => {
    const store = freshStore();
    const q = new DownloadQueue(2);
    maxConcurrent = 0;
    const urls = [1, 2, 3, 4].map((i) => serve(`/queue/${i}/disk.img`, { body: raw, throttle: 256 * 1024 }));
    const all = Promise.all(urls.map((url) => q.add({ url, store })));
    await new Promise((r) => setTimeout(r, 50));
    expect(q.running).toBe(2);
    expect(q.queued).toBe(2);
    const results = await all;
    expect(maxConcurrent).toBe(2);
    expect(new Set(results.map((r) => r.files[0]!.path)).size).toBe(1);
  });

  it('joins a second request for the same URL instead of writing the same part twice', async () => {
    const store = freshStore();
    const url = serve('/join/disk.img', { body: raw, throttle: 512 * 1024 });
    const before = hits.length;
    const [a, b] = await Promise.all([download({ url, store }), download({ url, store })]);
    expect(hits.slice(before)).toHaveLength(1);
    expect(a).toBe(b);
  });

  it('says what a 404 is, in one line', async () => {
    const store = freshStore();
    await expect(download({ url: `${base}/nope/disk.img`, store })).rejects.toThrow(
      /^http:\/\/127\.0\.0\.1:\d+\/nope\/disk\.img answered HTTP 404 \(not found\)$/,
    );
  });
});

describe.skipIf(missing.length > 0)('installing a catalogue entry', () => {
  it('fetches a user catalogue, checks each file against its .sha256sum and builds the deploy dir', async () => {
    const store = freshStore();
    const kernel = Buffer.alloc(128 * 1024);
    kernel.writeUInt32LE(0x644d5241, 0x38);
    const conf = Buffer.from(
      '[config_bsp]\nimage_link_name = demo-qemuarm64.rootfs\nqb_default_fstype = ext4.zst\nqb_default_kernel = Image\nqb_system_name = qemu-system-aarch64\n',
    );
    const published: Record<string, Buffer> = {
      'Image-qemuarm64.bin': kernel,
      'demo-qemuarm64.rootfs.ext4.zst': packed.zst!,
      'demo-qemuarm64.rootfs.qemuboot.conf': conf,
    };
    for (const [n, body] of Object.entries(published)) {
      serve(`/rel/${n}`, { body });
      // The autobuilder's format: "<hex> <name>".
      serve(`/rel/${n}.sha256sum`, { body: Buffer.from(`${sha(body)} ${n}\n`) });
    }
    const catalogue = {
      version: 1,
      name: 'Loopback release',
      images: [
        {
          id: 'demo-5.3',
          name: 'Demo',
          machine: 'qemuarm64',
          arch: 'aarch64',
          board: 'virt',
          baseUrl: `${base}/rel/`,
          files: Object.keys(published).map((n) => ({
            role: n.startsWith('Image') ? 'kernel' : n.endsWith('.conf') ? 'qemuboot' : 'rootfs',
            name: n,
            sha256Url: `${base}/rel/${n}.sha256sum`,
          })),
        },
      ],
    };
    const catUrl = serve('/catalogue.json', { body: Buffer.from(JSON.stringify(catalogue)) });
    const cat = await loadCatalogue(catUrl);
    const [entry] = entriesOf(cat, 'user', cat.name);
    const progressFiles = new Set<string>();
    const rec = await installEntry(entry!, { store, onProgress: (f) => progressFiles.add(f) });
    expect(progressFiles.size).toBeGreaterThan(0);
    expect(rec.files.map((f) => f.name).sort()).toEqual([
      'Image',
      'Image-qemuarm64.bin',
      'demo-qemuarm64.rootfs.ext4',
      'demo-qemuarm64.rootfs.qemuboot.conf',
    ]);
    expect(rec.sha256).toBe(sha(raw));
    const dir = rec.deployDir!;
    expect(sha(fs.readFileSync(path.join(dir, 'demo-qemuarm64.rootfs.ext4')))).toBe(sha(raw));
    expect(fs.readFileSync(path.join(dir, 'Image'))).toEqual(kernel);
    // The deploy dir holds the decompressed rootfs, and its conf says so.
    expect(fs.readFileSync(path.join(dir, 'demo-qemuarm64.rootfs.qemuboot.conf'), 'utf8')).toContain(
      'qb_default_fstype = ext4\n',
    );
    expect((await store.listImages()).map((r) => r.id)).toEqual(['demo-5.3']);
  });

  it('says in one line when a checksum file is missing', async () => {
    const store = freshStore();
    const cat = {
      version: 1,
      name: 'Broken',
      images: [
        {
          id: 'broken',
          name: 'Broken',
          machine: 'qemuarm64',
          arch: 'aarch64',
          board: 'virt',
          baseUrl: `${base}/missing/`,
          files: [{ role: 'rootfs', name: 'x.ext4', sha256Url: `${base}/missing/x.ext4.sha256sum` }],
        },
      ],
    };
    const catUrl = serve('/broken.json', { body: Buffer.from(JSON.stringify(cat)) });
    const loaded = await loadCatalogue(catUrl);
    await expect(installEntry(entriesOf(loaded, 'user', 'b')[0]!, { store })).rejects.toThrow(
      /^cannot get the checksum of x\.ext4: http:\/\/127\.0\.0\.1:\d+\/missing\/x\.ext4\.sha256sum answered HTTP 404$/,
    );
  });
});
