// Fetches one catalogue entry (kernel, rootfs, qemuboot.conf, …) through the download
// queue into the store and records it as an image with a deploy directory.
import { readFile } from 'node:fs/promises';
import type { Progress } from '../../common/contract.ts';
import type { CatalogueEntry, ResolvedFile } from './catalogue.ts';
import { parseChecksumFile } from './catalogue.ts';
import { codecFromName, stripCodecSuffix } from './codecs.ts';
import { type DownloadProgress, DownloadQueue } from './download.ts';
import { fetchText } from './http.ts';
import type { ImageFile, ImageRecord } from './record.ts';
import { mainDisk } from './record.ts';
import type { Store } from './store.ts';

export interface InstallOptions {
  store: Store;
  queue?: DownloadQueue;
  signal?: AbortSignal;
  onProgress?: (file: string, p: DownloadProgress) => void;
}

const sharedQueue = new DownloadQueue(2);

/** The published digest for one file: inline, or read from its .sha256sum / .md5sum. */
export async function expectedDigest(
  f: ResolvedFile,
  signal?: AbortSignal,
): Promise<{ sha256?: string; md5?: string }> {
  if (f.sha256) return { sha256: f.sha256.toLowerCase() };
  if (f.sha256Url) {
    const text = await fetchText(f.sha256Url, { signal, maxBytes: 64 << 10 }).catch((err: Error) => {
      throw new Error(`cannot get the checksum of ${f.name}: ${err.message}`);
    });
    return { sha256: parseChecksumFile(text, f.name, 'sha256') };
  }
  if (f.md5Url) {
    const text = await fetchText(f.md5Url, { signal, maxBytes: 64 << 10 }).catch((err: Error) => {
      throw new Error(`cannot get the checksum of ${f.name}: ${err.message}`);
    });
    return { md5: parseChecksumFile(text, f.name, 'md5') };
  }
  throw new Error(`${f.name} has no checksum to verify it against`);
}

export async function installEntry(entry: CatalogueEntry, opts: InstallOptions): Promise<ImageRecord> {
  if (entry.source === 'demo') throw new Error(`${entry.id} is a demo guest: it is already on disk`);
  const queue = opts.queue ?? sharedQueue;
  const results = await Promise.all(
    entry.files.map(async (f) => {
      const digest = await expectedDigest(f, opts.signal);
      const r = await queue.add({
        url: f.url,
        name: f.name,
        ...digest,
        store: opts.store,
        signal: opts.signal,
        onProgress: opts.onProgress ? (p) => opts.onProgress!(f.name, p) : undefined,
      });
      return { f, r };
    }),
  );
  const files: ImageFile[] = [];
  for (const { f, r } of results) {
    for (const out of r.files) {
      files.push({
        role: f.role,
        name: r.codec === 'zip' ? out.name : stripCodecSuffix(f.name),
        sha256: out.sha256,
        sizeBytes: out.sizeBytes,
        origin: f.url,
        sourceSha256: r.codec ? r.sourceSha256 : undefined,
      });
    }
  }
  await fixQemuboot(files, opts.store);
  const disk = mainDisk({ files } as ImageRecord);
  return opts.store.addImage({
    id: entry.id,
    name: entry.name,
    source: 'download',
    machine: entry.machine,
    arch: entry.arch,
    board: entry.board,
    files,
    sha256: disk?.sha256 ?? files[0]!.sha256,
    sizeBytes: files.reduce((n, f) => n + f.sizeBytes, 0),
    description: entry.description,
    createdAt: new Date().toISOString(),
    bootable: true,
  });
}

/**
 * The deploy dir holds the decompressed rootfs, so a qemuboot.conf that names the
 * compressed type (5.3: QB_DEFAULT_FSTYPE = ext4.zst) is stored with that suffix dropped,
 * and the kernel gets the name the conf asks for (qb_default_kernel) as well.
 */
async function fixQemuboot(files: ImageFile[], store: Store): Promise<void> {
  const i = files.findIndex((f) => f.role === 'qemuboot');
  if (i < 0) return;
  const conf = files[i]!;
  const text = await readFile(store.blobPath(conf.sha256), 'utf8');
  const fixed = text.replace(
    /^(\s*qb_default_fstype\s*=\s*)(\S+)\s*$/m,
    (line, key: string, fstype: string) =>
      codecFromName(fstype) ? `${key}${stripCodecSuffix(fstype)}` : line,
  );
  if (fixed !== text) {
    const blob = await store.putBuffer(fixed);
    files[i] = { ...conf, sha256: blob.sha256, sizeBytes: blob.sizeBytes };
  }
  const want = /^\s*qb_default_kernel\s*=\s*(\S+)\s*$/m.exec(fixed)?.[1];
  const kernel = files.find((f) => f.role === 'kernel');
  if (want && kernel && want !== kernel.name && !want.includes('/') && !files.some((f) => f.name === want)) {
    files.push({ ...kernel, name: want });
  }
}

/** A download's progress as the contract's progress event, for the engine to emit. */
export function toProgress(taskId: string, label: string, p: DownloadProgress): Progress {
  return {
    taskId,
    label: p.phase === 'resuming' ? `${label} (checking the part already here)` : label,
    state: 'running',
    done: p.bytes,
    total: p.total,
    unit: 'bytes',
    ratePerSec: p.ratePerSec,
    etaSec: p.etaSec,
  };
}
