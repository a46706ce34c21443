// Which exact Debian packages the guests are built from. Asking apt takes several seconds
// (its dependency solver loads every package list), so the answer is remembered together
// with a fingerprint of apt's state; as long as apt's lists and configuration are unchanged
// the remembered answer is the one apt would give, and a cached re-run stays fast.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DebPackage } from './apt.ts';
import {
  candidates,
  closure,
  ensureForeignArch,
  kernelPackageNames,
  kernelSourcePackageName,
} from './apt.ts';

export interface Resolution {
  /**
   * busybox-static per architecture, Debian's kernel for the architectures that boot it, and
   * the kernel source the others are built from.
   */
  base: DebPackage[];
  /** qemu-system-x86 for arm64 with everything it depends on. */
  hostQemu: DebPackage[];
}

const APT_STATE = [
  '/var/lib/apt/lists',
  '/var/lib/dpkg/arch',
  '/etc/apt/sources.list',
  '/etc/apt/sources.list.d',
  '/etc/apt/preferences',
  '/etc/apt/preferences.d',
  '/etc/apt/apt.conf.d',
];

/** Names, sizes and times of the files apt's answers depend on. */
function aptFingerprint(inputs: string): string {
  const h = createHash('sha256').update(inputs);
  for (const p of APT_STATE) {
    if (!existsSync(p)) continue;
    const st = statSync(p);
    const files = st.isDirectory() ? readdirSync(p).map((f) => path.join(p, f)) : [p];
    for (const f of files.sort()) {
      const s = statSync(f);
      if (s.isFile()) h.update(`${f} ${s.size} ${s.mtimeMs}\n`);
    }
  }
  return h.digest('hex');
}

export async function resolvePackages(
  arches: readonly string[],
  kernelArches: readonly string[],
  hostQemuPkgs: readonly string[],
  memoFile: string,
): Promise<Resolution & { fromMemo: boolean }> {
  const question = JSON.stringify({ arches, kernelArches, source: 'linux-source', hostQemuPkgs });
  const fingerprint = aptFingerprint(question);
  if (existsSync(memoFile)) {
    try {
      const memo = JSON.parse(readFileSync(memoFile, 'utf8')) as Resolution & { fingerprint: string };
      if (memo.fingerprint === fingerprint)
        return { base: memo.base, hostQemu: memo.hostQemu, fromMemo: true };
    } catch {
      // an unreadable memo is simply asked again
    }
  }
  for (const a of arches) await ensureForeignArch(a);
  const kernels = await kernelPackageNames(kernelArches);
  const specs = [
    ...kernelArches.map((a) => `${kernels.get(a)}:${a}`),
    ...arches.map((a) => `busybox-static:${a}`),
    await kernelSourcePackageName(),
  ];
  const versions = await candidates(specs);
  const base = specs.map((s): DebPackage => {
    const [name, arch = 'all'] = s.split(':') as [string, string?]; // linux-source is arch all
    return { name, arch, version: versions.get(s)! };
  });
  const hostQemu = await closure(hostQemuPkgs, 'arm64');
  // ensureForeignArch may have changed apt's state; fingerprint what the answer came from.
  const res = { base, hostQemu };
  writeFileSync(memoFile, `${JSON.stringify({ fingerprint: aptFingerprint(question), ...res }, null, 2)}\n`);
  return { ...res, fromMemo: false };
}
