// Writes a root filesystem's entries (from a tarball or an ext4 image) into a directory so
// that nothing lands outside it. Root filesystems are full of absolute symlinks
// (/bin/sh -> /bin/busybox) that are only meaningful inside the guest, so links are kept
// verbatim — never rewritten, never followed while writing: every parent directory is
// checked to be a real directory (not a symlink) before anything is created under it, and
// files are created with O_EXCL so a planted link is never written through.
// Calls are synchronous on purpose: entries are applied strictly in order, so a link an
// earlier entry created is on disk when a later entry is checked against it.
import {
  chmodSync,
  chownSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

export interface EntryMeta {
  /** Permission bits (07777); the file type comes from the call. */
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
}

/** A path inside the root filesystem as a safe relative path, or null when it must be refused. */
export function safeRelative(p: string): string | null {
  if (p.includes('\0')) return null;
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) return null;
  return parts.join('/');
}

export class RootfsWriter {
  readonly skipped: string[] = [];
  private skippedCount = 0;
  private readonly dirs: Array<{ abs: string; meta: EntryMeta }> = [];
  private readonly asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  constructor(readonly dest: string) {}

  /** Count of refused or unsupported entries (the list keeps the first 200). */
  get skippedTotal(): number {
    return this.skippedCount;
  }

  skip(entryPath: string, why: string): void {
    this.skippedCount++;
    if (this.skipped.length < 200) this.skipped.push(`${entryPath}: ${why}`);
  }

  /** Makes sure every parent of `rel` is a real directory inside dest; false (and skipped) otherwise. */
  private parentsOk(rel: string, entryPath: string): boolean {
    const parts = rel.split('/');
    let cur = this.dest;
    for (const part of parts.slice(0, -1)) {
      cur = path.join(cur, part);
      const st = lstatSync(cur, { throwIfNoEntry: false });
      if (!st) {
        mkdirSync(cur, { mode: 0o755 });
        continue;
      }
      if (st.isSymbolicLink()) {
        this.skip(
          entryPath,
          `refused: it would be written through the symlink ${path.relative(this.dest, cur)}`,
        );
        return false;
      }
      if (!st.isDirectory()) {
        this.skip(entryPath, `refused: ${path.relative(this.dest, cur)} is not a directory`);
        return false;
      }
    }
    return true;
  }

  /** Resolves and checks an entry's path; returns its absolute path with anything old there removed, or null. */
  private prepare(entryPath: string, keepDir = false): string | null {
    const rel = safeRelative(entryPath);
    if (rel === null) {
      this.skip(entryPath, 'refused: the path leaves the root filesystem');
      return null;
    }
    if (rel === '') return keepDir ? this.dest : null;
    if (!this.parentsOk(rel, entryPath)) return null;
    const abs = path.join(this.dest, rel);
    const old = lstatSync(abs, { throwIfNoEntry: false });
    if (old && !(keepDir && old.isDirectory())) rmSync(abs, { recursive: true, force: true });
    return abs;
  }

  private own(abs: string, meta: EntryMeta, link = false): void {
    if (!this.asRoot || meta.uid === undefined || meta.gid === undefined) return;
    (link ? lchownSync : chownSync)(abs, meta.uid, meta.gid);
  }

  directory(entryPath: string, meta: EntryMeta): void {
    const abs = this.prepare(entryPath, true);
    if (!abs) return;
    mkdirSync(abs, { recursive: true, mode: 0o700 });
    // Modes are applied at the end: a read-only directory must still receive its children.
    this.dirs.push({ abs, meta });
  }

  /** Creates a regular file and returns a writer for its bytes; call `close()` when done. */
  file(entryPath: string, meta: EntryMeta): { write(chunk: Uint8Array): void; close(): void } | null {
    const abs = this.prepare(entryPath);
    if (!abs) return null;
    // 'wx': O_CREAT|O_EXCL, so a symlink at this name is never followed.
    const fd = openSync(abs, 'wx', 0o600);
    let open = true;
    return {
      write: (chunk) => {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      },
      close: () => {
        if (!open) return;
        open = false;
        try {
          if (this.asRoot && meta.uid !== undefined && meta.gid !== undefined)
            fchownSync(fd, meta.uid, meta.gid);
          fchmodSync(fd, meta.mode & 0o7777);
          if (meta.mtime) futimesSync(fd, meta.mtime, meta.mtime);
        } finally {
          closeSync(fd);
        }
      },
    };
  }

  symlink(entryPath: string, target: string, meta: EntryMeta): void {
    if (target.includes('\0') || target === '') {
      this.skip(entryPath, 'refused: empty link target or NUL in it');
      return;
    }
    const abs = this.prepare(entryPath);
    if (!abs) return;
    symlinkSync(target, abs);
    this.own(abs, meta, true);
    if (meta.mtime) lutimesSync(abs, meta.mtime, meta.mtime);
  }

  /** A hard link to an earlier regular file of the same root filesystem. */
  hardlink(entryPath: string, targetPath: string): void {
    const targetRel = safeRelative(targetPath);
    if (targetRel === null || targetRel === '') {
      this.skip(entryPath, 'refused: the link target leaves the root filesystem');
      return;
    }
    if (!this.parentsOk(targetRel, entryPath)) return;
    const targetAbs = path.join(this.dest, targetRel);
    const st = lstatSync(targetAbs, { throwIfNoEntry: false });
    if (!st?.isFile()) {
      this.skip(entryPath, `hard link to ${targetPath}, which is not a regular file here`);
      return;
    }
    const abs = this.prepare(entryPath);
    if (!abs) return;
    linkSync(targetAbs, abs);
  }

  /** Applies directory modes, owners and times, deepest first. */
  finish(): void {
    for (const { abs, meta } of this.dirs.reverse()) {
      this.own(abs, meta);
      // Keep the owner's write bit on directories: the cache must stay removable by us.
      chmodSync(abs, (meta.mode & 0o7777) | (this.asRoot ? 0 : 0o200));
      if (meta.mtime) utimesSync(abs, meta.mtime, meta.mtime);
    }
  }
}
