// Debian package lookups and downloads through the host's own apt: exact candidate versions
// (they go into the cache key), dependency closures for a foreign architecture, and a
// download cache so later runs need neither the network nor root.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isRoot, run } from './exec.ts';
import { tool } from './tools.ts';

export interface DebPackage {
  name: string;
  arch: string; // Debian architecture of the .deb: arm64, amd64, all
  version: string;
}

let updated = false;

/** The host's native Debian architecture. */
export async function nativeArch(): Promise<string> {
  return (await run(tool('dpkg'), ['--print-architecture'])).stdout.trim();
}

/** Makes `arch` packages known to apt; needs root only the first time. */
export async function ensureForeignArch(arch: string): Promise<void> {
  if ((await nativeArch()) === arch) return;
  const foreign = (await run(tool('dpkg'), ['--print-foreign-architectures'])).stdout.split(/\s+/);
  if (foreign.includes(arch)) return;
  if (!isRoot()) {
    throw new Error(
      `apt does not know ${arch} packages yet: run once as root: dpkg --add-architecture ${arch} && apt-get update`,
    );
  }
  console.log(`      dpkg --add-architecture ${arch} && apt-get update`);
  await run(tool('dpkg'), ['--add-architecture', arch]);
  await aptUpdate();
}

async function aptUpdate(): Promise<void> {
  await run(tool('apt-get'), ['update', '-qq']);
  updated = true;
}

/** Candidate versions of `name:arch` specs, in one apt-cache call; refreshes apt's lists once if needed (root). */
export async function candidates(specs: readonly string[]): Promise<Map<string, string>> {
  const raw = await policy(specs);
  // apt-cache prints native-architecture packages without their ":arch" qualifier.
  const native = await nativeArch();
  const found = new Map<string, string>();
  for (const s of specs) {
    const v = raw.get(s) ?? raw.get(s.replace(new RegExp(`:${native}$`), ''));
    if (v) found.set(s, v);
  }
  const missing = specs.filter((s) => !found.has(s));
  if (missing.length === 0) return found;
  if (isRoot() && !updated) {
    await aptUpdate();
    return candidates(specs);
  }
  throw new Error(
    `apt has no candidate for ${missing.join(', ')}: run as root: apt-get update (and dpkg --add-architecture for foreign ones)`,
  );
}

async function policy(specs: readonly string[]): Promise<Map<string, string>> {
  const { stdout } = await run(tool('apt-cache'), ['policy', ...specs]);
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = head[1];
      continue;
    }
    const cand = /^\s+Candidate:\s+(\S+)/.exec(line);
    if (current && cand && cand[1] !== '(none)') out.set(current, cand[1]!);
  }
  return out;
}

/** The versioned kernel package each architecture's Debian kernel metapackage points at, e.g. linux-image-6.1.0-56-arm64. */
export async function kernelPackageNames(arches: readonly string[]): Promise<Map<string, string>> {
  const metas = arches.map((a) => `linux-image-${a}:${a}`);
  await candidates(metas);
  const { stdout } = await run(tool('apt-cache'), ['depends', ...metas]);
  const out = new Map<string, string>();
  for (const a of arches) {
    const m = new RegExp(`Depends: (linux-image-[0-9][^\\s:]*-${a})\\b`).exec(stdout);
    if (!m) throw new Error(`cannot tell which kernel package linux-image-${a} depends on`);
    out.set(a, m[1]!);
  }
  return out;
}

/** The versioned package Debian's linux-source metapackage points at, e.g. linux-source-6.1. */
export async function kernelSourcePackageName(): Promise<string> {
  await candidates(['linux-source']);
  const { stdout } = await run(tool('apt-cache'), ['depends', 'linux-source']);
  const m = /Depends: (linux-source-[0-9][^\s:]*)/.exec(stdout);
  if (!m) throw new Error('cannot tell which package linux-source depends on');
  return m[1]!;
}

/**
 * Every package apt would unpack to install `pkgs` on an empty `arch` system without
 * recommends — what mmdebstrap's extract variant unpacks — with exact versions. It runs as
 * a simulation against the host's package lists, so it needs neither root nor the network.
 */
export async function closure(pkgs: readonly string[], arch: string): Promise<DebPackage[]> {
  const { stdout } = await run(tool('apt-get'), [
    'install',
    '--simulate',
    '--no-install-recommends',
    '-qq',
    '-o',
    `APT::Architecture=${arch}`,
    '-o',
    `APT::Architectures=${arch}`,
    '-o',
    'Dir::State::status=/dev/null',
    '-o',
    'Debug::NoLocking=1',
    ...pkgs,
  ]);
  const out: DebPackage[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^Inst (\S+) \((\S+) .*\[(\S+)\]\)/.exec(line);
    if (m) out.push({ name: m[1]!, version: m[2]!, arch: m[3]! });
  }
  if (!out.some((p) => pkgs.includes(p.name)))
    throw new Error(`apt cannot resolve ${pkgs.join(' ')} for ${arch}`);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The file name apt-get download gives a package (an epoch's colon becomes %3a). */
export function debFileName(p: DebPackage): string {
  return `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`;
}

/** Downloads the exact versions into `cacheDir` unless already there; returns their paths. */
export async function download(pkgs: readonly DebPackage[], cacheDir: string): Promise<string[]> {
  mkdirSync(cacheDir, { recursive: true });
  const want = pkgs.filter((p) => !existsSync(path.join(cacheDir, debFileName(p))));
  if (want.length > 0) {
    // Download into a scratch dir first, so an interrupted download never leaves a partial .deb in the cache.
    const partial = path.join(cacheDir, `.partial-${process.pid}`);
    mkdirSync(partial, { recursive: true });
    const specs = want.map((p) =>
      p.arch === 'all' ? `${p.name}=${p.version}` : `${p.name}:${p.arch}=${p.version}`,
    );
    try {
      await run(tool('apt-get'), ['download', '-qq', ...specs], {
        cwd: partial,
      });
    } catch (e) {
      const hint = isRoot() ? '' : ' (if apt must fetch them, run once as root)';
      throw new Error(`${(e as Error).message}${hint}`);
    }
    for (const f of readdirSync(partial)) renameSync(path.join(partial, f), path.join(cacheDir, f));
    rmSync(partial, { recursive: true, force: true });
  }
  return pkgs.map((p) => {
    const f = path.join(cacheDir, debFileName(p));
    if (!existsSync(f)) throw new Error(`apt-get download did not produce ${debFileName(p)}`);
    return f;
  });
}

/** Unpacks a .deb's files (no maintainer scripts) into `dir`. */
export async function extractDeb(deb: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await run(tool('dpkg-deb'), ['-x', deb, dir]);
}
