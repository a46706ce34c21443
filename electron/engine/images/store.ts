// The content-addressed store: every base file (kernel, rootfs, disk image, qemuboot.conf)
// lives once at <root>/sha256/<hex>, read-only, whatever image refers to it. An index maps
// image ids to their files; a blob's reference count is how many image files name it, so
// removing an image deletes exactly the blobs nobody else uses. Each image also gets a
// deploy directory of hard links named as Yocto names them, which is what the QEMU side
// and runqemu-style tooling read.
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { stacklabHome } from '../paths.ts';
import type { ImageRecord } from './record.ts';

export interface StoredBlob {
  sha256: string;
  sizeBytes: number;
  path: string;
}

export interface StoreUsage {
  images: number;
  blobs: number;
  bytes: number;
  partialBytes: number;
}

interface IndexFile {
  version: 1;
  images: Record<string, ImageRecord>;
}

const HEX64 = /^[0-9a-f]{64}$/;

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return h.digest('hex');
}

export class Store {
  readonly root: string;
  // In-process lock for the index: every read-modify-write goes through this chain.
  private chain: Promise<unknown> = Promise.resolve();

  constructor(root: string = path.join(stacklabHome(), 'store')) {
    this.root = path.resolve(root);
  }

  get blobDir(): string {
    return path.join(this.root, 'sha256');
  }
  get partialDir(): string {
    return path.join(this.root, 'partial');
  }
  get deployRoot(): string {
    return path.join(this.root, 'deploy');
  }
  private get indexPath(): string {
    return path.join(this.root, 'index.json');
  }

  async init(): Promise<this> {
    await fs.mkdir(this.blobDir, { recursive: true });
    await fs.mkdir(this.partialDir, { recursive: true });
    await fs.mkdir(this.deployRoot, { recursive: true });
    return this;
  }

  blobPath(sha256: string): string {
    if (!HEX64.test(sha256)) throw new Error(`not a sha256 digest: ${sha256.slice(0, 80)}`);
    return path.join(this.blobDir, sha256);
  }

