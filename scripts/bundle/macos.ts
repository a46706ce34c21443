// Builds resources/qemu/darwin-<arch>/ from Homebrew's bottles (prebuilt, notarization-friendly
// builds of QEMU and the libraries it links), relocated the way Rancher Desktop ships its QEMU:
// every dylib QEMU loads is copied into lib/ and rewritten with install_name_tool to load
// from @executable_path/../lib (programs) or @loader_path (libraries), then ad-hoc signed.
//
//   npx tsx scripts/bundle/macos.ts --lock            (once, networked Mac: pin the bottles)
//   npx tsx scripts/bundle/macos.ts [--out DIR] [--force]
//
// Pinning: --lock asks Homebrew's formula API for qemu and its runtime dependencies and writes
// scripts/bundle/macos.lock.json (version and bottle sha256 per formula and arch). Commit it.
// A build downloads exactly those bottles by digest and refuses any whose sha256 differs.
// macOS only: it needs otool, install_name_tool and codesign (Xcode command line tools).
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { bundleRootFor } from '../../electron/engine/bundle/layout.ts';
import { readManifest } from '../../electron/engine/bundle/manifest.ts';
import { verifyBundle } from '../../electron/engine/bundle/verify.ts';
import {
  bytesOf,
  fetchPinned,
  log,
  mib,
  parseArgs,
  partialDir,
  REPO_ROOT,
  requirePlatform,
  run,
  swapInto,
  writeManifest,
} from './common.ts';

const LOCK = path.join(REPO_ROOT, 'scripts', 'bundle', 'macos.lock.json');
const API = 'https://formulae.brew.sh/api/formula';
const BLOBS = 'https://ghcr.io/v2/homebrew/core';
/** Oldest bottle tag first: a bottle runs on its macOS and newer (electron-builder.yml says 13.0). */
const TAGS: Record<string, string[]> = {
  arm64: ['arm64_ventura', 'arm64_sonoma', 'arm64_sequoia'],
  x64: ['ventura', 'sonoma', 'sequoia'],
};
const SYSTEM_TARGETS = ['aarch64', 'arm', 'x86_64'];
const PROGRAMS = [...SYSTEM_TARGETS.map((t) => `qemu-system-${t}`), 'qemu-img'];
/** Same firmware set as the Linux bundle (see linux.ts); the qemu bottle has them all in share/qemu. */
const FIRMWARE =
  /^(bios-256k\.bin|vgabios-[a-z-]+\.bin|efi-[a-z0-9_]+\.rom|kvmvapic\.bin|linuxboot(_dma)?\.bin|multiboot(_dma)?\.bin|pvh\.bin)$/;

const Lock = z.object({
  generatedAt: z.string(),
  tags: z.record(z.string(), z.string()), // node arch → bottle tag
  bottles: z.array(
    z.object({
      name: z.string(), // formula, e.g. "openssl@3"
      version: z.string(), // pkg version incl. revision, e.g. "10.0.2_1": the Cellar folder name
      sha256: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)), // node arch → bottle digest
    }),
  ),
});
type Lock = z.infer<typeof Lock>;

interface ApiFormula {
  name: string;
  versions: { stable: string };
  revision: number;
  dependencies: string[];
  bottle: { stable?: { files: Record<string, { sha256: string }> } };
}

