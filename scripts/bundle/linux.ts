// Builds resources/qemu/linux-<arch>/ from the distribution's QEMU (Debian 12: QEMU 7.2):
// the emulators, qemu-img and the static user-mode emulators in bin/, every shared library
// they load in lib/ (rpath $ORIGIN/../lib), QEMU's loadable modules where the relocatable
// QEMU looks for them, the firmware they open in share/qemu/, and manifest.json.
//
//   npx tsx scripts/bundle/linux.ts [--out DIR] [--force]
//
// Idempotent: when the manifest at DIR records the package versions installed now and the
// files still match it, nothing is rebuilt. The build happens beside DIR and replaces it in
// one rename, so an interrupted run never leaves half a bundle.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleRootFor } from '../../electron/engine/bundle/layout.ts';
import { readManifest } from '../../electron/engine/bundle/manifest.ts';
import { compareVersions, verifyBundle } from '../../electron/engine/bundle/verify.ts';
import {
  bytesOf,
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
import { readElf } from './elf.ts';

/** Debian 12 ships QEMU 7.2; another series means another distribution and an untested bundle. */
export const QEMU_SERIES = '7.2';
/** The Debian packages the bundle is cut from (their exact versions go into manifest.json). */
export const QEMU_PACKAGES = [
  'qemu-system-arm',
  'qemu-system-x86',
  'qemu-system-data',
  'qemu-utils',
  'qemu-user-static',
  'seabios',
  'ipxe-qemu',
];
export const SYSTEM_TARGETS = ['aarch64', 'arm', 'x86_64'];
export const USER_TARGETS = ['aarch64', 'arm', 'x86_64'];
const TOOLS = ['qemu-img'];

/**
 * Loadable modules. x86 TCG itself is a module in Debian's build (qemu-system-x86_64 fails
 * to start TCG without accel-tcg-x86_64.so); the virtio-gpu ones back `-vga virtio` /
 * `-device virtio-gpu-pci` that Yocto's qemu machines may ask for. GTK/SDL/spice/gluster/rbd
 * modules are left out: Stacklab runs QEMU headless and they would pull in ~100 libraries.
 */
const MODULES = [
  'accel-tcg-x86_64',
  'hw-display-virtio-gpu',
  'hw-display-virtio-gpu-pci',
  'hw-display-virtio-vga',
];

/**
 * Firmware, found by running qemu-system-x86_64 (q35, virtio-net, -kernel) and
 * qemu-system-aarch64/-arm (virt, virtio-net) under strace with -display none, plus the
 * siblings other NICs and VGA models load. Debian keeps these in three directories and
 * symlinks some of them; the bundle holds real files, all in share/qemu.
 */
const FIRMWARE: Array<{ dir: string; names: RegExp }> = [
  {
    dir: '/usr/share/qemu',
    names: /^(kvmvapic\.bin|linuxboot(_dma)?\.bin|multiboot(_dma)?\.bin|pvh\.bin)$/,
  },
  { dir: '/usr/share/seabios', names: /^(bios-256k\.bin|vgabios-[a-z-]+\.bin)$/ },
  { dir: '/usr/lib/ipxe/qemu', names: /^efi-[a-z0-9_]+\.rom$/ },
];
const KEYMAPS = '/usr/share/qemu/keymaps'; // used by -k / VNC; 1 MB, kept so a VNC display works

/**
 * glibc stays on the host. Its dynamic loader (ld-linux) must be the exact build of the libc
 * it loads, the loader path is hard-coded in every binary (PT_INTERP), and libc dlopens host
 * pieces at run time (NSS modules for users/hosts, iconv, locales) that are built against
 * the host's libc: a bundled libc breaks getpwuid(), DNS and more on other distributions.
 * So the bundle needs a host glibc at least as new as the one it was built on (minGlibc in
 * the manifest, checked by verify).
 */
const GLIBC =
  /^(ld-linux[-a-z0-9_]*\.so\.\d+|ld64\.so\.\d+|lib(c|m|mvec|pthread|dl|rt|resolv|util|anl|nsl|BrokenLocale|thread_db)\.so\.\d+)$/;

const TRIPLET: Record<string, { multiarch: string; ldconfigTag: string }> = {
  x64: { multiarch: 'x86_64-linux-gnu', ldconfigTag: 'x86-64' },
  arm64: { multiarch: 'aarch64-linux-gnu', ldconfigTag: 'AArch64' },
};

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${Field} format, not a JS template
const DPKG_NAME_VERSION = '${Package}\t${Version}\n';

export function isGlibcCore(soname: string): boolean {
  return GLIBC.test(soname);
}

/** soname → path from the loader cache, for this architecture only. */
function loaderCache(tag: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of run('ldconfig', ['-p']).split('\n')) {
    const m = /^\s+(\S+) \(([^)]*)\) => (\S+)$/.exec(line);
    if (m?.[2]?.split(',').includes(tag) && !map.has(m[1] as string)) map.set(m[1] as string, m[3] as string);
  }
  return map;
}

