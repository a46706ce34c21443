// Building a guest kernel from Debian's linux-source package and a config fragment
// (scripts/guests/kernel/<machine>.config). A build takes minutes, so its bzImage is kept in
// <top>/kernels/<key>, keyed by the source version, the fragment's settings and the compiler:
// changing anything else in the guest builder reuses it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DebPackage } from './apt.ts';
import { extractDeb } from './apt.ts';
import { run, which } from './exec.ts';
import { tool } from './tools.ts';

export interface BuiltKernel {
  key: string; // its directory under <top>/kernels
  bzImage: string;
  /** `uname -r` of the built kernel, e.g. 6.1.192-stacklab. */
  kver: string;
  config: string;
  /** The source package the kernel was built from (it goes into the image manifest). */
  pkg: DebPackage;
}

export interface KernelBuildOptions {
  sourcePkg: DebPackage; // linux-source-<ver>, arch all
  sourceDeb: string;
  fragment: string; // path of the config fragment
  kernelsDir: string; // <top>/kernels
  work: string; // scratch directory, removed by the caller
  log: (line: string) => void;
}

const TARGET = 'bzImage';
const KEY_DIR = /^[0-9a-f]{12}$/;
// Host tools the kernel build runs, with the Debian packages that ship them.
const BUILD_TOOLS: Record<string, string> = {
  make: 'make',
  flex: 'flex',
  bison: 'bison',
  bc: 'bc',
  perl: 'perl',
  xz: 'xz-utils',
};

function toolchain(): { env: NodeJS.ProcessEnv; cc: string } {
  // The guest is x86-64; anywhere else the build needs Debian's cross compiler.
  const cross = process.arch === 'x64' ? '' : 'x86_64-linux-gnu-';
  const cc = `${cross}gcc`;
  if (!which(cc))
    throw new Error(
      `building the x86-64 demo kernel needs: apt-get install ${cross ? 'gcc-x86-64-linux-gnu' : 'gcc'}`,
    );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ARCH: 'x86_64',
    // The same source and fragment give the same `uname -v` on every machine.
    KBUILD_BUILD_USER: 'stacklab',
    KBUILD_BUILD_HOST: 'stacklab',
    KBUILD_BUILD_TIMESTAMP: 'Thu Jan 1 00:00:00 UTC 2026',
    ...(cross ? { CROSS_COMPILE: cross } : {}),
  };
  return { env, cc };
}

/** The rest of what a build runs (a cached kernel needs only the compiler, for its key). */
function requireBuildTools(): void {
  const missing = Object.keys(BUILD_TOOLS).filter((t) => !which(t));
  // objtool, which every x86-64 build runs, links against libelf.
  const libelf = ['/usr/include/libelf.h', '/usr/include/gelf.h'].every(existsSync);
  const pkgs = [...new Set(missing.map((t) => BUILD_TOOLS[t]!)), ...(libelf ? [] : ['libelf-dev'])];
  if (pkgs.length)
    throw new Error(`building the x86-64 demo kernel needs: apt-get install ${pkgs.join(' ')}`);
}

/**
 * What shapes the kernel: the source version, the fragment's settings (not its comments), the
 * compiler, and the environment and target make is given.
 */
export async function kernelKey(o: Pick<KernelBuildOptions, 'sourcePkg' | 'fragment'>): Promise<string> {
  const { env, cc } = toolchain();
  return buildKey(o, env, cc);
}

async function buildKey(
  o: Pick<KernelBuildOptions, 'sourcePkg' | 'fragment'>,
  env: NodeJS.ProcessEnv,
  cc: string,
): Promise<string> {
  const compiler = (await run(cc, ['--version'])).stdout.split('\n')[0];
  const settings = [...parseFragment(readFileSync(o.fragment, 'utf8'))].map(([k, v]) => `${k}=${v}`);
  const kbuild = Object.entries(env).filter(([k]) => /^(ARCH|CROSS_COMPILE|KBUILD_)/.test(k));
  const h = createHash('sha256');
  h.update(JSON.stringify({ source: o.sourcePkg, compiler, settings, kbuild, target: TARGET }));
  return h.digest('hex').slice(0, 12);
}