async function writeLock(): Promise<void> {
  const seen = new Map<string, ApiFormula>();
  const visit = async (name: string): Promise<void> => {
    if (seen.has(name)) return;
    const res = await fetch(`${API}/${name}.json`);
    if (!res.ok) throw new Error(`${API}/${name}.json: HTTP ${res.status}`);
    const f = (await res.json()) as ApiFormula;
    seen.set(name, f);
    for (const d of f.dependencies) await visit(d);
  };
  await visit('qemu');
  const tags: Record<string, string> = {};
  for (const [arch, prefs] of Object.entries(TAGS)) {
    const tag = prefs.find((t) =>
      [...seen.values()].every((f) => f.bottle.stable?.files[t] || f.bottle.stable?.files.all),
    );
    if (!tag) throw new Error(`no common bottle tag for ${arch} among ${prefs.join(', ')}`);
    tags[arch] = tag;
  }
  const lock: Lock = {
    generatedAt: new Date().toISOString(),
    tags,
    bottles: [...seen.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((f) => ({
        name: f.name,
        version: f.revision ? `${f.versions.stable}_${f.revision}` : f.versions.stable,
        sha256: Object.fromEntries(
          Object.entries(tags).map(([arch, tag]) => [
            arch,
            (f.bottle.stable?.files[tag] ?? f.bottle.stable?.files.all)?.sha256 as string,
          ]),
        ),
      })),
  };
  writeFileSync(LOCK, `${JSON.stringify(Lock.parse(lock), null, 2)}\n`);
  log(
    `==> ${path.relative(REPO_ROOT, LOCK)}: ${lock.bottles.length} bottles (${Object.values(tags).join(', ')}); commit it`,
  );
}

function readLock(): Lock {
  if (!existsSync(LOCK))
    throw new Error(
      `${path.relative(REPO_ROOT, LOCK)} missing: run with --lock once on a networked Mac and commit it`,
    );
  return Lock.parse(JSON.parse(readFileSync(LOCK, 'utf8')));
}

/** Homebrew-relative dylib references (bottles say @@HOMEBREW_PREFIX@@/opt/<f>/lib/x.dylib or …CELLAR@@/<f>/<v>/lib/x.dylib). */
function brewDeps(file: string): string[] {
  return run('otool', ['-L', file])
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(' (')[0] as string)
    .filter(
      (p) => p.startsWith('@@HOMEBREW_') || p.startsWith('/opt/homebrew/') || p.startsWith('/usr/local/'),
    );
}

