// A Debian kernel package unpacked on disk: its image, device trees and modules. Debian
// ships no modules.dep (depmod runs at install time), so dependencies are read from each
// module's own .modinfo section, which works for any architecture without running depmod.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { compactElf, pvhEntry } from '../../electron/engine/image/pvh.ts';
import { run } from './exec.ts';

export interface KernelModule {
  name: string; // normalised: dashes become underscores, as the kernel names them
  rel: string; // path under lib/modules/<kver>/, e.g. kernel/fs/ext4/ext4.ko
  file: string; // absolute path in the unpacked package
}

export class KernelTree {
  readonly modulesDir: string;
  private index?: Map<string, KernelModule>;
  private builtin?: Set<string>;

  constructor(
    readonly root: string,
    readonly kver: string,
  ) {
    this.modulesDir = path.join(root, 'lib', 'modules', kver);
    if (!existsSync(this.image)) throw new Error(`kernel package for ${kver} has no ${this.image}`);
  }

  /** Finds the single kernel version unpacked under `root`. */
  static open(root: string): KernelTree {
    const kvers = readdirSync(path.join(root, 'lib', 'modules'));
    if (kvers.length !== 1)
      throw new Error(`expected one kernel under ${root}/lib/modules, found ${kvers.length}`);
    return new KernelTree(root, kvers[0]!);
  }

  get image(): string {
    return path.join(this.root, 'boot', `vmlinuz-${this.kver}`);
  }

  get config(): string {
    return path.join(this.root, 'boot', `config-${this.kver}`);
  }

  dtb(rel: string): string {
    const f = path.join(this.root, 'usr', 'lib', `linux-image-${this.kver}`, rel);
    if (!existsSync(f)) throw new Error(`kernel ${this.kver} ships no device tree ${rel}`);
    return f;
  }

  module(name: string): KernelModule | undefined {
    return this.modules().get(normalise(name));
  }

  isBuiltin(name: string): boolean {
    if (!this.builtin) {
      const list = readFileSync(path.join(this.modulesDir, 'modules.builtin'), 'utf8');
      this.builtin = new Set(list.split('\n').map((l) => normalise(path.basename(l).replace(/\.ko$/, ''))));
    }
    return this.builtin.has(normalise(name));
  }

  /**
   * The modules to load for `wanted`, dependencies first, each once. Built-in names are
   * skipped; an unknown name is an error, so a typo cannot silently drop a driver.
   */
  async resolve(wanted: readonly string[]): Promise<KernelModule[]> {
    const order: KernelModule[] = [];
    const seen = new Set<string>();
    const visit = async (name: string, chain: string[]): Promise<void> => {
      const n = normalise(name);
      if (seen.has(n)) return;
      seen.add(n);
      const mod = this.module(n);
      if (!mod) {
        if (this.isBuiltin(n)) return;
        throw new Error(
          `kernel ${this.kver} has no module ${name}${chain.length ? ` (needed by ${chain.join(' → ')})` : ''}`,
        );
      }
      const info = parseModinfo(await moduleBytes(mod.file));
      for (const dep of info.depends) await visit(dep, [...chain, n]);
      order.push(mod);
    };
    for (const w of wanted) await visit(w, []);
    return order;
  }

  private modules(): Map<string, KernelModule> {
    if (this.index) return this.index;
    const index = new Map<string, KernelModule>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const abs = path.join(dir, e.name);
        if (e.isDirectory()) walk(abs);
        else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) {
          const name = normalise(e.name.replace(/\.ko(\.xz|\.zst|\.gz)?$/, ''));
          index.set(name, { name, rel: path.relative(this.modulesDir, abs), file: abs });
        }
      }
    };
    walk(path.join(this.modulesDir, 'kernel'));
    this.index = index;
    return index;
  }
}

export function normalise(name: string): string {
  return name.replace(/-/g, '_');
}

/** A module's bytes, decompressed if Debian shipped it compressed (busybox insmod wants plain ELF). */
export async function moduleBytes(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return readFileSync(file);
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : 'gzip';
  return (await run(tool, ['-dc', file])).stdoutBytes;
}

export interface Modinfo {
  depends: string[];
  fields: Map<string, string[]>;
}

/** Reads the NUL-separated key=value pairs of an ELF64 little-endian module's .modinfo section. */
export function parseModinfo(elf: Buffer): Modinfo {
  if (elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (elf[4] !== 2 || elf[5] !== 1) throw new Error('only ELF64 little-endian modules are supported');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      name: elf.readUInt32LE(at),
      offset: Number(elf.readBigUInt64LE(at + 24)),
      size: Number(elf.readBigUInt64LE(at + 32)),
    };
  };
  const strtab = section(shstrndx);
  const nameOf = (off: number) => {
    const start = strtab.offset + off;
    return elf.toString('latin1', start, elf.indexOf(0, start));
  };
  const fields = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.name) !== '.modinfo') continue;
    for (const pair of elf.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const k = pair.slice(0, eq);
      fields.set(k, [...(fields.get(k) ?? []), pair.slice(eq + 1)]);
    }
  }
  const depends = (fields.get('depends') ?? []).flatMap((d) => d.split(',')).filter(Boolean);
  return { depends, fields };
}

/**
 * The uncompressed kernel ELF inside an x86 bzImage (its payload, after the real-mode setup
 * sectors), made compact: what Yocto deploys as vmlinux-<MACHINE>.bin, for PVH boots.
 * Debian compresses the payload with xz and the x86 BCJ filter, which only xz itself decodes;
 * the payload ends with the unpacked size, so xz must stop after one stream.
 */
export function vmlinuxFromBzImage(bzImage: string): Buffer {
  const b = readFileSync(bzImage);
  if (b.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error(`${bzImage} is not a bzImage`);
  const start = ((b[0x1f1] || 4) + 1) * 512 + b.readUInt32LE(0x248);
  const payload = b.subarray(start, start + b.readUInt32LE(0x24c));
  const isXz = payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  const elf = isXz
    ? spawnSync('xz', ['-dc', '--single-stream'], { input: payload, maxBuffer: 512 << 20 })
    : { status: 0, stdout: gunzipSync(payload), stderr: Buffer.alloc(0) };
  if (elf.status !== 0)
    throw new Error(`xz could not unpack the ${bzImage} payload: ${String(elf.stderr).trim()}`);
  if (pvhEntry(elf.stdout) === undefined) throw new Error(`${bzImage} has no PVH entry point (CONFIG_PVH)`);
  return compactElf(elf.stdout);
}
