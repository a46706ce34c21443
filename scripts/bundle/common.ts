// Shared by the three bundle scripts: running tools, writing manifest.json, replacing the
// output directory in one step, and downloading pinned files with a checksum check.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sha256File } from '../../electron/engine/bundle/hash.ts';
import { MANIFEST_NAME } from '../../electron/engine/bundle/layout.ts';
import { MANIFEST_SCHEMA, type Manifest, type ManifestFile } from '../../electron/engine/bundle/manifest.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Exits with one line when the script is run on the wrong OS: these bundles can only be made natively. */
export function requirePlatform(platform: NodeJS.Platform, script: string): void {
  if (process.platform !== platform) {
    process.stderr.write(
      `${script}: builds the ${platform} QEMU bundle and must run on ${platform} (this is ${process.platform})\n`,
    );
    process.exit(2);
  }
}

export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
      ...opts,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${cmd}: not installed`);
    const detail = (e.stderr ?? '').trim().split('\n').pop() ?? '';
    throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}…: failed${detail ? `: ${detail}` : ''}`);
  }
}

export function parseArgs(argv: string[], defaultOut: string): { out: string; force: boolean } {
  let out = defaultOut;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--force') force = true;
    else if (a === '--out' && argv[i + 1]) out = path.resolve(argv[++i] as string);
    else throw new Error(`unknown argument ${a} (usage: [--out DIR] [--force])`);
  }
  return { out, force };
}

/** A fresh work directory beside `out`, so the final rename stays on one file system. */
export function partialDir(out: string): string {
  const dir = `${out}.partial-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Replace `out` with the finished `partial` (an interrupted build never leaves a half bundle at `out`). */
export function swapInto(partial: string, out: string): void {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.dirname(out), { recursive: true });
  renameSync(partial, out);
}

/** Every regular file under root, sorted, with sha256/size/mode (manifest.json itself excluded). */
export async function listFiles(root: string): Promise<ManifestFile[]> {
  const rels: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && p !== MANIFEST_NAME) rels.push(p);
      else if (!e.isFile()) throw new Error(`${p}: bundles hold regular files only (found a link or device)`);
    }
  };
  walk('');
  rels.sort();
  const files: ManifestFile[] = [];
  for (const p of rels) {
    const abs = path.join(root, ...p.split('/'));
    const st = statSync(abs);
    files.push({ path: p, sha256: await sha256File(abs), size: st.size, mode: st.mode & 0o7777 });
  }
  return files;
}

export async function writeManifest(
  root: string,
  meta: Omit<Manifest, 'schema' | 'files' | 'createdAt'>,
): Promise<Manifest> {
  const manifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    ...meta,
    createdAt: new Date().toISOString(),
    files: await listFiles(root),
  };
  await writeFile(path.join(root, MANIFEST_NAME), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export function bytesOf(files: ManifestFile[]): number {
  return files.reduce((n, f) => n + f.size, 0);
}

export function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * Downloads `url` to `dest` unless a file with the right digest is already there, and
 * refuses (one line) when the digest differs from the pinned one.
 */
export async function fetchPinned(
  url: string,
  dest: string,
  digest: { algorithm: 'sha256' | 'sha512'; hex: string },
  headers: Record<string, string> = {},
): Promise<void> {
  const digestOf = async (file: string) => {
    const h = createHash(digest.algorithm);
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
    return h.digest('hex');
  };
  if (existsSync(dest) && (await digestOf(dest)) === digest.hex) {
    log(`    cached ${path.basename(dest)}`);
    return;
  }
  mkdirSync(path.dirname(dest), { recursive: true });
  log(`    downloading ${url}`);
  const res = await fetch(url, { headers, redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
  const tmp = `${dest}.download`;
  await pipeline(
    Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
    createWriteStream(tmp),
  );
  const got = await digestOf(tmp);
  if (got !== digest.hex) {
    rmSync(tmp, { force: true });
    throw new Error(
      `${path.basename(dest)}: ${digest.algorithm} ${got} differs from the pinned ${digest.hex}`,
    );
  }
  renameSync(tmp, dest);
}
