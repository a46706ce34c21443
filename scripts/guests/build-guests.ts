// `npm run guests`: builds Stacklab's demo guests from Debian packages into
// <cacheHome>/guests/<key>/ (Yocto-style deploy dirs plus guests.json) and points
// <cacheHome>/guests/current at it. <key> hashes this builder's sources and the exact Debian
// versions used, so a second run with nothing changed only refreshes the symlink.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheHome } from '../../electron/engine/paths.ts';
import type { DebPackage } from './apt.ts';
import { debFileName, download, extractDeb, nativeArch } from './apt.ts';
import { readAptSources } from './apt-sources.ts';
import type { ArchInputs, GuestEntry } from './assemble.ts';
import { buildGuest } from './assemble.ts';
import { run } from './exec.ts';
import { GUESTS } from './guests.ts';
import { HOST_QEMU_PACKAGES, hostQemuTarball, hostQemuTarballName } from './host-qemu.ts';
import { KernelTree } from './kernel.ts';
import { type BuiltKernel, buildKernel, olderKernels } from './kernel-build.ts';
import { olderBuilds, remove, totalMiB, unusedDownloads } from './prune.ts';
import { resolvePackages } from './resolve.ts';
import { requireTools, tool } from './tools.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STEPS = 5 + GUESTS.length;
const ARCHES = ['arm64', 'amd64'] as const;
// Architectures with a guest that boots Debian's own kernel; the others' kernels are built.
const KERNEL_ARCHES = ARCHES.filter((a) => GUESTS.some((g) => g.debArch === a && !g.kernelBuild));
const FRAGMENTS = [...new Set(GUESTS.flatMap((g) => (g.kernelBuild ? [g.kernelBuild] : [])))];

function step(n: number, what: string): void {
  console.log(`[${n}/${STEPS}] ${what}`);
}
const detail = (line: string) => console.log(`      ${line}`);

/** Hash of the builder's own sources and every package version that goes into the guests. */
function buildKey(pkgs: readonly DebPackage[]): string {
  const h = createHash('sha256');
  for (const f of readdirSync(HERE).sort()) {
    if (!f.endsWith('.ts')) continue;
    h.update(`${f}\0`);
    h.update(readFileSync(path.join(HERE, f)));
  }
  for (const f of FRAGMENTS) h.update(readFileSync(path.join(HERE, 'kernel', f)));
  // Engine code the builder runs (the PVH kernel compaction) shapes the output too.
  h.update(readFileSync(path.join(HERE, '../../electron/engine/image/pvh.ts')));
  for (const p of pkgs) h.update(`${p.name} ${p.arch} ${p.version}\n`);
  return h.digest('hex').slice(0, 12);
}

function pointCurrent(top: string, key: string): void {
  const tmp = path.join(top, `.current-${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(key, tmp);
  renameSync(tmp, path.join(top, 'current'));
}

async function busyboxApplets(busybox: string, debArch: string, native: string): Promise<string[]> {
  // The guest's busybox lists its own applets; a foreign one runs through qemu-user.
  const { stdout } =
    debArch === native
      ? await run(busybox, ['--list-full'])
      : await run(tool('qemu-aarch64-static'), [busybox, '--list-full']);
  return stdout.split('\n').filter(Boolean);
}

const USAGE = 'usage: npm run guests [-- --force] [-- --prune]';

async function main(): Promise<void> {
  const t0 = Date.now();
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--force' && a !== '--prune');
  if (unknown.length) throw new Error(`unknown option ${unknown[0]} (${USAGE})`);
  const top = path.join(cacheHome(), 'guests');
  const debsDir = path.join(top, 'debs');
  mkdirSync(top, { recursive: true });

  step(1, 'host tools and the exact Debian package versions');
  requireTools([
    'apt-get',
    'apt-cache',
    'dpkg',
    'dpkg-deb',
    'mke2fs',
    'dumpe2fs',
    'mkfs.vfat',
    'mcopy',
    'sfdisk',
  ]);
  requireTools(['dd', 'cpio', 'gzip', 'bzip2', 'tar', 'qemu-aarch64-static']);
  if (process.getuid?.() !== 0) requireTools(['fakeroot']);
  const resolved = await resolvePackages(
    ARCHES,
    KERNEL_ARCHES,
    HOST_QEMU_PACKAGES,
    path.join(top, 'resolved-packages.json'),
  );
  const { base: pkgs, hostQemu: hostPkgs } = resolved;
  if (resolved.fromMemo) detail('versions as apt resolved them last time (apt lists unchanged since)');
  const kernels = pkgs.filter((p) => p.name.startsWith('linux-image'));
  const source = pkgs.find((p) => p.name.startsWith('linux-source'))!;
  detail(`kernels ${kernels.map((p) => `${p.name} ${p.version}`).join(', ')}`);
  detail(`kernel source ${source.name} ${source.version} for ${FRAGMENTS.join(', ')}`);
  detail(`busybox-static ${pkgs.find((p) => p.name === 'busybox-static')!.version}`);
  detail(
    `qemu-system-x86:arm64 ${hostPkgs.find((p) => p.name === 'qemu-system-x86')?.version} + ${hostPkgs.length - 1} packages`,
  );
  const key = buildKey([...pkgs, ...hostPkgs]);
  const final = path.join(top, key);

  if (existsSync(path.join(final, 'guests.json')) && !args.includes('--force')) {
    pointCurrent(top, key);
    console.log(`demo guests ${key} are cached: ${path.join(top, 'current')} -> ${key} (${elapsed(t0)})`);
  } else {
    await build(key, pkgs, hostPkgs, top, debsDir);
    pointCurrent(top, key);
    console.log(`demo guests built in ${elapsed(t0)}: ${path.join(top, 'current')} -> ${key}`);
    for (const g of GUESTS) detail(`${g.name}: ${await totalMiB([path.join(final, g.name)])} MiB`);
  }

  const used = new Set([...pkgs.map(debFileName), hostQemuTarballName(hostPkgs)]);
  const info = JSON.parse(readFileSync(path.join(final, 'build-info.json'), 'utf8')) as {
    kernels?: string[];
  };
  const stale = [
    ...olderBuilds(top, key),
    ...unusedDownloads(debsDir, used),
    ...olderKernels(path.join(top, 'kernels'), new Set(info.kernels ?? [])),
  ];
  if (stale.length === 0) return;
  const mib = await totalMiB(stale);
  if (args.includes('--prune')) {
    remove(stale);
    console.log(`removed ${stale.length} older builds and downloads (${mib} MiB)`);
  } else {
    console.log(
      `${stale.length} older builds and downloads (${mib} MiB) kept; \`npm run guests -- --prune\` deletes them`,
    );
  }
}

