// Compressed sources registered with etcher-sdk on top of its own (xz, gzip, zip), so
// getInnerSource() picks them by content like the others:
//  - zstd, which Yocto uses from 5.3 on (.wic.zst, .ext4.zst) and etcher-sdk lacks:
//    node:zlib's decoder where the runtime has it (Node >= 22.15, Electron), else fzstd;
//  - bzip2, replacing etcher-sdk's: it needs a fork of unbzip2-stream that is not on the
//    npm registry, so the project pins the registry's unbzip2-stream (package.json
//    overrides), whose `through` stream lacks unpipe(); it is wrapped in a real Transform.
import { Transform } from 'node:stream';
import { sourceDestination } from 'etcher-sdk';
import unbzip2 from 'unbzip2-stream';
import { zstdDecoder } from '../images/codecs.ts';

function bzip2Transform(): Transform {
  // unbzip2-stream decodes synchronously inside write(): whatever it emits is pushed at once.
  const dec = unbzip2();
  let failed: Error | undefined;
  let ended: (() => void) | undefined;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      dec.write(chunk);
      cb(failed);
    },
    flush(cb) {
      if (failed) return cb(failed);
      ended = () => cb(failed);
      dec.end();
    },
  });
  dec.on('data', (b: Buffer) => t.push(b));
  dec.on('error', (e: Error) => {
    failed = e;
    ended?.();
  });
  dec.on('end', () => ended?.());
  return t;
}

export class ZstdSource extends sourceDestination.CompressedSource {
  static override readonly mimetype = 'application/zstd';
  protected override createTransform(): Transform {
    return zstdDecoder();
  }
}

export class Bzip2Source extends sourceDestination.CompressedSource {
  static override readonly mimetype = 'application/x-bzip2';
  protected override createTransform(): Transform {
    return bzip2Transform();
  }
}

let registered = false;
export function registerSources(): void {
  if (registered) return;
  // register() keys by mimetype, so Bzip2Source replaces etcher-sdk's own.
  sourceDestination.SourceDestination.register(ZstdSource);
  sourceDestination.SourceDestination.register(Bzip2Source);
  registered = true;
}
