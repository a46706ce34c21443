// Editing an ext2/3/4 file system inside an image file without mounting it (no root, no
// loop devices, any OS): libext2fs compiled to WASM (the ext2fs package) over file-disk.
// ext2fs mirrors node's fs but has quirks this wrapper hides: its writeFile/readFile/
// createWriteStream let their defaults override the options you pass (mode is always 0666,
// readFile always decodes UTF-8), a large Buffer in one write dies with a WASM out-of-memory,
// and it has no recursive mkdir. Everything here goes through file handles in 1 MiB chunks.
import { open as openHost } from 'node:fs/promises';
import path from 'node:path';
import { withMountedDisk } from 'ext2fs';
import { FileDisk, withOpenFile } from 'file-disk';
import { quietWasmHandlers } from './quiet-wasm.ts';

quietWasmHandlers();

const CHUNK = 1 << 20;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
// libext2fs's own error table starts here (ext2_err.et); the binding hands these back as
// "UNKNOWN" errnos. The two that users can meet are worth naming.
const EXT2_ET_BASE = 2133571328;
const EXT2_ERRORS: Record<number, string> = {
  72: 'the file system is full (no free blocks)',
  73: 'the file system has no free inodes',
};

export interface Ext4Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  isDirectory: boolean;
  isFile: boolean;
  isSymbolicLink: boolean;
}

export interface WriteOpts {
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface Ext4Fs {
  readFile(p: string): Promise<Buffer>;
  /** Creates or replaces a file. A new file is 0644 root:root unless told otherwise; an existing one keeps its mode and owner unless told otherwise. */
  writeFile(p: string, data: Buffer | string, opts?: WriteOpts): Promise<void>;
  /** Streams a host file in (1 MiB chunks), so its size is bounded by the file system, not memory. */
  copyIn(hostPath: string, guestPath: string, opts?: WriteOpts): Promise<void>;
  /** Creates every missing level of `p` with `mode` (default 0755). */
  mkdirp(p: string, mode?: number): Promise<void>;
  exists(p: string): Promise<boolean>;
  readdir(p: string): Promise<string[]>;
  chmod(p: string, mode: number): Promise<void>;
  chown(p: string, uid: number, gid: number): Promise<void>;
  symlink(target: string, p: string): Promise<void>;
  unlink(p: string): Promise<void>;
  /** Does not follow a final symlink. */
  lstat(p: string): Promise<Ext4Stat>;
  readlink(p: string): Promise<string>;
}

// The slice of ext2fs's fs.promises used here (the package ships no types).
interface RawHandle {
  fd: number;
  read(b: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
  /** position undefined: at the file's current offset (sequential writes are ~3x faster than positioned ones). */
  write(b: Buffer, off: number, len: number, pos?: number): Promise<{ bytesWritten: number }>;
  chmod(mode: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  stat(): Promise<RawStats>;
}
interface RawStats {
  mode: number;
  uid: number;
  gid: number;
  size: number;
}
interface RawFs {
  open(p: string, flags: number, mode?: number): Promise<RawHandle>;
  close(fd: number): Promise<void>;
  readdir(p: string): Promise<string[]>;
  mkdir(p: string, mode: number): Promise<void>;
  lstat(p: string): Promise<RawStats>;
  chmod(p: string, mode: number): Promise<void>;
  lchown(p: string, uid: number, gid: number): Promise<void>;
  symlink(target: string, p: string): Promise<void>;
  unlink(p: string): Promise<void>;
  readlink(p: string): Promise<string>;
}

/** Turns ext2fs's "node_ext2fs_open ENOENT (44) args: [5262256,…]" into one readable line. */
export function explainExt2fsError(e: unknown, what: string): Error {
  const err = e as { code?: string; errno?: number; message?: string };
  let why: string;
  if (err.code === 'ENOENT') why = 'no such file or directory';
  else if (err.code === 'EEXIST') why = 'it already exists';
  else if (err.code === 'ENOTDIR') why = 'a parent is not a directory';
  else if (err.code === 'EISDIR') why = 'it is a directory';
  else if (err.code === 'ENOSPC') why = 'the file system is full';
  else if (typeof err.errno === 'number' && err.errno >= EXT2_ET_BASE && err.errno < EXT2_ET_BASE + 256)
    why = EXT2_ERRORS[err.errno - EXT2_ET_BASE] ?? `libext2fs error ${err.errno - EXT2_ET_BASE}`;
  else
    why = String(err.message ?? e)
      .split('\n')[0]!
      .replace(/ args: .*$/, '');
  const out = new Error(`${what}: ${why}`) as Error & { code?: string };
  out.code = err.code;
  return out;
}

function norm(p: string): string {
  if (!p.startsWith('/')) throw new Error(`paths inside the image must be absolute: ${p}`);
  return path.posix.normalize(p);
}

function fsApi(raw: RawFs): Ext4Fs {
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw explainExt2fsError(e, what);
    }
  };
  const lstatRaw = (p: string) => raw.lstat(p);
  const exists = async (p: string) => {
    try {
      await lstatRaw(norm(p));
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT' || (e as { code?: string }).code === 'ENOTDIR')
        return false;
      throw explainExt2fsError(e, `could not look up ${p}`);
    }
  };

