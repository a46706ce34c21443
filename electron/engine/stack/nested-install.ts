// Nested image install, as meta-stacklab's vm-guest-images-install does at build time:
// the nested guest's kernel, initramfs and disk go into the parent's root filesystem
// under /var/lib/virt/images/, with a launch manifest the in-guest agent reads. Done
// before boot, on a derived copy of the parent's base (libext2fs in WASM: no root, no
// loop mounts, any host OS); the parent's base image is never written.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Ext4Fs, withExt4 } from '../disk/ext4.ts';
import { deriveBase } from '../disk/workbase.ts';
import type { ImageDescriptor } from '../image/descriptor.ts';
import { compactElf } from '../image/pvh.ts';
import { qbTokens } from '../image/qb-tokens.ts';
import { resourcesDir } from '../paths.ts';
import type { VirtioBus } from './nested-machine.ts';

const run = promisify(execFile);

export const IMAGES_DIR = '/var/lib/virt/images';
export const AGENT_PORT = 'stacklab.agent';

export interface NestedGuest {
  name: string;
  desc: ImageDescriptor;
  memMiB: number;
  smp: number;
  /** The ports on the parent's virtio-serial bus this guest's console, monitor and QMP use. */
  ports: { console: string; monitor: string; qmp: string };
  /** An uncompressed vmlinux with a PVH entry to boot instead of the image's bzImage (pvh.ts). */
  pvhKernel?: string;
  /** Kernel command line and machine/CPU options, as runqemu would give them. */
  append: string;
  qemuArgs: string[];
  /** Where the agent attaches virtio devices: PCI, or MMIO on microvm (nested-machine.ts). */
  bus: VirtioBus;
  /** Which machine and why, for the stack's log. */
  machineWhy: string;
}

