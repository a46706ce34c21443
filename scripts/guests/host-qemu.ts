// Debian's arm64 build of qemu-system-x86 and everything it needs, for the guest that runs a
// nested x86-64 guest. mmdebstrap's extract variant unpacks the packages without running
// anything, so no emulation is needed; the result is cached as a tarball next to the .debs.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DebPackage } from './apt.ts';
import { mirrorLinesFor, readAptSources } from './apt-sources.ts';
import { run } from './exec.ts';
import { requireTools, tool } from './tools.ts';

export const HOST_QEMU_PACKAGES = ['qemu-system-x86'];

/** What a firmware-less `qemu-system-x86_64 -M q35` needs to start: BIOS, option ROMs, and the default NIC's ROM. */
const FIRMWARE = [
  'bios-256k.bin',
  'kvmvapic.bin',
  'linuxboot_dma.bin',
  'vgabios-stdvga.bin',
  'efi-e1000e.rom',
];

const PRUNE = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/locale',
  'usr/share/lintian',
  'usr/share/bug',
  'usr/share/bash-completion',
  'var/cache/apt',
  'var/lib/apt',
  'var/log',
];

export function closureHash(pkgs: readonly DebPackage[]): string {
  const h = createHash('sha256');
  for (const p of pkgs) h.update(`${p.name} ${p.arch} ${p.version}\n`);
  return h.digest('hex').slice(0, 16);
}

export function hostQemuTarballName(pkgs: readonly DebPackage[]): string {
  return `qemu-system-x86-arm64-${closureHash(pkgs)}.tar`;
}

/** The cached tarball of the extracted packages, made with mmdebstrap if it is not there yet. */
export async function hostQemuTarball(pkgs: readonly DebPackage[], debsDir: string): Promise<string> {
  const tarball = path.join(debsDir, hostQemuTarballName(pkgs));
  if (existsSync(tarball)) return tarball;
  requireTools(['mmdebstrap']);
  const sources = readAptSources();
  const mirrors = mirrorLinesFor(sources, 'arm64');
  const suite = sources[0]?.suite;
  if (!suite || mirrors.length === 0) throw new Error('no usable apt sources in /etc/apt for arm64 packages');
  const partial = `${tarball}.partial-${process.pid}`;
  try {
    await run(
      tool('mmdebstrap'),
      [
        '--quiet',
        '--variant=extract',
        '--architectures=arm64',
        '--format=tar',
        // Exactly the versions the cache key was computed from; a mirror that moved on is an error, not a surprise.
        `--include=${pkgs.map((p) => `${p.name}=${p.version}`).join(',')}`,
        suite,
        partial,
        ...mirrors,
      ],
      { inheritStderr: true },
    );
    renameSync(partial, tarball);
  } finally {
    rmSync(partial, { force: true });
  }
  return tarball;
}

/** Unpacks the cached tree into a root file system being staged, minus documentation. */
export async function unpackHostQemu(tarball: string, root: string): Promise<void> {
  // Device nodes stay out: the guest's /dev is a devtmpfs, and only root could create them here.
  await run(tool('tar'), [
    '--extract',
    '--file',
    tarball,
    '--directory',
    root,
    '--no-same-owner',
    '--exclude=./dev/*',
  ]);
  for (const p of PRUNE) rmSync(path.join(root, p), { recursive: true, force: true });
}

/** Resolves a path inside `root` the way the guest will, following absolute symlinks within it. */
function resolveInRoot(root: string, guestPath: string, depth = 0): string | undefined {
  if (depth > 20) return undefined;
  const parts = guestPath.split('/').filter(Boolean);
  let at = '/';
  for (let i = 0; i < parts.length; i++) {
    const next = path.posix.join(at, parts[i]!);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path.join(root, next));
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(path.join(root, next));
      const base = target.startsWith('/') ? target : path.posix.join(at, target);
      return resolveInRoot(root, path.posix.join(base, ...parts.slice(i + 1)), depth + 1);
    }
    at = next;
  }
  return path.join(root, at);
}

/**
 * Build-time proof that the nested QEMU can start: it runs (through qemu-user) and prints its
 * version, and the firmware it loads resolves inside the guest's tree (not the host's).
 */
export async function checkHostQemu(root: string): Promise<string> {
  const bin = path.join(root, 'usr/bin/qemu-system-x86_64');
  if (!existsSync(bin)) throw new Error('the extracted tree has no usr/bin/qemu-system-x86_64');
  const { stdout } = await run(tool('qemu-aarch64-static'), ['-L', root, bin, '--version']);
  const version = /QEMU emulator version (\S+)/.exec(stdout)?.[1];
  if (!version)
    throw new Error(`qemu-system-x86_64 --version printed no version under qemu-user: ${stdout.trim()}`);
  // `-L help` lists the firmware directories this build searches (Debian adds seabios and ipxe).
  const dirs = (await run(tool('qemu-aarch64-static'), ['-L', root, bin, '-L', 'help'])).stdout
    .split('\n')
    .filter(Boolean)
    // Relative to the binary, so seen through qemu-user they start with our staging path.
    .map((d) => path.posix.normalize(d.startsWith(root) ? d.slice(root.length) : d));
  const missing = FIRMWARE.filter((f) => !dirs.some((d) => resolveInRoot(root, path.posix.join(d, f))));
  if (missing.length) throw new Error(`nested qemu-system-x86_64 would miss firmware: ${missing.join(', ')}`);
  return version;
}