/** The fragment's settings: `CONFIG_X=value` lines, `=n` meaning "is not set". */
export function parseFragment(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(CONFIG_[A-Z0-9_]+)=(.+)$/.exec(line);
    if (!m) throw new Error(`config fragment line ${i + 1} is not CONFIG_NAME=value: ${line}`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Fragment settings the resolved .config does not have (a dependency kconfig could not satisfy). */
export function unmetSettings(fragment: Map<string, string>, dotConfig: string): string[] {
  const have = new Map<string, string>();
  for (const line of dotConfig.split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) have.set(m[1]!, m[2]!);
  }
  const unmet: string[] = [];
  for (const [k, v] of fragment) {
    const got = have.get(k);
    if (v === 'n' ? got !== undefined : got !== v) unmet.push(`${k}=${v} (got ${got ?? 'not set'})`);
  }
  return unmet;
}

/** The kernel for `o.fragment`, from the cache or built now (a few minutes on two cores). */
export async function buildKernel(o: KernelBuildOptions): Promise<BuiltKernel> {
  const { env, cc } = toolchain();
  const key = await buildKey(o, env, cc);
  const done = path.join(o.kernelsDir, key);
  const cached = readResult(done, o.sourcePkg);
  if (cached) {
    o.log(`kernel ${cached.kver} from ${path.basename(o.fragment)} is cached (${key})`);
    return cached;
  }

  requireBuildTools();
  o.log(`unpacking ${o.sourcePkg.name} ${o.sourcePkg.version}`);
  const pkgDir = path.join(o.work, 'linux-source-deb');
  await extractDeb(o.sourceDeb, pkgDir);
  const tarballs = readdirSync(path.join(pkgDir, 'usr', 'src')).filter((f) =>
    /^linux-source-.*\.tar\.xz$/.test(f),
  );
  if (tarballs.length !== 1)
    throw new Error(`${path.basename(o.sourceDeb)} has no single linux-source tarball`);
  await run(tool('tar'), ['-xJf', path.join(pkgDir, 'usr', 'src', tarballs[0]!), '-C', o.work]);
  rmSync(pkgDir, { recursive: true, force: true });
  const src = path.join(o.work, tarballs[0]!.replace(/\.tar\.xz$/, ''));

  const fragment = parseFragment(readFileSync(o.fragment, 'utf8'));
  await run('make', ['-s', `KCONFIG_ALLCONFIG=${o.fragment}`, 'allnoconfig'], { cwd: src, env });
  const unmet = unmetSettings(fragment, readFileSync(path.join(src, '.config'), 'utf8'));
  if (unmet.length)
    throw new Error(`${path.basename(o.fragment)} does not hold after kconfig: ${unmet.join(', ')}`);

  const jobs = os.availableParallelism() + 1;
  o.log(`compiling with ${jobs} jobs (about 4 minutes on two cores)`);
  const expected = lastObjectCount(o.kernelsDir);
  const objects = await make(src, ['-j', String(jobs), TARGET], env, (n, secs) =>
    o.log(
      `compiled ${n}${expected ? ` of ~${expected}` : ''} files` +
        `${expected ? ` (${Math.min(99, Math.round((100 * n) / expected))} %)` : ''}, ${secs} s`,
    ),
  );
  const kver = (await run('make', ['-s', 'kernelrelease'], { cwd: src, env })).stdout.trim();

  const partial = `${done}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  copyFileSync(path.join(src, 'arch', 'x86', 'boot', 'bzImage'), path.join(partial, 'bzImage'));
  copyFileSync(path.join(src, '.config'), path.join(partial, 'config'));
  const info = { kver, source: o.sourcePkg, fragment: path.basename(o.fragment), objects };
  writeFileSync(path.join(partial, 'kernel.json'), `${JSON.stringify(info, null, 2)}\n`);
  rmSync(done, { recursive: true, force: true });
  renameSync(partial, done); // only a complete build appears under its key
  o.log(`kernel ${kver}: bzImage ${(statSync(path.join(done, 'bzImage')).size / 1048576).toFixed(1)} MiB`);
  return readResult(done, o.sourcePkg)!;
}

function readResult(dir: string, pkg: DebPackage): BuiltKernel | undefined {
  try {
    const info = JSON.parse(readFileSync(path.join(dir, 'kernel.json'), 'utf8')) as { kver: string };
    const bzImage = path.join(dir, 'bzImage');
    if (!existsSync(bzImage)) return undefined;
    return { key: path.basename(dir), bzImage, kver: info.kver, config: path.join(dir, 'config'), pkg };
  } catch {
    return undefined;
  }
}

/** How many files the newest earlier build compiled, to show a percentage. */
function lastObjectCount(kernelsDir: string): number | undefined {
  if (!existsSync(kernelsDir)) return undefined;
  const builds = readdirSync(kernelsDir)
    .filter((d) => KEY_DIR.test(d))
    .map((d) => path.join(kernelsDir, d, 'kernel.json'))
    .filter(existsSync)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const f of builds) {
    const n = (JSON.parse(readFileSync(f, 'utf8')) as { objects?: number }).objects;
    if (n) return n;
  }
  return undefined;
}

/** Runs make, counting the files it compiles and reporting every 15 s; returns the count. */
function make(
  cwd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  progress: (n: number, secs: number) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('make', args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const t0 = Date.now();
    let n = 0;
    let partial = '';
    let errors = '';
    child.stdout.on('data', (b: Buffer) => {
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (/^\s+(CC|AS)\s/.test(l)) n++;
    });
    child.stderr.on('data', (b: Buffer) => {
      errors = (errors + b.toString('utf8')).slice(-4000);
    });
    const tick = setInterval(() => progress(n, Math.round((Date.now() - t0) / 1000)), 15_000);
    child.on('error', (e) => {
      clearInterval(tick);
      reject(new Error(`make: ${e.message}`));
    });
    child.on('close', (code) => {
      clearInterval(tick);
      if (code === 0) return resolve(n);
      const why = errors.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
      reject(new Error(`kernel build failed (make ${args.join(' ')}, exit ${code}): ${why}`));
    });
  });
}

/** Kernel builds other than `keep` (for `npm run guests -- --prune`). */
export function olderKernels(kernelsDir: string, keep: ReadonlySet<string>): string[] {
  if (!existsSync(kernelsDir)) return [];
  return readdirSync(kernelsDir)
    .filter((d) => !keep.has(d))
    .map((d) => path.join(kernelsDir, d));
}
