// A root filesystem as a directory user-mode emulation can run in: a directory as given,
// or a tarball / ext4 image unpacked once into <cache>/usermode/<sha>/. The image itself is
// only read. The key hashes the file's identity (path, size, mtime, inode) rather than its
// bytes: hashing a multi-GiB ext4 on every run would cost more than the run.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cacheHome } from '../paths.ts';
import { extractExt4, isExtImage } from './extract-ext4.ts';
import { extractTar, tarCodec } from './extract-tar.ts';

export type RootfsKind = 'dir' | 'tar' | 'ext4';

export interface PreparedRootfs {
  /** The directory to run in. */
  dir: string;
  kind: RootfsKind;
  /** What was asked for (absolute). */
  source: string;
  /** True when an earlier unpacking was reused. */
  cached: boolean;
  /** How it was unpacked ("bzip2", "ext2fs", …); absent for directories and cache hits. */
  via?: string;
  /** Entries left out while unpacking (device nodes, unsafe paths), the first 200. */
  skipped: string[];
  note?: string;
}

export interface PrepareOptions {
  env?: NodeJS.ProcessEnv;
  /** Progress lines for a long first unpacking. */
  onNote?: (line: string) => void;
  /** Force the JavaScript decoders / libext2fs-only path (tests). */
  decoder?: 'auto' | 'js';
  ext4Reader?: 'auto' | 'ext2fs' | 'debugfs';
}

export function usermodeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheHome(env), 'usermode');
}

/** What a path holds: a directory, a tarball or an ext2/3/4 image; throws one line otherwise. */
export async function rootfsKind(input: string): Promise<RootfsKind> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(input);
  } catch {
    throw new Error(`${input} does not exist`);
  }
  if (st.isDirectory()) return 'dir';
  if (!st.isFile()) throw new Error(`${input} is neither a directory nor a file`);
  if (await isExtImage(input)) return 'ext4';
  try {
    await tarCodec(input);
    return 'tar';
  } catch {
    throw new Error(
      `${path.basename(input)} is not a root filesystem: give a directory, a .tar(.gz|.bz2|.xz|.zst) or an .ext4 image`,
    );
  }
}

function cacheKey(file: string, kind: RootfsKind): string {
  const st = statSync(file);
  const id = [kind, realpathSync(file), st.size, st.mtimeMs, st.ino].join('\0');
  return createHash('sha256').update(id).digest('hex').slice(0, 32);
}

/** Removes a tree even where it holds read-only directories (unpacked as a non-root user). */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    const open = async (d: string): Promise<void> => {
      await chmod(d, 0o700).catch(() => {});
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) await open(path.join(d, e.name));
      }
    };
    await open(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Turns a directory, tarball or ext4 image into a directory to run in (unpacking once, cached). */
export async function prepareRootfs(input: string, opts: PrepareOptions = {}): Promise<PreparedRootfs> {
  const source = path.resolve(input);
  const kind = await rootfsKind(source);
  if (kind === 'dir') return { dir: source, kind, source, cached: false, skipped: [] };

  const cache = usermodeCacheDir(opts.env);
  const key = cacheKey(source, kind);
  const dir = path.join(cache, key);
  if (existsSync(path.join(cache, `${key}.json`)) && existsSync(dir)) {
    return { dir, kind, source, cached: true, skipped: [] };
  }
  await mkdir(cache, { recursive: true });
  // Unpack beside the final name and rename: a crash or a second process never sees half a tree.
  const partial = path.join(cache, `.${key}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(partial, { mode: 0o755 });
  opts.onNote?.(`unpacking ${path.basename(source)} into ${dir} (once; later runs reuse it)`);
  try {
    const r =
      kind === 'tar'
        ? await extractTar(source, partial, { decoder: opts.decoder, env: opts.env })
        : await extractExt4(source, partial, { env: opts.env, reader: opts.ext4Reader });
    if (readdirSync(partial).length === 0) throw new Error(`${path.basename(source)} holds no files`);
    try {
      await rename(partial, dir);
    } catch (e) {
      // Someone else finished first: theirs is as good as ours.
      if (!existsSync(dir)) throw e;
      await removeTree(partial);
    }
    const info = {
      source,
      kind,
      via: r.via,
      skippedTotal: r.skippedTotal,
      unpackedAt: new Date().toISOString(),
    };
    await writeFile(path.join(cache, `${key}.json`), `${JSON.stringify(info, null, 2)}\n`);
    const note = 'note' in r ? (r.note as string | undefined) : undefined;
    return { dir, kind, source, cached: false, via: r.via, skipped: r.skipped, note };
  } catch (e) {
    await removeTree(partial);
    throw e;
  }
}

const ROOTFS_FILE = /\.rootfs\.(tar(\.(gz|bz2|xz|zst))?|ext[234])$/;

/**
 * The root filesystem file of a deploy directory: a tarball (quickest to unpack) before an
 * ext image, and the shortest name (Yocto's stable symlink, not a timestamped build).
 */
export function findRootfsFile(deployDir: string): string | undefined {
  const names = readdirSync(deployDir).filter((n) => ROOTFS_FILE.test(n));
  const rank = (n: string) => (/\.tar/.test(n) ? 0 : 1);
  names.sort((a, b) => rank(a) - rank(b) || a.length - b.length || a.localeCompare(b));
  return names[0] ? path.join(deployDir, names[0]) : undefined;
}

/** What rootfsForImage needs of the engine's Library (its find and entries). */
export interface ImageLookup {
  find(
    id: string,
  ): Promise<{ id: string; deployDir: string } | undefined> | { id: string; deployDir: string } | undefined;
  entries(): Promise<Array<{ id: string }>> | Array<{ id: string }>;
}

/**
 * A path to a root filesystem (directory, tarball, ext image) as given, or a library image
 * id → its deploy directory's root filesystem file. Without `lib`, the demo guests' library.
 */
export async function rootfsForImage(
  idOrPath: string,
  lib?: ImageLookup,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (existsSync(idOrPath)) return idOrPath;
  // Loaded only for ids: the library pulls in the image descriptor modules.
  const library: ImageLookup = lib ?? new (await import('../library.ts')).Library(env);
  const entry = await library.find(idOrPath);
  if (!entry) {
    const ids = (await library.entries()).map((e) => e.id);
    throw new Error(
      `"${idOrPath}" is neither a path nor a known image${ids.length ? ` (known: ${ids.join(', ')})` : ' (no images yet: run npm run guests)'}`,
    );
  }
  const file = existsSync(entry.deployDir) ? findRootfsFile(entry.deployDir) : undefined;
  if (!file) throw new Error(`image ${entry.id} has no .rootfs.tar.* or .rootfs.ext4 in ${entry.deployDir}`);
  return file;
}