  /** Opens for writing (truncating), lets `fill` write, then settles mode and owner. */
  const writeWith = async (p: string, opts: WriteOpts, fill: (h: RawHandle) => Promise<void>) => {
    const file = norm(p);
    const existed = await exists(file);
    if (existed) {
      const st = await lstatRaw(file);
      if ((st.mode & S_IFMT) === S_IFDIR) throw new Error(`cannot write ${file}: it is a directory`);
    }
    const mode = opts.mode ?? 0o644;
    const h = await guard(`cannot write ${file}`, () => raw.open(file, O_WRONLY | O_CREAT | O_TRUNC, mode));
    try {
      await guard(`cannot write ${file}`, () => fill(h));
      if (!existed || opts.mode !== undefined)
        await guard(`cannot chmod ${file}`, () => h.chmod(mode & 0o7777));
      if (!existed || opts.uid !== undefined || opts.gid !== undefined) {
        const st = await h.stat();
        await guard(`cannot chown ${file}`, () =>
          h.chown(opts.uid ?? (existed ? st.uid : 0), opts.gid ?? (existed ? st.gid : 0)),
        );
      }
    } finally {
      await raw.close(h.fd);
    }
  };

  return {
    async readFile(p) {
      const file = norm(p);
      const h = await guard(`cannot read ${file}`, () => raw.open(file, O_RDONLY));
      try {
        const st = await h.stat();
        if ((st.mode & S_IFMT) !== S_IFREG) throw new Error(`cannot read ${file}: not a regular file`);
        const out = Buffer.alloc(st.size);
        for (let pos = 0; pos < st.size; ) {
          const len = Math.min(CHUNK, st.size - pos);
          const { bytesRead } = await guard(`cannot read ${file}`, () => h.read(out, pos, len, pos));
          if (bytesRead <= 0)
            throw new Error(`cannot read ${file}: short read at ${pos} of ${st.size} bytes`);
          pos += bytesRead;
        }
        return out;
      } finally {
        await raw.close(h.fd);
      }
    },

    async writeFile(p, data, opts = {}) {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      await writeWith(p, opts, async (h) => {
        for (let pos = 0; pos < buf.length; pos += CHUNK) {
          const len = Math.min(CHUNK, buf.length - pos);
          // ext2fs copies its argument whole into WASM memory: hand it one chunk at a time.
          const { bytesWritten } = await h.write(Buffer.from(buf.subarray(pos, pos + len)), 0, len);
          if (bytesWritten !== len) throw new Error(`short write at ${pos}`);
        }
      });
    },

    async copyIn(hostPath, guestPath, opts = {}) {
      const src = await openHost(hostPath, 'r');
      try {
        await writeWith(guestPath, opts, async (h) => {
          const buf = Buffer.alloc(CHUNK);
          for (let pos = 0; ; ) {
            const { bytesRead } = await src.read(buf, 0, CHUNK, pos);
            if (bytesRead === 0) break;
            // The file was just opened truncated: sequential writes land at `pos`.
            const { bytesWritten } = await h.write(buf, 0, bytesRead);
            if (bytesWritten !== bytesRead) throw new Error(`short write at ${pos}`);
            pos += bytesRead;
          }
        });
      } finally {
        await src.close();
      }
    },

    async mkdirp(p, mode = 0o755) {
      const dir = norm(p);
      let cur = '';
      for (const part of dir.split('/').filter(Boolean)) {
        cur += `/${part}`;
        let st: RawStats | undefined;
        try {
          st = await lstatRaw(cur);
        } catch (e) {
          if ((e as { code?: string }).code !== 'ENOENT') throw explainExt2fsError(e, `cannot create ${cur}`);
        }
        if (!st) {
          await guard(`cannot create ${cur}`, () => raw.mkdir(cur, mode));
          // mkdir's mode is subject to nothing here, but set it explicitly so it never depends on that.
          await guard(`cannot chmod ${cur}`, () => raw.chmod(cur, mode));
        } else if ((st.mode & S_IFMT) === S_IFLNK) {
          // A symlinked directory (/var/run -> ../run) is fine to pass through.
          const target = await guard(`cannot read ${cur}`, () => raw.open(cur, O_RDONLY));
          const tst = await target.stat();
          await raw.close(target.fd);
          if ((tst.mode & S_IFMT) !== S_IFDIR)
            throw new Error(`cannot create ${dir}: ${cur} is not a directory`);
        } else if ((st.mode & S_IFMT) !== S_IFDIR) {
          throw new Error(`cannot create ${dir}: ${cur} is not a directory`);
        }
      }
    },

    exists,

    async readdir(p) {
      const names = await guard(`cannot list ${p}`, () => raw.readdir(norm(p)));
      return names.filter((n) => n !== '.' && n !== '..');
    },

    async chmod(p, mode) {
      await guard(`cannot chmod ${p}`, () => raw.chmod(norm(p), mode & 0o7777));
    },

    async chown(p, uid, gid) {
      await guard(`cannot chown ${p}`, () => raw.lchown(norm(p), uid, gid));
    },

    async symlink(target, p) {
      await guard(`cannot create the link ${p}`, () => raw.symlink(target, norm(p)));
    },

    async unlink(p) {
      await guard(`cannot remove ${p}`, () => raw.unlink(norm(p)));
    },

    async lstat(p) {
      const st = await guard(`cannot stat ${p}`, () => raw.lstat(norm(p)));
      const type = st.mode & S_IFMT;
      return {
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        isDirectory: type === S_IFDIR,
        isFile: type === S_IFREG,
        isSymbolicLink: type === S_IFLNK,
      };
    },

    async readlink(p) {
      return guard(`cannot read the link ${p}`, () => raw.readlink(norm(p)));
    },
  };
}

/**
 * Opens the ext file system at byte `offset` of `image` and runs `fn` on it. With
 * write: false the image is opened read-only and anything libext2fs writes (a journal
 * replay) stays in memory. With write: true changes go to the file and the file system
 * is closed cleanly (superblock, bitmaps, checksums) before this resolves.
 */
export async function withExt4<T>(
  image: string,
  opts: { offset?: number; write: boolean },
  fn: (fs: Ext4Fs) => Promise<T>,
): Promise<T> {
  return withOpenFile(image, opts.write ? 'r+' : 'r', async (handle) => {
    const disk = new FileDisk(handle, !opts.write, !opts.write, false);
    let result: T | undefined;
    try {
      await withMountedDisk(disk, opts.offset ?? 0, async ({ promises }: { promises: RawFs }) => {
        result = await fn(fsApi(promises));
      });
    } catch (e) {
      if ((e as { syscall?: string }).syscall === 'node_ext2fs_mount')
        throw explainExt2fsError(
          e,
          `${path.basename(image)} has no ext2/3/4 file system at offset ${opts.offset ?? 0}`,
        );
      throw e;
    }
    if (opts.write) await disk.flush();
    return result as T;
  });
}

/** True when an ext2/3/4 superblock sits at `offset` (magic 0xEF53 at +1080). */
export async function hasExtMagic(image: string, offset = 0): Promise<boolean> {
  const fh = await openHost(image, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, offset + 1080);
    return bytesRead === 2 && b.readUInt16LE(0) === 0xef53;
  } finally {
    await fh.close();
  }
}
