// The host tools the guest builder needs, each with the Debian package that ships it, so a
// missing one is reported as one line the user can act on.
import { which } from './exec.ts';

export const TOOL_PACKAGES = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  dpkg: 'dpkg',
  'dpkg-deb': 'dpkg',
  mke2fs: 'e2fsprogs',
  dumpe2fs: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  sfdisk: 'fdisk',
  dd: 'coreutils',
  cpio: 'cpio',
  gzip: 'gzip',
  bzip2: 'bzip2',
  tar: 'tar',
  mmdebstrap: 'mmdebstrap',
  'qemu-aarch64-static': 'qemu-user-static',
  fakeroot: 'fakeroot',
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

const resolved = new Map<Tool, string>();

/** Checks that every tool is present; throws one line naming the Debian packages to install. */
export function requireTools(tools: readonly Tool[]): void {
  const missing = tools.filter((t) => {
    const at = resolved.get(t) ?? which(t);
    if (at) resolved.set(t, at);
    return !at;
  });
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t]))];
  const named = missing.map((t) => `${t} (${TOOL_PACKAGES[t]})`).join(', ');
  throw new Error(`missing host tools: ${named} — install them with: apt-get install ${pkgs.join(' ')}`);
}

/** Absolute path of a tool checked by requireTools (sbin tools are not on every user's PATH). */
export function tool(name: Tool): string {
  requireTools([name]);
  return resolved.get(name)!;
}
