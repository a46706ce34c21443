// Downloads into the content-addressed store. The published bytes go to a .part file
// (with a .part.json sidecar holding the URL and the server's validators), are hashed as
// they arrive, and are decompressed on the fly into a temp file beside the blobs. An
// interrupted download resumes with Range + If-Range: the part is hashed (and decoded)
// again first, then only the missing bytes are fetched. Nothing reaches the store unless
// the published digest matches; a cancelled download keeps its part for next time.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Codec, chooseCodec, decodeStages, stripCodecSuffix } from './codecs.ts';
import { abortError, HttpError, httpGet } from './http.ts';
import { HashingFileSink } from './sink.ts';
import type { Store, StoredBlob } from './store.ts';
import { extractZip } from './zip.ts';

export interface DownloadProgress {
  url: string;
  name: string;
  /** resuming: re-reading the part already on disk; downloading: bytes from the network. */
  phase: 'resuming' | 'downloading' | 'extracting';
  bytes: number;
  total?: number;
  ratePerSec: number;
  etaSec?: number;
}

export interface DownloadRequest {
  url: string;
  /** File name used for messages and codec choice; defaults to the URL's last segment. */
  name?: string;
  /** Expected digest of the published (compressed) bytes. */
  sha256?: string;
  md5?: string;
  store: Store;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** false stores the bytes as published. */
  decompress?: boolean;
  /** Automatic resumes after a dropped connection or a 5xx (default 3). */
  retries?: number;
  idleTimeoutMs?: number;
}

export interface DownloadedFile extends StoredBlob {
  /** Stored name: the published name without its compression suffix, or the zip entry. */
  name: string;
}

export interface DownloadResult {
  url: string;
  name: string;
  sourceSha256: string;
  sourceBytes: number;
  codec: Codec | null;
  /** Bytes that were already on disk from an earlier attempt. */
  resumedFrom: number;
  files: DownloadedFile[];
}

interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
  sha256?: string;
}

class RestartFromZero extends Error {}
class Retryable extends Error {}

const PROGRESS_MS = 100; // at most ~10 events a second

export function partPaths(store: Store, url: string, name: string): { part: string; meta: string } {
  const key = createHash('sha256').update(url).digest('hex').slice(0, 16);
  const safe = name.replace(/[^A-Za-z0-9._+-]+/g, '_').slice(0, 120);
  const part = path.join(store.partialDir, `${key}-${safe}.part`);
  return { part, meta: `${part}.json` };
}

// Two requests for the same URL into the same store share one transfer (one .part file).
const inflight = new Map<string, Promise<DownloadResult>>();

/**
 * Downloads one URL into the store. A second call for the same URL and store while the
 * first runs joins it (its own signal and progress callback are then not used).
 */
export function download(req: DownloadRequest): Promise<DownloadResult> {
  let name: string;
  try {
    name = req.name ?? (decodeURIComponent(new URL(req.url).pathname.split('/').pop() ?? '') || 'download');
  } catch {
    return Promise.reject(new Error(`not a URL: ${req.url.slice(0, 200)}`));
  }
  const key = partPaths(req.store, req.url, name).part;
  const running = inflight.get(key);
  if (running) return running;
  const p = downloadWithRetries(req, name).finally(() => inflight.delete(key));
  inflight.set(key, p);
  return p;
}

async function downloadWithRetries(req: DownloadRequest, name: string): Promise<DownloadResult> {
  await req.store.init();
  const retries = req.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptDownload(req, name);
    } catch (err) {
      if (req.signal?.aborted)
        throw new Error(`download of ${name} cancelled (the partial file is kept to resume)`);
      if (err instanceof RestartFromZero) {
        await discardPart(req.store, req.url, name);
        continue;
      }
      if (err instanceof Retryable && attempt < retries) {
        await sleep(Math.min(8000, 500 * 2 ** attempt), req.signal).catch(() => {
          throw new Error(`download of ${name} cancelled (the partial file is kept to resume)`);
        });
        continue;
      }
      throw err instanceof Retryable
        ? new Error(
            `${name}: ${err.message} (gave up after ${attempt + 1} tries; the partial file is kept to resume)`,
          )
        : err;
    }
  }
}

