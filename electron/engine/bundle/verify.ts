// Start-up check of the bundled QEMU: every file the manifest lists is there with the same
// size, sha256 and executable bit, nothing executable was added, and (Linux) the host's glibc
// is new enough. Hashes are cached by size+mtime+inode so the second check costs only stats.
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { sha256File } from './hash.ts';
import { MANIFEST_NAME } from './layout.ts';
import { type Manifest, type ManifestFile, readManifest } from './manifest.ts';

export interface BundleCheck {
  ok: boolean;
  /** QEMU version the manifest records, or null when there is no readable manifest. */
  version: string | null;
  /** One line each, e.g. "bin/qemu-img: sha256 differs from the manifest (file changed or damaged)". */
  problems: string[];
  root: string;
}

export interface VerifyOptions {
  /** The host the bundle must be for; default this process's. */
  platform?: NodeJS.Platform;
  arch?: string;
  /** Host glibc version ("2.36"); default read from Node's process report. null = don't check. */
  hostGlibc?: string | null;
}

interface CachedHash {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}
const hashCache = new Map<string, CachedHash>();

/** Forget cached hashes (tests; or after the bundle was replaced in place). */
export function clearVerifyCache(): void {
  hashCache.clear();
}

export async function verifyBundle(root: string, opts: VerifyOptions = {}): Promise<BundleCheck> {
  const platform = opts.platform ?? process.platform;
  const arch = opts.arch ?? process.arch;
  const done = (problems: string[], version: string | null): BundleCheck => ({
    ok: problems.length === 0,
    version,
    problems,
    root,
  });

  const rootStat = await lstat(root).catch(() => null);
  if (!rootStat?.isDirectory()) return done([`${root}: no QEMU bundle here`], null);

  let manifest: Manifest;
  try {
    manifest = await readManifest(root);
  } catch (err) {
    return done([(err as Error).message], null);
  }

  const problems: string[] = [];
  if (manifest.platform !== platform || manifest.arch !== arch) {
    problems.push(
      `${MANIFEST_NAME}: bundle is for ${manifest.platform}-${manifest.arch}, this host is ${platform}-${arch}`,
    );
  }

  const results = await mapLimited(manifest.files, 4, (f) => checkFile(root, f, platform));
  for (const r of results) if (r) problems.push(r);

  const listed = new Set(manifest.files.map((f) => f.path));
  for (const extra of await extraFiles(root, listed, platform)) problems.push(extra);

  if (platform === 'linux' && manifest.minGlibc) {
    const host = opts.hostGlibc === undefined ? hostGlibcVersion() : opts.hostGlibc;
    if (host && compareVersions(host, manifest.minGlibc) < 0) {
      problems.push(`host glibc ${host} is older than ${manifest.minGlibc}, which the bundled QEMU needs`);
    }
  }
  return done(problems, manifest.qemuVersion);
}

/** One line for doctor and the app's banner: empty when the bundle is fine. */
export function bundleProblemSummary(check: BundleCheck, max = 3): string {
  if (check.ok) return '';
  const shown = check.problems.slice(0, max).join('; ');
  const more = check.problems.length > max ? `; and ${check.problems.length - max} more` : '';
  return `bundled QEMU is damaged (${check.problems.length} problem${check.problems.length === 1 ? '' : 's'}): ${shown}${more} — reinstall Stacklab`;
}

async function checkFile(root: string, f: ManifestFile, platform: NodeJS.Platform): Promise<string | null> {
  const abs = path.join(root, ...f.path.split('/'));
  const st = await lstat(abs).catch(() => null);
  if (!st) return `${f.path}: missing`;
  if (!st.isFile()) return `${f.path}: not a regular file`;
  if (st.size !== f.size) {
    return `${f.path}: size ${st.size} differs from the manifest's ${f.size} (file changed or damaged)`;
  }
  if (platform !== 'win32' && (st.mode & 0o111) !== (f.mode & 0o111)) {
    return `${f.path}: permissions ${(st.mode & 0o777).toString(8)} differ from the manifest's ${(f.mode & 0o777).toString(8)}`;
  }
  const cached = hashCache.get(abs);
  let sha: string;
  if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs && cached.ino === st.ino) {
    sha = cached.sha256;
  } else {
    sha = await sha256File(abs);
    hashCache.set(abs, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: sha });
  }
  return sha === f.sha256 ? null : `${f.path}: sha256 differs from the manifest (file changed or damaged)`;
}

/** Files the manifest does not list that could run or be loaded: anything in bin/ or lib/, any executable. */
async function extraFiles(root: string, listed: Set<string>, platform: NodeJS.Platform): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      if (p === MANIFEST_NAME || listed.has(p)) continue;
      if (e.isSymbolicLink()) {
        out.push(`${p}: symbolic link not in the manifest (extra file)`);
        continue;
      }
      const top = p.split('/')[0];
      const executable =
        platform === 'win32'
          ? /\.(exe|dll)$/i.test(e.name)
          : (((await lstat(path.join(root, p)).catch(() => null))?.mode ?? 0) & 0o111) !== 0;
      if (top === 'bin' || top === 'lib' || executable) out.push(`${p}: not in the manifest (extra file)`);
    }
  };
  await walk('');
  return out;
}

let glibcMemo: string | null | undefined;
/** The glibc this process runs on ("2.36"), or null on musl/other OSes. */
export function hostGlibcVersion(): string | null {
  if (glibcMemo === undefined) {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
      ?.header;
    glibcMemo = header?.glibcVersionRuntime ?? null;
  }
  return glibcMemo;
}

/** Compares dotted numeric versions: "2.9" < "2.34". */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
