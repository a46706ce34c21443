// Builds resources/qemu/win32-x64/ from Stefan Weil's upstream Windows build of QEMU (the
// installer the QEMU project links to), unpacked with 7-Zip rather than installed:
//   bin/   qemu-system-{aarch64,arm,x86_64}.exe, qemu-img.exe and the DLLs beside them
//          (Windows loads a program's DLLs from its own folder first)
//   share/qemu/  firmware and keymaps, passed with -L like on the other OSes
//
//   npx tsx scripts/bundle/windows.ts [--out DIR] [--force]      (Windows only, needs 7-Zip)
//
// The installer is pinned by file name and SHA-512 (the digest its publisher lists beside
// each build); the download is refused when it differs.
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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

export const INSTALLER = {
  build: '20241219',
  file: 'qemu-w64-setup-20241219.exe',
  // Builds move into a per-year folder once the next year starts.
  url: 'https://qemu.weilnetz.de/w64/2024/qemu-w64-setup-20241219.exe',
  sha512:
    '959e45bdde65def2e6870e729425ed21e2ca8a9b5da0c1c74f2da43b15288d3e7f0ae46b633050663d8beeab6d8e9bc3c682276a1f62b74c64143fab994a1c4c',
};
const SYSTEM_TARGETS = ['aarch64', 'arm', 'x86_64'];
/** The same firmware set as the Linux bundle (see linux.ts for how it was found). */
const FIRMWARE =
  /^(bios-256k\.bin|vgabios-[a-z-]+\.bin|efi-[a-z0-9_]+\.rom|kvmvapic\.bin|linuxboot(_dma)?\.bin|multiboot(_dma)?\.bin|pvh\.bin)$/;

function sevenZip(): string {
  const candidates = ['7z', path.join(process.env.ProgramFiles ?? 'C:\\Program Files', '7-Zip', '7z.exe')];
  for (const c of candidates) {
    try {
      run(c, ['i']);
      return c;
    } catch {
      // try the next spelling
    }
  }
  throw new Error('7-Zip not found: install it (7z.exe on PATH or in Program Files\\7-Zip)');
}

async function main(): Promise<void> {
  requirePlatform('win32', 'scripts/bundle/windows.ts');
  if (process.arch !== 'x64')
    throw new Error(`the upstream Windows build is x64 only (this is ${process.arch})`);
  const { out, force } = parseArgs(
    process.argv.slice(2),
    bundleRootFor(path.join(REPO_ROOT, 'resources'), 'win32'),
  );

  if (!force && existsSync(out)) {
    const m = await readManifest(out).catch(() => null);
    if (m?.source.packages['qemu-w64-setup'] === INSTALLER.build && (await verifyBundle(out)).ok) {
      log(`==> ${out}: up to date (QEMU ${m.qemuVersion})`);
      return;
    }
  }

  const t0 = Date.now();
  const cache = path.join(os.homedir(), '.cache', 'stacklab', 'bundle-downloads');
  const installer = path.join(cache, INSTALLER.file);
  log(`==> ${INSTALLER.file}`);
  await fetchPinned(INSTALLER.url, installer, { algorithm: 'sha512', hex: INSTALLER.sha512 });

  log('==> unpacking with 7-Zip');
  const unpacked = path.join(cache, `unpacked-${INSTALLER.build}`);
  if (!existsSync(path.join(unpacked, 'qemu-img.exe'))) {
    run(sevenZip(), ['x', '-y', `-o${unpacked}`, installer]);
  }

  const work = partialDir(out);
  mkdirSync(path.join(work, 'bin'), { recursive: true });
  for (const name of [...SYSTEM_TARGETS.map((t) => `qemu-system-${t}.exe`), 'qemu-img.exe']) {
    copyFileSync(path.join(unpacked, name), path.join(work, 'bin', name));
    log(`    bin/${name}`);
  }
  // Every DLL the installer ships: they are what its programs were linked against.
  const dlls = readdirSync(unpacked).filter((n) => n.toLowerCase().endsWith('.dll'));
  for (const d of dlls) copyFileSync(path.join(unpacked, d), path.join(work, 'bin', d));
  log(`    ${dlls.length} DLLs`);

  const share = path.join(unpacked, 'share');
  mkdirSync(path.join(work, 'share', 'qemu'), { recursive: true });
  for (const n of readdirSync(share).filter((n) => FIRMWARE.test(n))) {
    copyFileSync(path.join(share, n), path.join(work, 'share', 'qemu', n));
  }
  cpSync(path.join(share, 'keymaps'), path.join(work, 'share', 'qemu', 'keymaps'), { recursive: true });

  log('==> check: the programs start from the bundle');
  const versionLine = run(path.join(work, 'bin', 'qemu-system-x86_64.exe'), ['--version'], {
    env: { SystemRoot: process.env.SystemRoot, PATH: path.join(work, 'bin') },
  }).split(/\r?\n/)[0] as string;
  const qemuVersion = /version (\d+\.\d+\.\d+)/.exec(versionLine)?.[1];
  if (!qemuVersion) throw new Error(`bin/qemu-system-x86_64.exe --version printed "${versionLine}"`);

  const manifest = await writeManifest(work, {
    qemuVersion,
    qemuVersionLine: versionLine,
    platform: 'win32',
    arch: 'x64',
    systemTargets: SYSTEM_TARGETS,
    userTargets: [], // user-mode emulation exists only on Linux hosts
    source: { kind: 'upstream-installer', packages: { 'qemu-w64-setup': INSTALLER.build } },
  });
  swapInto(work, out);
  log(
    `==> ${out}: QEMU ${qemuVersion}, ${manifest.files.length} files, ${mib(bytesOf(manifest.files))}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`bundle: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