async function build(out: string, force: boolean): Promise<void> {
  const lock = readLock();
  const arch = process.arch;
  if (!lock.tags[arch]) throw new Error(`macos.lock.json has no bottles for ${arch}`);
  if (!force && existsSync(out)) {
    const m = await readManifest(out).catch(() => null);
    const qemuPin = lock.bottles.find((b) => b.name === 'qemu')?.version;
    if (m && m.source.packages.qemu === qemuPin && (await verifyBundle(out)).ok) {
      log(`==> ${out}: up to date (QEMU ${m.qemuVersion})`);
      return;
    }
  }
  const t0 = Date.now();
  const cache = path.join(os.homedir(), 'Library', 'Caches', 'Stacklab', 'bottles');
  const cellar = path.join(cache, `cellar-${lock.tags[arch]}`);
  log(`==> ${lock.bottles.length} bottles (${lock.tags[arch]})`);
  for (const b of lock.bottles) {
    const sha = b.sha256[arch] as string;
    const tarball = path.join(cache, `${b.name}-${b.version}.${lock.tags[arch]}.tar.gz`);
    // ghcr serves Homebrew's public bottles to the anonymous token "QQ==".
    await fetchPinned(
      `${BLOBS}/${b.name.replace('@', '/')}/blobs/sha256:${sha}`,
      tarball,
      { algorithm: 'sha256', hex: sha },
      {
        Authorization: 'Bearer QQ==',
      },
    );
    mkdirSync(cellar, { recursive: true });
    if (!existsSync(path.join(cellar, b.name, b.version))) run('tar', ['-xzf', tarball, '-C', cellar]);
  }
  const keg = (name: string) =>
    path.join(cellar, name, lock.bottles.find((b) => b.name === name)?.version as string);
  // @@HOMEBREW_PREFIX@@/opt/<formula>/lib/x.dylib  →  <cellar>/<formula>/<version>/lib/x.dylib
  const resolve = (ref: string): string => {
    const m =
      /(?:@@HOMEBREW_PREFIX@@|\/opt\/homebrew|\/usr\/local)\/opt\/([^/]+)\/(.+)$/.exec(ref) ??
      /@@HOMEBREW_CELLAR@@\/([^/]+)\/[^/]+\/(.+)$/.exec(ref);
    if (!m) throw new Error(`cannot place ${ref}`);
    return path.join(keg(m[1] as string), m[2] as string);
  };

  const work = partialDir(out);
  mkdirSync(path.join(work, 'bin'), { recursive: true });
  mkdirSync(path.join(work, 'lib'), { recursive: true });
  const queue: string[] = [];
  for (const p of PROGRAMS) {
    copyFileSync(path.join(keg('qemu'), 'bin', p), path.join(work, 'bin', p));
    chmodSync(path.join(work, 'bin', p), 0o755);
    queue.push(path.join(work, 'bin', p));
  }
  log('==> dylibs → lib/, rewritten with install_name_tool');
  const copied = new Set<string>();
  while (queue.length > 0) {
    const file = queue.shift() as string;
    const isProgram = path.dirname(file).endsWith(`${path.sep}bin`);
    const args: string[] = [];
    if (!isProgram) args.push('-id', `@rpath/${path.basename(file)}`);
    for (const ref of brewDeps(file)) {
      const name = path.basename(ref);
      args.push('-change', ref, isProgram ? `@executable_path/../lib/${name}` : `@loader_path/${name}`);
      if (!copied.has(name)) {
        copied.add(name);
        copyFileSync(resolve(ref), path.join(work, 'lib', name));
        chmodSync(path.join(work, 'lib', name), 0o644);
        queue.push(path.join(work, 'lib', name));
      }
    }
    if (args.length > 0) run('install_name_tool', [...args, file]);
  }
  log(`    ${copied.size} dylibs`);

  // install_name_tool voids signatures and Apple silicon runs nothing unsigned: sign ad hoc now
  // (electron-builder signs again with the Developer ID and these entitlements).
  const entitlements = path.join(REPO_ROOT, 'build', 'entitlements.mac.inherit.plist');
  for (const n of readdirSync(path.join(work, 'lib')))
    run('codesign', ['--force', '--sign', '-', path.join(work, 'lib', n)]);
  for (const p of PROGRAMS) {
    run('codesign', [
      '--force',
      '--sign',
      '-',
      '--options',
      'runtime',
      '--entitlements',
      entitlements,
      path.join(work, 'bin', p),
    ]);
  }

  const share = path.join(keg('qemu'), 'share', 'qemu');
  mkdirSync(path.join(work, 'share', 'qemu'), { recursive: true });
  for (const n of readdirSync(share).filter((n) => FIRMWARE.test(n)))
    copyFileSync(path.join(share, n), path.join(work, 'share', 'qemu', n));
  cpSync(path.join(share, 'keymaps'), path.join(work, 'share', 'qemu', 'keymaps'), {
    recursive: true,
    dereference: true,
  });

  log('==> check: every program starts from the bundle with a clean environment');
  const versionLine = run(path.join(work, 'bin', 'qemu-system-aarch64'), ['--version'], {
    env: { PATH: '/nonexistent' },
  }).split('\n')[0] as string;
  const qemuVersion = /version (\d+\.\d+\.\d+)/.exec(versionLine)?.[1];
  if (!qemuVersion) throw new Error(`bin/qemu-system-aarch64 --version printed "${versionLine}"`);
  for (const p of PROGRAMS) run(path.join(work, 'bin', p), ['--version'], { env: { PATH: '/nonexistent' } });

  const manifest = await writeManifest(work, {
    qemuVersion,
    qemuVersionLine: versionLine,
    platform: 'darwin',
    arch,
    systemTargets: SYSTEM_TARGETS,
    userTargets: [], // user-mode emulation exists only on Linux hosts
    source: { kind: 'homebrew', packages: Object.fromEntries(lock.bottles.map((b) => [b.name, b.version])) },
  });
  swapInto(work, out);
  log(
    `==> ${out}: QEMU ${qemuVersion}, ${manifest.files.length} files, ${mib(bytesOf(manifest.files))}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  requirePlatform('darwin', 'scripts/bundle/macos.ts');
  const argv = process.argv.slice(2);
  const job =
    argv[0] === '--lock'
      ? writeLock()
      : (async () => {
          const { out, force } = parseArgs(argv, bundleRootFor(path.join(REPO_ROOT, 'resources'), 'darwin'));
          await build(out, force);
        })();
  job.catch((err) => {
    process.stderr.write(`bundle: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