/** stdout of a dpkg-query that may exit 1 because some of its arguments are unknown. */
function dpkgQuery(args: string[]): string {
  try {
    return execFileSync('dpkg-query', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string };
    if (e.code === 'ENOENT')
      throw new Error('dpkg-query: not installed (this recipe needs a Debian-family host)');
    return e.stdout ?? '';
  }
}

/** Package name → version, for the packages that own these paths (merged /usr tried both ways). */
function owningPackages(paths: string[]): Record<string, string> {
  const names = new Set<string>();
  const query = (ps: string[]): Set<string> => {
    const found = new Set<string>();
    for (const line of dpkgQuery(['-S', ...ps]).split('\n')) {
      const m = /^([^:,]+)(?::[a-z0-9]+)?(?:, [^:]+)*: (\/.+)$/.exec(line);
      if (m) {
        names.add(m[1] as string);
        found.add(m[2] as string);
      }
    }
    return found;
  };
  const found = query(paths);
  const alt = (p: string) => (p.startsWith('/usr/') ? p.slice(4) : `/usr${p}`);
  const rest = paths.filter((p) => !found.has(p)).map(alt);
  if (rest.length > 0) query(rest);
  return installedVersions([...names]);
}

/** Package → installed version ('' when not installed). */
function installedVersions(packages: string[]): Record<string, string> {
  const out: Record<string, string> = Object.fromEntries(packages.map((p) => [p, '']));
  for (const line of dpkgQuery(['-W', '-f', DPKG_NAME_VERSION, ...packages]).split('\n')) {
    const [name, version] = line.split('\t');
    if (name && version && name in out) out[name] = version;
  }
  return out;
}

function copyReal(src: string, dest: string, mode: number): void {
  mkdirSync(path.dirname(dest), { recursive: true });
  copyFileSync(realpathSync(src), dest);
  chmodSync(dest, mode);
}

