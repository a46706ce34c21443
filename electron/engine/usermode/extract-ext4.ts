// Reading an ext4 root filesystem image out into a directory, without mounting (no root).
// Primary: the ext2fs package (libext2fs in WASM) walking the tree — it runs wherever the
// app runs, reports failures as exceptions, keeps hard links, and every entry goes through
// RootfsWriter so nothing lands outside the target. The image is opened read-only and any
// write libext2fs attempts stays in memory (file-disk's recordWrites): base images are
// never written. Fallback, when the WASM library cannot open the image (a feature it
// lacks): `debugfs -R "rdump / ."` from e2fsprogs, about 10x faster here but it reports
// errors only as text on stderr (exit status 0 regardless) and copies hard links.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { withMountedDisk } from 'ext2fs';
import { FileDisk, withOpenFile } from 'file-disk';
import { which } from './find.ts';
import { RootfsWriter } from './rootfs-writer.ts';

export interface Ext4ExtractResult {
  skipped: string[];
  skippedTotal: number;
  via: 'ext2fs' | 'debugfs';
  /** Why the fallback was used. */
  note?: string;
}

const EXT_MAGIC_OFFSET = 1024 + 56; // s_magic in the superblock
const EXT_MAGIC = 0xef53;
const CHUNK = 1 << 20;

/** True when the file starts with an ext2/3/4 superblock. */
export async function isExtImage(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, EXT_MAGIC_OFFSET);
    return bytesRead === 2 && b.readUInt16LE(0) === EXT_MAGIC;
  } finally {
    await fh.close();
  }
}

// The parts of ext2fs's fs.promises this walk uses (the package ships no types).
interface ExtStats {
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  nlink: number;
  size: number;
  mtime: Date;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}
interface ExtFs {
  readdir(p: string): Promise<string[]>;
  lstat(p: string): Promise<ExtStats>;
  readlink(p: string): Promise<string>;
  open(
    p: string,
    flags: 'r',
  ): Promise<{
    fd: number;
    read(b: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
  }>;
  close(fd: number): Promise<void>;
}

async function walkExt(efs: ExtFs, writer: RootfsWriter): Promise<void> {
  const inodes = new Map<number, string>();
  const walk = async (dir: string): Promise<void> => {
    const names = (await efs.readdir(dir)).filter((n) => n !== '.' && n !== '..').sort();
    for (const name of names) {
      const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
      const st = await efs.lstat(p);
      const meta = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isDirectory()) {
        writer.directory(p, meta);
        await walk(p);
      } else if (st.isSymbolicLink()) {
        writer.symlink(p, await efs.readlink(p), meta);
      } else if (st.isFile()) {
        const first = st.nlink > 1 ? inodes.get(st.ino) : undefined;
        if (first) {
          writer.hardlink(p, first);
          continue;
        }
        const out = writer.file(p, meta);
        if (!out) continue;
        // Read through a handle, not createReadStream: ext2fs 4.2.5's stream hands out
        // whole buffers past the end of the file (measured: more bytes than the files hold).
        const h = await efs.open(p, 'r');
        try {
          const buf = Buffer.alloc(Math.max(1, Math.min(st.size, CHUNK)));
          for (let pos = 0; pos < st.size; ) {
            const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, st.size - pos), pos);
            if (bytesRead <= 0) throw new Error(`${p}: short read at ${pos} of ${st.size} bytes`);
            out.write(buf.subarray(0, bytesRead));
            pos += bytesRead;
          }
        } finally {
          out.close();
          await efs.close(h.fd);
        }
        if (st.nlink > 1) inodes.set(st.ino, p);
      } else {
        writer.skip(p, 'device nodes, FIFOs and sockets are not copied');
      }
    }
  };
  await walk('/');
}

async function viaDebugfs(debugfs: string, file: string, dest: string): Promise<void> {
  // rdump without -w opens the image read-only. cwd=dest: debugfs splits its command on spaces.
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(debugfs, ['-R', 'rdump / .', file], {
      cwd: dest,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(err));
  });
  // Not root: every chown fails and is reported; anything else on stderr is a real problem.
  const problems = stderr
    .split('\n')
    .filter((l) => l.trim() && !/^debugfs \d/.test(l) && !/while changing ownership/.test(l));
  if (readdirSync(dest).length === 0 || problems.length > 0) {
    throw new Error(
      `debugfs could not read ${path.basename(file)}: ${problems[0] ?? 'nothing was extracted'}`,
    );
  }
}

/** Extracts the ext2/3/4 image `file` into the existing, empty directory `dest`. */
export async function extractExt4(
  file: string,
  dest: string,
  opts: { env?: NodeJS.ProcessEnv; reader?: 'auto' | 'ext2fs' | 'debugfs' } = {},
): Promise<Ext4ExtractResult> {
  if (!(await isExtImage(file)))
    throw new Error(`${path.basename(file)} is not an ext2/3/4 file system image`);
  const reader = opts.reader ?? 'auto';
  let note: string | undefined;
  if (reader !== 'debugfs') {
    const writer = new RootfsWriter(dest);
    try {
      await withOpenFile(file, 'r', async (handle) => {
        // readOnly + recordWrites: libext2fs may write (journal replay); that stays in memory.
        const disk = new FileDisk(handle, true, true, false);
        await withMountedDisk(disk, 0, async ({ promises }: { promises: ExtFs }) =>
          walkExt(promises, writer),
        );
      });
      writer.finish();
      return { skipped: writer.skipped, skippedTotal: writer.skippedTotal, via: 'ext2fs' };
    } catch (e) {
      const why = (e as Error).message.split('\n')[0] ?? String(e);
      if (reader === 'ext2fs')
        throw new Error(`could not read ${path.basename(file)} with libext2fs: ${why}`);
      note = `libext2fs (WASM) failed (${why}); used debugfs`;
      for (const n of readdirSync(dest)) await rm(path.join(dest, n), { recursive: true, force: true });
    }
  }
  const debugfs = which('debugfs', opts.env);
  if (!debugfs) {
    throw new Error(
      `${note ? `${note.replace('; used debugfs', '')} and ` : ''}debugfs is missing: install e2fsprogs`,
    );
  }
  await viaDebugfs(debugfs, file, dest);
  return { skipped: [], skippedTotal: 0, via: 'debugfs', note };
}