async function attemptDownload(req: DownloadRequest, name: string): Promise<DownloadResult> {
  const { store, url, signal } = req;
  const { part, meta: metaPath } = partPaths(store, url, name);
  let meta = await readMeta(metaPath);
  let partSize = (await fs.stat(part).catch(() => null))?.size ?? 0;
  const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
  const wantSha = req.sha256?.toLowerCase();
  if (
    partSize > 0 &&
    (!meta || meta.url !== url || !validator || (wantSha && meta.sha256 && meta.sha256 !== wantSha))
  ) {
    await discardPart(store, url, name);
    partSize = 0;
    meta = null;
  }
  const resumedFrom = partSize;
  const srcHash = createHash('sha256');
  const md5 = req.md5 ? createHash('md5') : null;
  const progress = progressReporter(req, name);
  let sourceBytes = 0;
  let total: number | undefined = meta?.total;

  // Errors raised by the source: the decoder sees them too when the pipeline tears down,
  // and must not be blamed for them.
  const fromSource = new WeakSet<object>();
  async function* source(): AsyncGenerator<Buffer> {
    try {
      yield* fetchSource();
    } catch (err) {
      if (err && typeof err === 'object') fromSource.add(err);
      throw err;
    }
  }

  async function* fetchSource(): AsyncGenerator<Buffer> {
    if (partSize > 0) {
      for await (const c of createReadStream(part, {
        highWaterMark: 1 << 20,
        signal,
      }) as AsyncIterable<Buffer>) {
        srcHash.update(c);
        md5?.update(c);
        sourceBytes += c.length;
        progress('resuming', sourceBytes, partSize);
        yield c;
      }
    }
    const headers: Record<string, string> = {};
    if (partSize > 0) {
      headers.range = `bytes=${partSize}-`;
      headers['if-range'] = validator!;
    }
    const { res } = await httpGet(url, { headers, signal, idleTimeoutMs: req.idleTimeoutMs }).catch(
      (err: Error) => {
        throw signal?.aborted ? abortError(signal) : new Retryable(err.message);
      },
    );
    const status = res.statusCode ?? 0;
    if (partSize > 0 && status === 416 && total === partSize) {
      res.resume();
      return; // the part was already complete
    }
    if (partSize > 0 && status === 200) {
      res.resume();
      throw new RestartFromZero('the file changed on the server');
    }
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
      if (!m || Number(m[1]) !== partSize) {
        res.resume();
        throw new RestartFromZero('the server resumed at the wrong offset');
      }
      if (m[3] !== '*') total = Number(m[3]);
    } else if (status === 200) {
      const len = Number(res.headers['content-length']);
      total = Number.isFinite(len) && res.headers['content-length'] !== undefined ? len : undefined;
    } else {
      res.resume();
      const msg = `${url} answered HTTP ${status}${status === 404 ? ' (not found)' : ''}`;
      throw status >= 500 ? new Retryable(msg) : new HttpError(msg, status);
    }
    const next: PartMeta = {
      url,
      etag: headerOf(res.headers.etag) ?? meta?.etag,
      lastModified: headerOf(res.headers['last-modified']) ?? meta?.lastModified,
      total,
      sha256: wantSha,
    };
    await writeJson(metaPath, next);
    const fh = await fs.open(part, partSize > 0 ? 'a' : 'w');
    let writing = false;
    try {
      try {
        for await (const c of res as AsyncIterable<Buffer>) {
          writing = true;
          await fh.write(c);
          writing = false;
          srcHash.update(c);
          md5?.update(c);
          sourceBytes += c.length;
          progress('downloading', sourceBytes, total);
          yield c;
        }
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        if (writing) throw new Error(`cannot write ${part}: ${(err as Error).message}`);
        throw new Retryable(`the connection dropped after ${sourceBytes} bytes (${(err as Error).message})`);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (total !== undefined && sourceBytes !== total) {
      throw new Retryable(`the connection closed after ${sourceBytes} of ${total} bytes`);
    }
    progress('downloading', sourceBytes, total, true);
  }

  const gen = source();
  let tmp: string | undefined;
  let codec: Codec | null = null;
  try {
    const { head, stream } = await peek(gen, 16);
    codec = req.decompress === false ? null : chooseCodec(name, head);
    let outSha: string | undefined;
    if (codec && codec !== 'zip') {
      tmp = store.tempPath();
      const sink = new HashingFileSink(tmp);
      const { stages, explain } = decodeStages(codec, name);
      try {
        await pipeline([stream, ...stages, sink] as unknown as NodeJS.ReadWriteStream[], { signal });
      } catch (err) {
        throw err && typeof err === 'object' && fromSource.has(err) ? err : explain(err);
      }
      outSha = sink.digest();
    } else {
      await pipeline(stream, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
    }

    const gotSha = srcHash.digest('hex');
    const gotMd5 = md5?.digest('hex');
    const bad =
      (wantSha && gotSha !== wantSha && `sha256 ${short(gotSha)} where ${short(wantSha)} was published`) ||
      (req.md5 &&
        gotMd5 !== req.md5.toLowerCase() &&
        `md5 ${short(gotMd5!)} where ${short(req.md5)} was published`);
    if (bad) {
      await discardPart(store, url, name);
      throw new Error(`${name} failed its checksum: ${bad} (the download was discarded)`);
    }

    let files: DownloadedFile[];
    if (codec === 'zip') {
      progress('extracting', sourceBytes, sourceBytes, true);
      files = await extractZip(part, name, store);
      await discardPart(store, url, name);
    } else if (codec) {
      const blob = await store.commit(tmp!, outSha!);
      tmp = undefined;
      files = [{ name: stripCodecSuffix(name), ...blob }];
      await discardPart(store, url, name);
    } else {
      const blob = await store.commit(part, gotSha);
      await fs.rm(metaPath, { force: true });
      files = [{ name, ...blob }];
    }
    return { url, name, sourceSha256: gotSha, sourceBytes, codec, resumedFrom, files };
  } catch (err) {
    await gen.return(undefined).catch(() => undefined);
    // A decoder that found bad data condemns the part too: resuming it cannot help.
    if (
      err instanceof Error &&
      /^\S+ (is truncated|is corrupt|is not \w+ data)/.test(err.message) &&
      !signal?.aborted
    ) {
      await discardPart(store, url, name);
    }
    throw err;
  } finally {
    if (tmp) await fs.rm(tmp, { force: true });
  }
}

export async function discardPart(store: Store, url: string, name: string): Promise<void> {
  const { part, meta } = partPaths(store, url, name);
  await fs.rm(part, { force: true });
  await fs.rm(meta, { force: true });
}

/** Pulls at least n bytes off an async iterable and returns them plus the whole stream again. */
async function peek(
  it: AsyncGenerator<Buffer>,
  n: number,
): Promise<{ head: Buffer; stream: AsyncGenerator<Buffer> }> {
  const seen: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const r = await it.next();
    if (r.done) break;
    seen.push(r.value);
    len += r.value.length;
  }
  async function* replay(): AsyncGenerator<Buffer> {
    yield* seen;
    yield* { [Symbol.asyncIterator]: () => it };
  }
  return { head: Buffer.concat(seen).subarray(0, n), stream: replay() };
}

function progressReporter(req: DownloadRequest, name: string) {
  const samples: Array<[number, number]> = [];
  let last = 0;
  let lastPhase = '';
  return (phase: DownloadProgress['phase'], bytes: number, total?: number, force = false): void => {
    if (!req.onProgress) return;
    const now = performance.now();
    if (phase === 'downloading') {
      samples.push([now, bytes]);
      while (samples.length > 2 && now - samples[0]![0] > 3000) samples.shift();
    }
    if (!force && phase === lastPhase && now - last < PROGRESS_MS) return;
    last = now;
    lastPhase = phase;
    const first = samples[0];
    const dt = first ? (now - first[0]) / 1000 : 0;
    const ratePerSec = first && dt > 0 ? (bytes - first[1]) / dt : 0;
    const etaSec =
      total !== undefined && ratePerSec > 0 ? Math.max(0, (total - bytes) / ratePerSec) : undefined;
    req.onProgress({ url: req.url, name, phase, bytes, total, ratePerSec, etaSec });
  };
}

async function readMeta(file: string): Promise<PartMeta | null> {
  try {
    const m = JSON.parse(await fs.readFile(file, 'utf8')) as PartMeta;
    return typeof m?.url === 'string' ? m : null;
  } catch {
    return null;
  }
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(value));
  await fs.rename(tmp, file);
}

function headerOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function short(hex: string): string {
  return `${hex.slice(0, 12)}…`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(abortError(signal));
      },
      { once: true },
    );
  });
}

/** At most `limit` downloads at a time; the rest wait their turn (cancellable while waiting). */
export class DownloadQueue {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit = 2) {}

  get running(): number {
    return this.active;
  }
  get queued(): number {
    return this.waiting.length;
  }

  async add(req: DownloadRequest): Promise<DownloadResult> {
    await this.slot(req.signal);
    try {
      return await download(req);
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private slot(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new Error('download cancelled before it started'));
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error('download cancelled before it started'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(go);
    });
  }
}
