// What a workspace has built: the images in its deploy dirs, for the library.
//
// bitbake deploys to <TMPDIR>/deploy/images/<machine>/; TMPDIR is build/tmp, and
// build/tmp-<mc> for a multiconfig (conf/multiconfig/<mc>.conf appends "-<mc>"). Each image
// is there twice: timestamped files and stable "link names"
// <image>-<machine>.rootfs.<type> (from 4.3 on; field notes §2). Only link names are
// read, so each image shows once and always as its latest build.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Workspace } from './workspace.ts';

export interface BuiltImage {
  image: string;
  machine: string;
  /** 'qemu': has a qemuboot.conf (runqemu-style boot); 'sdcard': a wic disk image (Pi). */
  kind: 'qemu' | 'sdcard';
  deployDir: string;
  /** The multiconfig it was built in, when not the default one. */
  multiconfig?: string;
  files: {
    qemuboot?: string;
    rootfs?: string;
    qcow2?: string;
    wic?: string;
    bmap?: string;
    kernel?: string;
    dtbs?: string[];
  };
  sizeBytes: number;
  /** When the newest of its files was written. */
  builtAt: number;
}

const LINK =
  /^(.+)\.rootfs\.(qemuboot\.conf|ext4\.qcow2|ext4\.zst|ext4|wic\.bz2|wic\.zst|wic\.gz|wic\.xz|wic\.bmap|wic)$/;

function statOf(file: string): { size: number; mtimeMs: number } {
  try {
    const s = statSync(file); // follows the link to the real file
    return { size: s.size, mtimeMs: s.mtimeMs };
  } catch {
    return { size: 0, mtimeMs: 0 };
  }
}

/** The few qemuboot.conf keys this needs; the full parser belongs to the image module. */
function qemubootKernel(file: string): string | undefined {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*qb_default_kernel\s*=\s*(\S+)\s*$/.exec(line);
    if (m && m[1] !== 'none') return m[1];
  }
  return undefined;
}

function scanDeployDir(deployDir: string, machine: string, multiconfig?: string): BuiltImage[] {
  const byImage = new Map<string, BuiltImage>();
  const entries = readdirSync(deployDir);
  const dtbs = entries.filter((e) => e.endsWith('.dtb')).map((e) => path.join(deployDir, e));
  for (const name of entries) {
    const m = LINK.exec(name);
    if (!m) continue;
    const suffix = `-${machine}`;
    if (!m[1]!.endsWith(suffix)) continue;
    const image = m[1]!.slice(0, -suffix.length);
    const file = path.join(deployDir, name);
    if (!existsSync(file)) continue; // a dangling link: the build was cleaned
    const entry: BuiltImage = byImage.get(image) ?? {
      image,
      machine,
      kind: 'sdcard',
      deployDir,
      multiconfig,
      files: {},
      sizeBytes: 0,
      builtAt: 0,
    };
    const type = m[2]!;
    if (type === 'qemuboot.conf') entry.files.qemuboot = file;
    else if (type === 'ext4.qcow2') entry.files.qcow2 = file;
    else if (type.startsWith('ext4')) entry.files.rootfs = file;
    else if (type === 'wic.bmap') entry.files.bmap = file;
    else entry.files.wic = file;
    const st = statOf(file);
    entry.builtAt = Math.max(entry.builtAt, st.mtimeMs);
    byImage.set(image, entry);
  }
  const out: BuiltImage[] = [];
  for (const entry of byImage.values()) {
    if (entry.files.qemuboot) {
      entry.kind = 'qemu';
      const kernel = qemubootKernel(entry.files.qemuboot);
      if (kernel && existsSync(path.join(deployDir, kernel)))
        entry.files.kernel = path.join(deployDir, kernel);
    } else if (entry.files.wic) {
      entry.kind = 'sdcard';
      const kernel = ['Image', 'zImage'].map((k) => path.join(deployDir, k)).find((k) => existsSync(k));
      if (kernel) entry.files.kernel = kernel;
      if (dtbs.length) entry.files.dtbs = dtbs;
    } else {
      continue; // neither bootable nor a disk image (e.g. only a tarball)
    }
    const main = entry.files.wic ?? entry.files.rootfs ?? entry.files.qcow2;
    entry.sizeBytes = main ? statOf(main).size : 0;
    out.push(entry);
  }
  return out;
}

/** Every image the workspace has deployed, newest first. */
export function findBuiltImages(ws: Workspace): BuiltImage[] {
  const found: BuiltImage[] = [];
  if (!existsSync(ws.buildDir)) return found;
  for (const tmp of readdirSync(ws.buildDir)) {
    const m = /^tmp(?:-(.+))?$/.exec(tmp);
    if (!m) continue;
    const imagesDir = path.join(ws.buildDir, tmp, 'deploy', 'images');
    if (!existsSync(imagesDir)) continue;
    for (const machine of readdirSync(imagesDir)) {
      const deployDir = path.join(imagesDir, machine);
      if (!statSync(deployDir).isDirectory()) continue;
      found.push(...scanDeployDir(deployDir, machine, m[1]));
    }
  }
  return found.sort((a, b) => b.builtAt - a.builtAt);
}
