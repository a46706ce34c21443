// Writing an image to an SD card (or a file) with etcher-sdk: compressed images (.xz, .gz,
// .bz2, .zip, .zst) are decompressed on the fly, progress comes with speed and ETA, and
// with verify on every byte is read back from the target and checked against the source's
// checksum (xxhash, computed while writing). A drive is unmounted before writing and again
// afterwards so it can be pulled out. Nothing here elevates privileges: see elevate.ts.
import { accessSync, constants, existsSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { errors, multiWrite, sourceDestination } from 'etcher-sdk';
import { quietWasmHandlers } from '../disk/quiet-wasm.ts';
import { chooseTarget, normaliseDrive } from './drives.ts';
import { registerSources } from './sources.ts';

// etcher-sdk loads ext2fs (through balena-image-fs).
quietWasmHandlers();

export type FlashTarget =
  | { device: string }
  | { file: string }
  /** Any etcher-sdk destination (tests use this to put a faulty card in the way). */
  | { destination: sourceDestination.SourceDestination; name: string };

export interface FlashProgress {
  phase: 'flashing' | 'verifying' | 'decompressing' | 'finished';
  /** 0..100 when the size is known. */
  percentage?: number;
  /** Bytes of the image written (or verified) so far. */
  position: number;
  /** Image size once known (decompressed). */
  total?: number;
  /** Bytes per second, smoothed. */
  speed: number;
  /** Seconds left in this phase, when known. */
  eta?: number;
}

export interface FlashOptions {
  source: string;
  target: FlashTarget;
  verify?: boolean;
  onProgress?: (p: FlashProgress) => void;
  /** Cancels the write (or the read-back); flash() then rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface FlashResult {
  target: string;
  bytesWritten: number;
  imageBytes: number;
  verified: boolean;
  durationMs: number;
  /** Bytes per second over the whole run (writing and verifying). */
  averageSpeed: number;
  /** The drive was unmounted afterwards and can be removed. */
  ejected: boolean;
}

function targetName(t: FlashTarget): string {
  return 'device' in t ? t.device : 'file' in t ? t.file : t.name;
}

/** The size of the image inside `file` once decompressed (exact, or etcher-sdk's best estimate). */
export async function imageSize(file: string): Promise<number> {
  const { inner, size } = await openImage(file);
  await inner.close();
  return size;
}

/** The decompressed image behind `file` (opened: close it) and its size. */
export async function openImage(
  file: string,
): Promise<{ inner: sourceDestination.SourceDestination; size: number; compressed: boolean }> {
  registerSources();
  if (!existsSync(file)) throw new Error(`no image at ${file}`);
  if (!statSync(file).isFile()) throw new Error(`${file} is not a file`);
  const outer = new sourceDestination.File({ path: file });
  let inner: sourceDestination.SourceDestination;
  try {
    inner = await outer.getInnerSource();
  } catch (e) {
    throw new Error(`cannot read ${path.basename(file)}: ${(e as Error).message.split('\n')[0]}`);
  }
  const meta = await inner.getMetadata();
  const compressed = inner !== outer;
  return { inner, size: meta.size ?? statSync(file).size, compressed };
}

async function destinationFor(
  t: FlashTarget,
  imageBytes: number,
  source: string,
): Promise<{ dest: sourceDestination.SourceDestination; isDrive: boolean }> {
  if ('destination' in t) return { dest: t.destination, isDrive: false };
  if ('file' in t) {
    if (path.resolve(t.file) === path.resolve(source)) throw new Error('the target file is the image itself');
    // A file target becomes exactly the image: created, or emptied first. Devices only
    // through the drive checks: never by naming /dev/… as a file.
    if (existsSync(t.file) && !statSync(t.file).isFile())
      throw new Error(`${t.file} is not a regular file; write drives by naming them as the drive`);
    if (existsSync(t.file)) truncateSync(t.file, 0);
    else writeFileSync(t.file, '');
    return { dest: new sourceDestination.File({ path: t.file, write: true }), isDrive: false };
  }
  // flash() is only reached once the user confirmed; the drive checks are made again here
  // because the card may have changed since the list was shown.
  const { list } = await import('drivelist');
  const raw = await list();
  const drive = chooseTarget(
    raw.map(normaliseDrive),
    t.device,
    { path: path.resolve(source), bytes: imageBytes },
    true,
  );
  const found = raw.find((d) => d.device === drive.device)!;
  try {
    accessSync(found.raw || found.device, constants.W_OK);
  } catch {
    const err = new Error(`writing ${t.device} needs administrator rights`) as Error & { code: string };
    err.code = 'EACCES';
    throw err;
  }
  return {
    dest: new sourceDestination.BlockDevice({
      drive: found,
      write: true,
      unmountOnSuccess: true,
      direct: true,
    }),
    isDrive: true,
  };
}

/** The error a cancelled flash rejects with: the target holds part of the image now. */
export function cancelledError(target: string): Error {
  const e = new Error(
    `cancelled: ${target} holds only part of the image now; write it again before using it`,
  );
  e.name = 'AbortError';
  return e;
}

/**
 * etcher-sdk has no cancel: it reads through streams made by createReadStream (the image
 * while writing, the target while verifying). Keeping those streams lets `signal` destroy
 * them, which makes etcher-sdk reject (writing) or report a failed verifier (verifying).
 */
function cancelReadsOn(sd: sourceDestination.SourceDestination, signal: AbortSignal, err: () => Error): void {
  const open = new Set<Readable>();
  const methods = ['createReadStream', 'createSparseReadStream'] as const;
  for (const m of methods) {
    const original = (sd[m] as (...a: unknown[]) => Promise<Readable>).bind(sd);
    (sd as unknown as Record<string, unknown>)[m] = async (...args: unknown[]) => {
      const stream = await original(...args);
      if (signal.aborted) stream.destroy(err());
      else open.add(stream);
      return stream;
    };
  }
  signal.addEventListener('abort', () => {
    for (const s of open) s.destroy(err());
  });
}

export async function flash(opts: FlashOptions): Promise<FlashResult> {
  const started = Date.now();
  const verify = opts.verify ?? true;
  const name = targetName(opts.target);
  const signal = opts.signal;
  if (signal?.aborted) throw cancelledError(name);
  const { inner, size } = await openImage(opts.source);
  let dest: sourceDestination.SourceDestination | undefined;
  let isDrive = false;
  let lastError: Error | undefined;
  let result: Awaited<ReturnType<typeof multiWrite.decompressThenFlash>>;
  try {
    ({ dest, isDrive } = await destinationFor(opts.target, size, opts.source));
    if (signal) {
      const err = () => cancelledError(name);
      cancelReadsOn(inner, signal, err);
      cancelReadsOn(dest, signal, err);
    }
    result = await multiWrite.decompressThenFlash({
      source: inner,
      destinations: [dest],
      asItIs: true,
      verify,
      // Never stage a decompressed copy on the host disk: stream straight to the card.
      decompressFirst: false,
      onFail: (_d, error) => {
        lastError = error;
      },
      onProgress: (p) =>
        opts.onProgress?.({
          phase: p.type,
          percentage: p.percentage === undefined ? undefined : Math.min(100, p.percentage),
          position: p.position,
          total: p.size,
          speed: p.speed,
          eta: p.eta,
        }),
    });
  } catch (e) {
    if (signal?.aborted) throw cancelledError(name);
    // Our own refusals (bad target, no rights) are already one clear line.
    throw dest ? explainFlashError(e, name) : e;
  } finally {
    // On success etcher-sdk has closed both; after a failure it leaves them open.
    await inner.close().catch(() => undefined);
    await dest?.close().catch(() => undefined);
  }
  if (signal?.aborted) throw cancelledError(name);
  const failure = lastError ?? [...result.failures.values()][0];
  if (failure) throw explainFlashError(failure, name);
  // An image file is done when it is on disk (drives are opened O_DIRECT and need no flush).
  if ('file' in opts.target) {
    const fh = await open(opts.target.file, 'r+');
    await fh.sync().finally(() => fh.close());
  }
  const durationMs = Date.now() - started;
  const imageBytes = result.sourceMetadata.size ?? size;
  opts.onProgress?.({
    phase: 'finished',
    percentage: 100,
    position: imageBytes,
    total: imageBytes,
    speed: 0,
    eta: 0,
  });
  return {
    target: name,
    bytesWritten: result.bytesWritten || imageBytes,
    imageBytes,
    verified: verify,
    durationMs,
    averageSpeed: durationMs > 0 ? Math.round(((verify ? 2 : 1) * imageBytes * 1000) / durationMs) : 0,
    ejected: isDrive,
  };
}

/** One line for what went wrong, naming the target. */
export function explainFlashError(e: unknown, target: string): Error {
  if (e instanceof errors.VerificationError || (e as { code?: string }).code === 'EVALIDATION') {
    return new Error(
      `verification failed: what was read back from ${target} differs from the image; the card may be faulty or was removed (write again, or try another card)`,
    );
  }
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC') return new Error(`${target} is full: the image does not fit`);
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return new Error(`not allowed to write ${target} (${err.code})`);
  if (err.code === 'EIO')
    return new Error(`input/output error writing ${target}: the card may be faulty or was removed`);
  const msg = (err?.message ?? String(e)).split('\n')[0];
  return new Error(`flashing ${target} failed: ${msg}`);
}
