// A file sink that hashes and counts what it writes and fsyncs before it reports done,
// so a file is whole on disk before anyone renames it into the store.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs/promises';
import { Writable } from 'node:stream';

export class HashingFileSink extends Writable {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private fh: fs.FileHandle | undefined;

  constructor(
    readonly file: string,
    private readonly flags: 'w' | 'a' = 'w',
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _construct(cb: (err?: Error | null) => void): void {
    fs.open(this.file, this.flags).then((fh) => {
      this.fh = fh;
      cb();
    }, cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.fh!.write(chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.fh!.sync().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) {
      cb(err);
      return;
    }
    fh.close().then(
      () => cb(err),
      () => cb(err),
    );
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