/** Removes scratch directories left by builds that were killed (their process is gone). */
function removeAbandoned(top: string): void {
  for (const d of readdirSync(top)) {
    const pid = Number(/^\.build-[0-9a-f]+-(\d+)$/.exec(d)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(path.join(top, d), { recursive: true, force: true });
    }
  }
}

async function build(
  key: string,
  pkgs: DebPackage[],
  hostPkgs: DebPackage[],
  top: string,
  debsDir: string,
): Promise<void> {
  const native = await nativeArch();
  removeAbandoned(top);
  const tmp = path.join(top, `.build-${key}-${process.pid}`);
  const out = path.join(tmp, 'out');
  const work = path.join(tmp, 'work');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  try {
    step(2, `Debian packages into ${debsDir}`);
    const files = await download(pkgs, debsDir);

    step(3, `Debian kernels and modules (${KERNEL_ARCHES.join(', ')}), busybox for ${ARCHES.join(' and ')}`);
    const arch = {} as Record<(typeof ARCHES)[number], ArchInputs>;
    for (const a of ARCHES) {
      const kIdx = pkgs.findIndex((p) => p.arch === a && p.name.startsWith('linux-image'));
      const bIdx = pkgs.findIndex((p) => p.arch === a && p.name === 'busybox-static');
      const bdir = path.join(work, 'debs', `busybox-${a}`);
      await extractDeb(files[bIdx]!, bdir);
      let kernel: KernelTree | undefined;
      if (kIdx >= 0) {
        const kdir = path.join(work, 'debs', `kernel-${a}`);
        await extractDeb(files[kIdx]!, kdir);
        kernel = KernelTree.open(kdir);
      }
      const busybox = path.join(bdir, 'bin', 'busybox');
      arch[a] = {
        kernel,
        kernelPkg: kIdx >= 0 ? pkgs[kIdx] : undefined,
        busybox,
        busyboxPkg: pkgs[bIdx]!,
        applets: await busyboxApplets(busybox, a, native),
      };
      detail(
        `${a}: ${kernel ? `kernel ${kernel.kver}, ` : ''}busybox with ${arch[a].applets.length} applets`,
      );
    }

    const sIdx = pkgs.findIndex((p) => p.name.startsWith('linux-source'));
    step(4, `kernels built from ${pkgs[sIdx]!.name}`);
    const builtKernels = new Map<string, BuiltKernel>();
    for (const fragment of FRAGMENTS) {
      const kwork = path.join(work, 'kernel-build', fragment);
      mkdirSync(kwork, { recursive: true });
      const built = await buildKernel({
        sourcePkg: pkgs[sIdx]!,
        sourceDeb: files[sIdx]!,
        fragment: path.join(HERE, 'kernel', fragment),
        kernelsDir: path.join(top, 'kernels'),
        work: kwork,
        log: detail,
      });
      rmSync(kwork, { recursive: true, force: true });
      builtKernels.set(fragment, built);
    }

    step(5, 'qemu-system-x86 for arm64 (mmdebstrap --variant=extract)');
    const tarball = await hostQemuTarball(hostPkgs, debsDir);
    detail(`${hostPkgs.length} packages: ${path.basename(tarball)}`);

    const suite = readAptSources()[0]?.suite ?? 'stable';
    const entries: GuestEntry[] = [];
    for (const [i, spec] of GUESTS.entries()) {
      step(6 + i, `${spec.name} (${spec.machine}, ${spec.board})`);
      const ctx = {
        work,
        out,
        arch,
        builtKernels,
        hostQemu: { tarball, pkgs: hostPkgs },
        debianSuite: suite,
        log: detail,
      };
      entries.push(await buildGuest(spec, ctx));
    }
    writeFileSync(path.join(out, 'guests.json'), `${JSON.stringify(entries, null, 2)}\n`);
    const info = {
      key,
      builtAt: new Date().toISOString(),
      packages: [...pkgs, ...hostPkgs],
      kernels: [...builtKernels.values()].map((k) => k.key),
    };
    writeFileSync(path.join(out, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
    // Only a complete build ever appears under its key.
    const final = path.join(top, key);
    rmSync(final, { recursive: true, force: true });
    renameSync(out, final);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function elapsed(t0: number): string {
  const s = Math.round((Date.now() - t0) / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

main().catch((e: unknown) => {
  console.error(`npm run guests: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
