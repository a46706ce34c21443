// Stream decompression for downloaded and imported images, chosen by file-name suffix and
// checked against the magic bytes. No codec shells out: Windows and macOS users have no
// xz or zstd binaries. Choices (64 MiB file, this 2-core machine; see bench/images.ts):
//   gz   node:zlib                                   0.40 s (gzip -dc 0.34 s)
//   xz   xz-decompress (xz-embedded in WASM)          1.77 s (lzma-native, native: 2.03 s; xz -dc 0.79 s)
//   zst  node:zlib when the runtime has it (Node >= 22.15, Electron 41), else fzstd (pure JS,
//        1.39 s; zstd -dc 0.08 s). The native zstd addons on npm fetch their build at install.
//   bz2  unbzip2-stream (pure JS)                      10.4 s (bzip2 -dc 2.2 s; no streaming WASM port)
//   zip  yauzl, after the download (the directory sits at the end of a zip)
import { Duplex, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import unbzip2 from 'unbzip2-stream';
// A webpack-built CommonJS bundle: Node's ESM loader sees only its default export.
import xzDecompress from 'xz-decompress';

export type Codec = 'xz' | 'bz2' | 'gz' | 'zst' | 'zip';

const SUFFIX: Array<[RegExp, Codec]> = [
  [/\.xz$/i, 'xz'],
  [/\.bz2$/i, 'bz2'],
  [/\.gz$/i, 'gz'],
  [/\.zst$/i, 'zst'],
  [/\.zip$/i, 'zip'],
];

const NAMES: Record<Codec, string> = { xz: 'xz', bz2: 'bzip2', gz: 'gzip', zst: 'zstd', zip: 'zip' };

export function codecFromName(name: string): Codec | null {
  for (const [re, c] of SUFFIX) if (re.test(name)) return c;
  return null;
}

/** The codec the first bytes announce, or null for anything else (raw images, ext4, …). */
export function codecFromMagic(head: Uint8Array): Codec | null {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return 'xz';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zst';
  if (b.length >= 10 && b.toString('latin1', 0, 3) === 'BZh' && b[3]! >= 0x31 && b[3]! <= 0x39) {
    // Block magic (pi) or end-of-stream magic (sqrt pi) right after the header.
    const m = b.subarray(4, 10).toString('hex');
    if (m === '314159265359' || m === '177245385090') return 'bz2';
  }
  if (b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 0x08) return 'gz';
  if (b.length >= 4 && b.toString('latin1', 0, 4) === 'PK\x03\x04') return 'zip';
  return null;
}

/** Name without the compression suffix: foo.wic.xz → foo.wic. */
export function stripCodecSuffix(name: string): string {
  const c = codecFromName(name);
  return c && c !== 'zip' ? name.replace(/\.[^.]+$/, '') : name;
}

/**
 * Decides the codec from the name and the first bytes. A known suffix must match the
 * magic (a .xz that is not xz data is an error, not a raw file); no suffix → sniff.
 */
export function chooseCodec(name: string, head: Uint8Array): Codec | null {
  const bySuffix = codecFromName(name);
  const byMagic = codecFromMagic(head);
  if (bySuffix && byMagic !== bySuffix) {
    if (head.length === 0) throw new Error(`${name} is empty`);
    throw new Error(
      `${name} is not ${NAMES[bySuffix]} data (it starts with ${Buffer.from(head.subarray(0, 8)).toString('hex')})`,
    );
  }
  return bySuffix ?? byMagic;
}

export interface DecodeStages {
  /** Put these, in order, between the compressed source and the sink. */
  stages: Transform[] | Array<Transform | Duplex>;
  /** Turns a decoder failure into one clear line; other errors pass through unchanged. */
  explain(err: unknown): unknown;
}

export function hasBuiltinZstd(): boolean {
  return typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
}

/** Stream stages that decompress `codec` data, with truncation told apart from corruption. */
export function decodeStages(codec: Exclude<Codec, 'zip'>, name: string): DecodeStages {
  const state = { inputEnded: false, decoderError: undefined as unknown };
  // Notes when the compressed input is complete, so a decoder error after that point means
  // the stream stopped early rather than that its bytes are wrong.
  const tap = new Transform({
    transform(chunk, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      state.inputEnded = true;
      cb();
    },
  });
  const decoder = makeDecoder(codec);
  decoder.once('error', (e) => {
    state.decoderError = e;
  });
  const fmt = NAMES[codec];
  return {
    stages: [tap, decoder],
    explain(err) {
      if (err !== state.decoderError) return err;
      const detail = (err as Error)?.message ?? String(err);
      const code = xzCode(detail);
      if (codec === 'xz' && code === 5) return new Error(`${name} is not xz data`);
      if (codec === 'xz' && (code === 2 || code === 6))
        return new Error(`${name} uses xz options this decoder lacks (code ${code})`);
      const truncated =
        (codec === 'xz' && code === 8) ||
        (codec !== 'xz' && state.inputEnded) ||
        (err as NodeJS.ErrnoException)?.code === 'Z_BUF_ERROR';
      if (truncated) return new Error(`${name} is truncated: the ${fmt} stream ended early`);
      return new Error(`${name} is corrupt: ${fmt} data error (${detail.split('\n')[0]})`);
    },
  };
}

function xzCode(message: string): number | undefined {
  const m = /error code (\d+)/.exec(message);
  return m ? Number(m[1]) : undefined;
}

function makeDecoder(codec: Exclude<Codec, 'zip'>): Transform | Duplex {
  switch (codec) {
    case 'gz':
      return zlib.createGunzip();
    case 'zst':
      return zstdDecoder();
    case 'bz2':
      return unbzip2() as unknown as Duplex;
    case 'xz': {
      // xz-decompress speaks web streams: feed an identity TransformStream, read the
      // decoder's ReadableStream, and present the pair as one Node duplex.
      const input = new TransformStream<Uint8Array, Uint8Array>();
      const output = new xzDecompress.XzReadableStream(input.readable);
      return Duplex.fromWeb({ writable: input.writable, readable: output } as never);
    }
  }
}

/** node:zlib's zstd decoder where the runtime has it (Electron), else fzstd's. Shared with flashing. */
export function zstdDecoder(): Transform {
  if (hasBuiltinZstd())
    return (zlib as unknown as { createZstdDecompress(): Transform }).createZstdDecompress();
  return fzstdTransform();
}

function fzstdTransform(): Transform {
  let d: ZstdDecompress | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      d ??= new ZstdDecompress((out) => {
        this.push(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
      });
      try {
        d.push(chunk);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        if (!d) throw new Error('unexpected EOF');
        d.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

/** Zip entry names that would land outside the target directory are refused. */
export function unsafeZipEntry(entryName: string): string | null {
  if (entryName.includes('\0')) return 'it contains a NUL byte';
  const n = entryName.replace(/\\/g, '/');
  if (n.startsWith('/') || /^[A-Za-z]:/.test(n)) return 'it is an absolute path';
  if (n.split('/').some((seg) => seg === '..')) return 'it would escape the target directory';
  return null;
}