  /** A fresh temp path beside the blobs, so committing it is a rename on one filesystem. */
  tempPath(): string {
    return path.join(this.blobDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Moves a finished, fsynced file into the store under its digest. If the same bytes are
   * already stored the temp file is dropped, so a second download or import keeps one copy.
   */
  async commit(tempFile: string, sha256: string): Promise<StoredBlob> {
    const dest = this.blobPath(sha256);
    const existing = await fs.stat(dest).catch(() => null);
    if (existing) {
      await fs.rm(tempFile, { force: true });
      return { sha256, sizeBytes: existing.size, path: dest };
    }
    await fs.chmod(tempFile, 0o444);
    try {
      await fs.rename(tempFile, dest);
    } catch (err) {
      // Another commit of the same bytes won the race (Windows will not rename over it).
      if (!(await fs.stat(dest).catch(() => null))) throw err;
      await fs.rm(tempFile, { force: true });
    }
    await fsyncDir(this.blobDir);
    const st = await fs.stat(dest);
    return { sha256, sizeBytes: st.size, path: dest };
  }

  /** Copies a file the user owns into the store (never links it: chmod would change theirs). */
  async putFile(src: string): Promise<StoredBlob> {
    await this.init();
    const sha256 = await sha256File(src);
    const dest = this.blobPath(sha256);
    const existing = await fs.stat(dest).catch(() => null);
    if (existing) return { sha256, sizeBytes: existing.size, path: dest };
    const tmp = this.tempPath();
    try {
      // A reflink where the filesystem has them (btrfs, xfs, APFS), a copy otherwise.
      await fs.copyFile(src, tmp, constants.COPYFILE_FICLONE);
      const fh = await fs.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      return await this.commit(tmp, sha256);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async putBuffer(data: Buffer | string): Promise<StoredBlob> {
    await this.init();
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const sha256 = createHash('sha256').update(buf).digest('hex');
    const tmp = this.tempPath();
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(buf);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return this.commit(tmp, sha256);
  }

  async hasBlob(sha256: string): Promise<boolean> {
    return (await fs.stat(this.blobPath(sha256)).catch(() => null)) !== null;
  }

  // ---- index ----

  private async readIndex(): Promise<IndexFile> {
    try {
      const parsed = JSON.parse(await fs.readFile(this.indexPath, 'utf8')) as IndexFile;
      if (parsed.version !== 1 || typeof parsed.images !== 'object') throw new Error('unknown index version');
      return parsed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, images: {} };
      throw new Error(`the image index ${this.indexPath} is unreadable: ${(err as Error).message}`);
    }
  }

  private async writeIndex(index: IndexFile): Promise<void> {
    const tmp = `${this.indexPath}.${process.pid}.tmp`;
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(`${JSON.stringify(index, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.indexPath);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  async listImages(): Promise<ImageRecord[]> {
    return Object.values((await this.readIndex()).images);
  }

  async getImage(id: string): Promise<ImageRecord | undefined> {
    return (await this.readIndex()).images[id];
  }

  /** Records an image whose files are all in the store and builds its deploy directory. */
  async addImage(record: ImageRecord): Promise<ImageRecord> {
    await this.init();
    for (const f of record.files) {
      if (!(await this.hasBlob(f.sha256)))
        throw new Error(`${record.id}: file ${f.name} is not in the store`);
    }
    const deployDir = await this.materialize(record);
    const full: ImageRecord = { ...record, deployDir };
    await this.locked(async () => {
      const index = await this.readIndex();
      index.images[record.id] = full;
      await this.writeIndex(index);
    });
    return full;
  }

  /** Removes an image and every blob no other image refers to. Returns the bytes freed. */
  async removeImage(id: string): Promise<number> {
    return this.locked(async () => {
      const index = await this.readIndex();
      const rec = index.images[id];
      if (!rec) throw new Error(`no stored image called "${id}"`);
      delete index.images[id];
      await this.writeIndex(index);
      await fs.rm(path.join(this.deployRoot, id), { recursive: true, force: true });
      const refs = refCounts(index);
      let freed = 0;
      for (const f of rec.files) {
        if ((refs.get(f.sha256) ?? 0) > 0) continue;
        const p = this.blobPath(f.sha256);
        const st = await fs.stat(p).catch(() => null);
        if (!st) continue;
        await fs.rm(p, { force: true });
        freed += st.size;
      }
      return freed;
    });
  }

  /** How many image files name each blob. */
  async refCounts(): Promise<Map<string, number>> {
    return refCounts(await this.readIndex());
  }

  async usage(): Promise<StoreUsage> {
    const index = await this.readIndex();
    let blobs = 0;
    let bytes = 0;
    for (const name of await fs.readdir(this.blobDir).catch(() => [] as string[])) {
      if (!HEX64.test(name)) continue;
      const st = await fs.stat(path.join(this.blobDir, name)).catch(() => null);
      if (!st) continue;
      blobs++;
      bytes += st.size;
    }
    let partialBytes = 0;
    for (const name of await fs.readdir(this.partialDir).catch(() => [] as string[])) {
      const st = await fs.stat(path.join(this.partialDir, name)).catch(() => null);
      if (st) partialBytes += st.size;
    }
    return { images: Object.keys(index.images).length, blobs, bytes, partialBytes };
  }

  /** <root>/deploy/<id>/<name> hard links (copies where links fail) to the blobs. */
  private async materialize(record: ImageRecord): Promise<string> {
    const dir = path.join(this.deployRoot, record.id);
    const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
    await fs.mkdir(tmp, { recursive: true });
    try {
      for (const f of record.files) {
        const target = path.join(tmp, f.name);
        if (path.relative(tmp, target).startsWith('..'))
          throw new Error(`${record.id}: bad file name ${f.name}`);
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs
          .link(this.blobPath(f.sha256), target)
          .catch(() => fs.copyFile(this.blobPath(f.sha256), target));
      }
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(tmp, dir);
    } catch (err) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return dir;
  }
}

function refCounts(index: IndexFile): Map<string, number> {
  const refs = new Map<string, number>();
  for (const rec of Object.values(index.images)) {
    for (const f of rec.files) refs.set(f.sha256, (refs.get(f.sha256) ?? 0) + 1);
  }
  return refs;
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable on POSIX; Windows cannot open directories, and needs no such step.
  if (process.platform === 'win32') return;
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
