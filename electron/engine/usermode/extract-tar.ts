// Unpacking a root filesystem tarball (.tar, .tar.gz, .tar.bz2, .tar.xz, .tar.zst) into a
// directory. node-tar parses the archive (long names, pax headers, checksums); the entries
// are written by RootfsWriter rather than node-tar's own unpacker, because that one is made
// for npm packages: it rewrites absolute symlinks (/bin/sh -> /bin/busybox becomes a
// dangling bin/busybox) and refuses links that point through other links (Debian's
// merged /usr), both normal in a root filesystem. Device nodes are skipped (they need root;
// the runner binds the host's /dev instead).
//
// Decompression: the system's bzip2/xz/zstd when present — user mode is Linux-only and
// these are everywhere there; the pure-JS bz2 decoder is ~5x slower (10.4 s vs 2.2 s per
// 64 MiB, see electron/engine/images/codecs.ts) — else the JS/WASM decoders of codecs.ts.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { which } from './find.ts';
import { RootfsWriter } from './rootfs-writer.ts';

export type TarCodec = 'gz' | 'bz2' | 'xz' | 'zst' | 'none';

export interface ExtractResult {
  /** Entries left out, each "path: why" (device nodes, entries that would escape); the first 200. */
  skipped: string[];
  skippedTotal: number;
  /** How the archive was decompressed or read. */
  via: string;
}

const TOOL: Record<Exclude<TarCodec, 'none' | 'gz'>, string> = { bz2: 'bzip2', xz: 'xz', zst: 'zstd' };

/** The compression of a tarball from its first bytes; throws one line when it is not a tarball. */
export async function tarCodec(file: string): Promise<TarCodec> {
  const fh = await open(file, 'r');
  const head = Buffer.alloc(512);
  try {
    await fh.read(head, 0, 512, 0);
  } finally {
    await fh.close();
  }
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zst';
  if (head.toString('latin1', 0, 3) === 'BZh') return 'bz2';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gz';
  if (head.toString('latin1', 257, 262) === 'ustar') return 'none';
  throw new Error(`${path.basename(file)} is not a tar archive (plain, gz, bz2, xz or zst)`);
}

/** A writable sink that parses tar and applies each entry, in order, through a RootfsWriter. */
function tarSink(writer: RootfsWriter, name: string): { sink: PassThrough; done: Promise<void> } {
  const parser = new Parser({ strict: false });
  let fatal: Error | undefined;
  const fail = (e: unknown) => {
    fatal ??= e instanceof Error ? e : new Error(String(e));
  };
  parser.on('warn', (code: string, message: string, data: { entry?: { path?: string } }) => {
    if (code === 'TAR_BAD_ARCHIVE') fail(new Error(`${name}: ${message}`));
    else writer.skip(data?.entry?.path ?? '?', `${code} ${message}`);
  });
  parser.on('entry', (entry: ReadEntry) => {
    if (fatal) return entry.resume();
    const meta = { mode: entry.mode ?? 0o644, uid: entry.uid, gid: entry.gid, mtime: entry.mtime };
    try {
      switch (entry.type) {
        case 'Directory':
          writer.directory(entry.path, meta);
          return entry.resume();
        case 'File':
        case 'OldFile':
        case 'ContiguousFile': {
          const out = writer.file(entry.path, meta);
          if (!out) return entry.resume();
          entry.on('data', (chunk: Buffer) => {
            try {
              out.write(chunk);
            } catch (e) {
              fail(e);
            }
          });
          entry.on('end', () => {
            try {
              out.close();
            } catch (e) {
              fail(e);
            }
          });
          return;
        }
        case 'SymbolicLink':
          writer.symlink(entry.path, entry.linkpath ?? '', meta);
          return entry.resume();
        case 'Link':
          writer.hardlink(entry.path, entry.linkpath ?? '');
          return entry.resume();
        default:
          writer.skip(entry.path, `${entry.type} entries are not unpacked`);
          return entry.resume();
      }
    } catch (e) {
      fail(e);
      entry.resume();
    }
  });
  // node-tar's Parser is an event emitter with write/end; a PassThrough gives pipeline a real stream.
  const sink = new PassThrough();
  const done = new Promise<void>((resolve, reject) => {
    parser.on('error', (e: Error) => reject(new Error(`${name}: ${e.message}`)));
    parser.on('end', () => (fatal ? reject(fatal) : resolve()));
    sink.on('data', (chunk: Buffer) => {
      if (!parser.write(chunk)) {
        sink.pause();
        parser.once('drain', () => sink.resume());
      }
    });
    sink.on('end', () => parser.end());
  });
  return { sink, done };
}

async function feed(
  sources: Array<Readable | Transform>,
  sink: PassThrough,
  done: Promise<void>,
): Promise<void> {
  // Both must settle: a parse failure may surface as a broken pipe on the other side.
  const [piped, parsed] = await Promise.allSettled([pipeline(...(sources as [Readable]), sink), done]);
  if (parsed.status === 'rejected') throw parsed.reason;
  if (piped.status === 'rejected') throw piped.reason;
}

/** Extracts `file` into the existing, empty directory `dest`. */
export async function extractTar(
  file: string,
  dest: string,
  opts: { decoder?: 'auto' | 'js'; env?: NodeJS.ProcessEnv } = {},
): Promise<ExtractResult> {
  const codec = await tarCodec(file);
  const name = path.basename(file);
  const writer = new RootfsWriter(dest);
  const result = (via: string): ExtractResult => {
    writer.finish();
    return { skipped: writer.skipped, skippedTotal: writer.skippedTotal, via };
  };

  if (codec === 'none' || codec === 'gz') {
    const { sink, done } = tarSink(writer, name);
    const stages: Transform[] = codec === 'gz' ? [zlib.createGunzip()] : [];
    try {
      await feed([createReadStream(file), ...stages], sink, done);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message.replace(`${name}: `, '')}`);
    }
    return result(codec === 'gz' ? 'node:zlib' : 'plain tar');
  }

  const tool = opts.decoder === 'js' ? undefined : which(TOOL[codec], opts.env);
  if (tool) {
    const { sink, done } = tarSink(writer, name);
    const child = spawn(tool, ['-dc', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((resolve) => {
      child.on('error', () => resolve(-1));
      child.on('close', resolve);
    });
    let failure: Error | undefined;
    try {
      await feed([child.stdout], sink, done);
    } catch (e) {
      failure = e as Error;
      child.kill();
    }
    const code = await exited;
    // The decompressor's own complaint (corrupt, truncated) is the clearer line.
    if (code !== 0)
      throw new Error(`${name}: ${stderr.trim().split('\n').pop() || `${TOOL[codec]} exit status ${code}`}`);
    if (failure) throw failure;
    return result(tool);
  }

  // Loaded only here: the WASM/JS decoders are the slow path, needed where the tools are missing.
  const { decodeStages } = await import('../images/codecs.ts');
  const { stages, explain } = decodeStages(codec, name);
  const { sink, done } = tarSink(writer, name);
  try {
    await feed([createReadStream(file), ...(stages as Transform[])], sink, done);
  } catch (e) {
    throw explain(e);
  }
  return result(`${codec} decoder in JavaScript`);
}