/** The launch manifest, in the one-key-per-line form busybox sed in the agent can read. */
export function manifestText(
  g: NestedGuest,
  files: { kernel: string; initrd?: string; disk: string },
): string {
  const q = (s: string) => {
    if (/["'\\\n]/.test(s))
      throw new Error(`a nested guest's ${s} cannot hold quotes, backslashes or newlines`);
    return `"${s}"`;
  };
  const lines = [
    `  "name": ${q(g.name)},`,
    `  "arch": ${q(g.desc.arch)},`,
    `  "machine": ${q(g.desc.machine)},`,
    `  "qemu": ${q(g.desc.systemBinary)},`,
    `  "kernel": ${q(files.kernel)},`,
    ...(files.initrd ? [`  "initrd": ${q(files.initrd)},`] : []),
    `  "disk": ${q(files.disk)},`,
    `  "diskFormat": "qcow2",`,
    `  "memory": ${g.memMiB},`,
    `  "smp": ${g.smp},`,
    `  "append": ${q(g.append)},`,
    `  "qemuArgs": [${g.qemuArgs.map(q).join(', ')}],`,
    `  "bus": ${q(g.bus)},`,
    `  "monitor": ${q(g.ports.monitor)},`,
    `  "qmp": ${q(g.ports.qmp)},`,
    `  "console": ${q(g.ports.console)}`,
  ];
  return `{\n${lines.join('\n')}\n}\n`;
}

/** The initramfs a qemuboot.conf passes with `-initrd` in qb_opt_append, if any. */
export function initrdOf(desc: ImageDescriptor): string | undefined {
  const toks = qbTokens(desc.conf, 'qb_opt_append');
  const i = toks.indexOf('-initrd');
  const v = i >= 0 ? toks[i + 1] : undefined;
  return v ? path.resolve(desc.deployDir, v.replace('@DEPLOY_DIR_IMAGE@', desc.deployDir)) : undefined;
}

export function agentScriptPath(): string {
  return path.join(
    resourcesDir(),
    'yocto',
    'meta-stacklab',
    'recipes-stacklab',
    'stacklab-agent',
    'files',
    'stacklab-agent',
  );
}

/** Path, size and mtime: changes when the file does, without reading it. */
export function fileKey(p: string): string {
  const st = statSync(p);
  return `${p}:${st.size}:${st.mtimeMs}`;
}

/**
 * A raw copy of the parent's base with the nested guests and the agent installed.
 * Cached by everything that goes into it, so booting the same stack again costs nothing.
 */
export async function installNested(opts: {
  qemuImg: string;
  parent: ImageDescriptor;
  guests: NestedGuest[];
  cacheDir: string;
}): Promise<{ path: string; format: 'raw'; cached: boolean }> {
  const agent = agentScriptPath();
  const h = createHash('sha256');
  h.update(fileKey(opts.parent.rootfs));
  h.update(readFileSync(agent));
  for (const g of opts.guests) {
    h.update(JSON.stringify({ ...g, desc: undefined }));
    for (const f of [g.desc.kernel, g.pvhKernel, initrdOf(g.desc), g.desc.rootfs])
      if (f) h.update(fileKey(f));
  }
  const key = `nested-${h.digest('hex').slice(0, 24)}`;
  const r = await deriveBase({
    base: opts.parent.rootfs,
    baseFormat: opts.parent.rootfsFormat,
    dir: opts.cacheDir,
    key,
    qemuImg: opts.qemuImg,
    edit: async (img) => {
      const offset = img.partitions.root?.offset ?? 0;
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-nested-'));
      try {
        // qcow2 keeps only the blocks in use: the parent's filesystem holds far less than the raw image.
        const disks = new Map<string, string>();
        for (const g of opts.guests) {
          const out = path.join(tmp, `${g.name}.qcow2`);
          await run(opts.qemuImg, [
            'convert',
            '-U',
            '-f',
            g.desc.rootfsFormat,
            '-O',
            'qcow2',
            g.desc.rootfs,
            out,
          ]);
          disks.set(g.name, out);
        }
        await withExt4(img.path, { offset, write: true }, async (fs) => {
          await fs.mkdirp(IMAGES_DIR);
          for (const g of opts.guests) await installOne(fs, g, disks.get(g.name)!, tmp);
          await fs.copyIn(agent, '/usr/bin/stacklab-agent', { mode: 0o755 });
          await addInittabLine(fs, '::respawn:/usr/bin/stacklab-agent serve');
        });
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    },
  });
  return { path: r.path, format: 'raw', cached: r.cached };
}

async function installOne(fs: Ext4Fs, g: NestedGuest, disk: string, tmp: string): Promise<void> {
  if (!g.desc.kernel) throw new Error(`${g.desc.id} has no kernel to install for a nested boot`);
  const files = {
    kernel: `${IMAGES_DIR}/${g.name}.${g.pvhKernel ? 'vmlinux' : 'kernel'}`,
    initrd: initrdOf(g.desc) ? `${IMAGES_DIR}/${g.name}.initrd` : undefined,
    disk: `${IMAGES_DIR}/${g.name}.qcow2`,
  };
  if (g.pvhKernel) {
    // Only the loadable bytes: the parent's root file system has little room to spare.
    const compact = path.join(tmp, `${g.name}.vmlinux`);
    writeFileSync(compact, compactElf(readFileSync(g.pvhKernel)));
    await fs.copyIn(compact, files.kernel);
  } else {
    await fs.copyIn(g.desc.kernel, files.kernel);
  }
  const initrd = initrdOf(g.desc);
  if (initrd && files.initrd) await fs.copyIn(initrd, files.initrd);
  await fs.copyIn(disk, files.disk);
  await fs.writeFile(`${IMAGES_DIR}/${g.name}.json`, manifestText(g, files));
}

/** busybox init: the agent serves the app over its virtio-serial port from boot on. */
async function addInittabLine(fs: Ext4Fs, line: string): Promise<void> {
  const text = (await fs.exists('/etc/inittab')) ? (await fs.readFile('/etc/inittab')).toString('utf8') : '';
  if (text.includes(line)) return;
  await fs.writeFile('/etc/inittab', `${text.replace(/\n?$/, '\n')}${line}\n`);
}