/** Runs a bundled program with nothing from the caller's environment that could find a system QEMU or library. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: '/nonexistent', HOME: process.env.HOME ?? '/', LANG: 'C' };
}

export async function buildLinuxBundle(out: string, force: boolean): Promise<'built' | 'up-to-date'> {
  const arch = TRIPLET[process.arch];
  if (!arch) throw new Error(`no Linux bundle recipe for ${process.arch} (x64 and arm64 only)`);
  run('patchelf', ['--version']);

  const qemuPackages = installedVersions(QEMU_PACKAGES);
  const missing = Object.entries(qemuPackages).filter(([, v]) => !v);
  if (missing.length > 0) {
    throw new Error(`not installed: ${missing.map(([p]) => p).join(' ')} (run scripts/install.sh)`);
  }
  const versionLine = run('/usr/bin/qemu-system-x86_64', ['--version']).split('\n')[0] ?? '';
  const qemuVersion = /version (\d+\.\d+\.\d+)/.exec(versionLine)?.[1];
  if (!qemuVersion) throw new Error(`cannot read the QEMU version from "${versionLine}"`);
  if (!qemuVersion.startsWith(`${QEMU_SERIES}.`)) {
    throw new Error(`system QEMU is ${qemuVersion}; this recipe is pinned to Debian 12's ${QEMU_SERIES}.x`);
  }

  if (!force && existsSync(out)) {
    try {
      const m = await readManifest(out);
      const same = Object.entries(installedVersions(Object.keys(m.source.packages))).every(
        ([p, v]) => v === m.source.packages[p],
      );
      const check = await verifyBundle(out);
      if (same && check.ok && m.qemuVersion === qemuVersion) {
        log(
          `==> ${path.relative(REPO_ROOT, out) || out}: up to date (QEMU ${m.qemuVersion}, ${m.files.length} files)`,
        );
        return 'up-to-date';
      }
      log(`==> ${out}: ${same ? check.problems[0] : 'Debian packages changed'}; rebuilding`);
    } catch (err) {
      log(`==> ${out}: ${(err as Error).message}; rebuilding`);
    }
  }

  const t0 = Date.now();
  const work = partialDir(out);
  const moduleDir = path.join('lib', arch.multiarch, 'qemu'); // where the relocatable QEMU looks
  const sources: string[] = [];

  log(`==> programs (QEMU ${qemuVersion})`);
  const programs = [
    ...SYSTEM_TARGETS.map((t) => `qemu-system-${t}`),
    ...TOOLS,
    ...USER_TARGETS.map((t) => `qemu-${t}-static`),
  ];
  for (const p of programs) {
    const src = `/usr/bin/${p}`;
    copyReal(src, path.join(work, 'bin', p), 0o755);
    sources.push(src);
    log(`    bin/${p}`);
  }

  log('==> modules');
  for (const m of MODULES) {
    const src = `/usr/lib/${arch.multiarch}/qemu/${m}.so`;
    copyReal(src, path.join(work, moduleDir, `${m}.so`), 0o644);
    sources.push(src);
    log(`    ${moduleDir}/${m}.so`);
  }

  log('==> shared libraries');
  const cache = loaderCache(arch.ldconfigTag);
  const libs = new Map<string, string>(); // soname → host path
  const queue = [
    ...programs.map((p) => path.join(work, 'bin', p)),
    ...MODULES.map((m) => path.join(work, moduleDir, `${m}.so`)),
  ];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    for (const soname of readElf(file).needed) {
      if (isGlibcCore(soname) || libs.has(soname)) continue;
      const host = cache.get(soname);
      if (!host)
        throw new Error(`${path.basename(file)} needs ${soname}, which the loader cache does not know`);
      libs.set(soname, host);
      sources.push(host);
      copyReal(host, path.join(work, 'lib', soname), 0o644);
      queue.push(path.join(work, 'lib', soname));
    }
  }
  log(`    ${libs.size} libraries (glibc left to the host)`);

  log('==> rpath $ORIGIN/../lib (patchelf)');
  const elves: Array<{ file: string; rpath: string }> = [
    ...programs.map((p) => ({ file: path.join(work, 'bin', p), rpath: '$ORIGIN/../lib' })),
    ...[...libs.keys()].map((s) => ({ file: path.join(work, 'lib', s), rpath: '$ORIGIN/../lib' })),
    // Modules sit three levels below the bundle root: lib/<multiarch>/qemu/.
    ...MODULES.map((m) => ({ file: path.join(work, moduleDir, `${m}.so`), rpath: '$ORIGIN/../../../lib' })),
  ];
  let minGlibc = '2.2.5';
  for (const { file, rpath } of elves) {
    const info = readElf(file);
    // DT_RPATH (not RUNPATH): it is searched before LD_LIBRARY_PATH, so a user's or a
    // launcher's LD_LIBRARY_PATH cannot swap a different glib under QEMU.
    if (info.needed.length > 0) run('patchelf', ['--force-rpath', '--set-rpath', rpath, file]);
    for (const [lib, versions] of Object.entries(info.versionNeeds)) {
      if (!isGlibcCore(lib)) continue;
      for (const v of versions) {
        const n = /^GLIBC_(\d+\.\d+(?:\.\d+)?)$/.exec(v)?.[1];
        if (n && compareVersions(n, minGlibc) > 0) minGlibc = n;
      }
    }
  }

  log('==> firmware → share/qemu');
  let firmwareCount = 0;
  for (const { dir, names } of FIRMWARE) {
    for (const name of readdirSync(dir).sort()) {
      if (!names.test(name)) continue;
      copyReal(path.join(dir, name), path.join(work, 'share', 'qemu', name), 0o644);
      sources.push(path.join(dir, name));
      firmwareCount++;
    }
  }
  for (const name of readdirSync(KEYMAPS).sort()) {
    const src = path.join(KEYMAPS, name);
    if (!statSync(src).isFile()) continue;
    copyReal(src, path.join(work, 'share', 'qemu', 'keymaps', name), 0o644);
  }
  sources.push(KEYMAPS);
  log(`    ${firmwareCount} firmware files and keymaps/`);

  log('==> check: every program starts from the bundle with a clean environment');
  for (const t of SYSTEM_TARGETS) {
    const line = run(path.join(work, 'bin', `qemu-system-${t}`), ['--version'], { env: cleanEnv() }).split(
      '\n',
    )[0];
    if (!line?.includes(qemuVersion)) throw new Error(`bin/qemu-system-${t} --version printed "${line}"`);
  }
  run(path.join(work, 'bin', 'qemu-img'), ['--version'], { env: cleanEnv() });
  for (const t of USER_TARGETS)
    run(path.join(work, 'bin', `qemu-${t}-static`), ['--version'], { env: cleanEnv() });

  log('==> manifest.json');
  const packages = { ...owningPackages(sources), ...qemuPackages };
  const manifest = await writeManifest(work, {
    qemuVersion,
    qemuVersionLine: versionLine,
    platform: 'linux',
    arch: process.arch,
    systemTargets: SYSTEM_TARGETS,
    userTargets: USER_TARGETS,
    source: { kind: 'debian', packages: Object.fromEntries(Object.entries(packages).sort()) },
    minGlibc,
  });
  swapInto(work, out);
  log(
    `==> ${out}: ${manifest.files.length} files, ${mib(bytesOf(manifest.files))}, needs glibc ≥ ${minGlibc}, ` +
      `${Object.keys(packages).length} Debian packages recorded, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 'built';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  requirePlatform('linux', 'scripts/bundle/linux.ts');
  try {
    const { out, force } = parseArgs(
      process.argv.slice(2),
      bundleRootFor(path.join(REPO_ROOT, 'resources'), 'linux'),
    );
    await buildLinuxBundle(out, force);
  } catch (err) {
    process.stderr.write(`bundle: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
