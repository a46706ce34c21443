// Where the user-mode emulator and proot come from: the static qemu-user shipped beside the
// app first (a known version that works inside any root filesystem), then PATH.
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archNames, normalizeArch } from '../../common/arch.ts';
import { bundleBinDir, bundleRootFor } from '../bundle/layout.ts';
import { resourcesDir } from '../paths.ts';
import { readElf } from './elf.ts';

export interface QemuUser {
  arch: string;
  path: string;
  source: 'bundled' | 'path';
  /** No dynamic loader: usable inside a foreign root filesystem and with binfmt's F flag. */
  isStatic: boolean;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A program on PATH, or in the sbin directories ordinary users often lack on PATH. */
export function which(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [
    ...(env.PATH ?? '').split(path.delimiter),
    '/usr/local/bin',
    '/usr/bin',
    '/bin',
    '/usr/sbin',
    '/sbin',
  ];
  for (const dir of dirs) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, cmd);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** The bundled QEMU's directory for this host: resources/qemu/<platform>-<arch>/bin. */
export function bundledQemuBin(resources = resourcesDir()): string {
  return bundleBinDir(bundleRootFor(resources));
}

/** The canonical architecture of this machine. */
export function hostArch(): string {
  return normalizeArch(os.machine());
}

/** Architectures whose programs this machine runs without an emulator. */
export function nativeArches(host = hostArch()): string[] {
  // x86-64 kernels run 32-bit x86 programs; 32-bit Arm on 64-bit Arm hosts is not guaranteed.
  return host === 'x86_64' ? ['x86_64', 'i686'] : [host];
}

/** Finds qemu-<arch>-static (or qemu-<arch>) for an architecture; throws one line when there is none. */
export async function findQemuUser(
  arch: string,
  opts: { env?: NodeJS.ProcessEnv; resources?: string } = {},
): Promise<QemuUser> {
  const canonical = normalizeArch(arch);
  const base = archNames(canonical).qemuUser;
  const names = [`${base}-static`, base];
  const bundledDir = bundledQemuBin(opts.resources);
  const candidates: Array<{ path: string; source: QemuUser['source'] }> = [];
  for (const n of names) candidates.push({ path: path.join(bundledDir, n), source: 'bundled' });
  for (const n of names) {
    const p = which(n, opts.env);
    if (p) candidates.push({ path: p, source: 'path' });
  }
  for (const c of candidates) {
    if (!executable(c.path)) continue;
    const elf = await readElf(c.path).catch(() => undefined);
    return { arch: canonical, path: c.path, source: c.source, isStatic: elf ? !elf.interpreter : false };
  }
  throw new Error(
    `no user-mode QEMU for ${canonical}: looked for ${names.join(' and ')} in ${bundledDir} and on PATH (on Debian/Ubuntu: apt-get install qemu-user-static)`,
  );
}

/** proot (chroot without root), or undefined. */
export function findProot(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const bundled = path.join(bundledQemuBin(), 'proot');
  return executable(bundled) ? bundled : which('proot', env);
}
