// Finding QEMU: the copy bundled with the app first, then a path the user configured, then
// PATH. The answer says which one won and why, so the UI and `stacklab doctor` can tell
// the user in one sentence.
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { resourcesDir } from '../paths.ts';
import { firstLine, runCapture } from './run.ts';

export type QemuSource = 'bundled' | 'configured' | 'system';

export interface QemuInstall {
  source: QemuSource;
  /** One sentence: why this QEMU was chosen. */
  why: string;
  dir: string;
  /** 'qemu-system-aarch64' → absolute path of the binary. */
  systems: Record<string, string>;
  /** qemu-img, needed for overlay disks. */
  img?: string;
}

export interface FindQemuOptions {
  bundledDir?: string;
  configuredPath?: string;
  env?: NodeJS.ProcessEnv;
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  text: string;
}

export interface MachineInfo {
  name: string;
  description: string;
  isDefault: boolean;
  alias?: string;
}

const exe = process.platform === 'win32' ? '.exe' : '';
// qemu-system-x86_64, qemu-system-aarch64.exe; Windows also ships "…w.exe" console-less twins.
const SYSTEM_RE = /^(qemu-system-[A-Za-z0-9_]+)(\.exe)?$/i;

export function defaultBundledDir(): string {
  return path.join(resourcesDir(), 'qemu', `${process.platform}-${process.arch}`, 'bin');
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    if (process.platform !== 'win32') accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The qemu-system-* binaries in one directory, keyed by name without `.exe`. */
export function systemsIn(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const n of names) {
    const m = SYSTEM_RE.exec(n);
    if (!m?.[1]) continue;
    const key = m[1].toLowerCase();
    if (
      process.platform === 'win32' &&
      key.endsWith('w') &&
      names.some((o) => o.toLowerCase() === `${key.slice(0, -1)}.exe`)
    ) {
      continue;
    }
    const full = path.resolve(dir, n);
    if (isExecutableFile(full)) out[key] = full;
  }
  return out;
}

function imgIn(dir: string): string | undefined {
  const p = path.resolve(dir, `qemu-img${exe}`);
  return isExecutableFile(p) ? p : undefined;
}

function pathDirs(env: NodeJS.ProcessEnv): string[] {
  const raw = env.PATH ?? env.Path ?? '';
  return raw.split(path.delimiter).filter((d) => d.length > 0);
}

function installHint(): string {
  if (process.platform === 'darwin') return 'install it with: brew install qemu';
  if (process.platform === 'win32')
    return "install QEMU for Windows and set its folder in Stacklab's settings";
  return 'install it with: apt-get install qemu-system-arm qemu-system-x86 qemu-utils (Debian/Ubuntu)';
}

export async function findQemu(opts: FindQemuOptions = {}): Promise<QemuInstall> {
  const env = opts.env ?? process.env;
  const bundled = opts.bundledDir ?? defaultBundledDir();
  const misses: string[] = [];

  const bundledSystems = systemsIn(bundled);
  if (Object.keys(bundledSystems).length > 0) {
    return {
      source: 'bundled',
      why: `using the QEMU bundled with Stacklab in ${bundled}`,
      dir: bundled,
      systems: bundledSystems,
      img: imgIn(bundled),
    };
  }
  misses.push(`no bundled QEMU in ${bundled}`);

  if (opts.configuredPath) {
    const found = fromConfigured(opts.configuredPath);
    if (found) {
      return {
        source: 'configured',
        why: `${misses.join('; ')}; using the configured QEMU in ${found.dir}`,
        dir: found.dir,
        systems: found.systems,
        img: imgIn(found.dir),
      };
    }
    misses.push(`the configured path ${opts.configuredPath} has no qemu-system binary`);
  }

  const systems: Record<string, string> = {};
  let dir: string | undefined;
  let img: string | undefined;
  for (const d of pathDirs(env)) {
    const here = systemsIn(d);
    for (const [k, v] of Object.entries(here)) systems[k] ??= v;
    if (!dir && Object.keys(here).length > 0) dir = path.resolve(d);
    img ??= imgIn(d);
  }
  if (dir) {
    return {
      source: 'system',
      why: `${misses.join('; ')}; using ${dir} from PATH`,
      dir,
      systems,
      img: imgIn(dir) ?? img,
    };
  }
  throw new Error(`No QEMU found (${misses.join('; ')}; none on PATH): ${installHint()}`);
}

function fromConfigured(p: string): { dir: string; systems: Record<string, string> } | undefined {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p);
  } catch {
    return undefined;
  }
  if (st.isDirectory()) {
    for (const d of [p, path.join(p, 'bin')]) {
      const systems = systemsIn(d);
      if (Object.keys(systems).length > 0) return { dir: path.resolve(d), systems };
    }
    return undefined;
  }
  const m = SYSTEM_RE.exec(path.basename(p));
  if (!m?.[1] || !isExecutableFile(p)) return undefined;
  const dir = path.dirname(path.resolve(p));
  // The siblings come from the same build, so offer them too; the named binary always wins.
  return { dir, systems: { ...systemsIn(dir), [m[1].toLowerCase()]: path.resolve(p) } };
}

// Version and machine lists depend only on the binary: remember them per file identity.
const memo = new Map<string, Promise<unknown>>();
function memoFor<T>(kind: string, bin: string, make: () => Promise<T>): Promise<T> {
  let id = bin;
  try {
    const st = statSync(bin);
    id = `${bin}|${st.size}|${st.mtimeMs}`;
  } catch {
    // Let the command itself report the missing file.
  }
  const key = `${kind}|${id}`;
  let p = memo.get(key) as Promise<T> | undefined;
  if (!p) {
    p = make();
    memo.set(key, p);
    p.catch(() => memo.delete(key));
  }
  return p;
}

/** Parses the first line of `--version`, e.g. "QEMU emulator version 7.2.22 (Debian …)". */
export function parseVersion(text: string): QemuVersion {
  const line = firstLine(text);
  const m = /version\s+(\d+)\.(\d+)(?:\.(\d+))?/i.exec(line);
  if (!m) throw new Error(`cannot read a QEMU version from "${line}"`);
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), text: line };
}

export function qemuVersion(bin: string): Promise<QemuVersion> {
  return memoFor('version', bin, async () => parseVersion((await runCapture(bin, ['--version'])).stdout));
}

/** Parses `-machine help`: "virt   QEMU 7.2 ARM Virtual Machine (alias of virt-7.2)". */
export function parseMachines(text: string): MachineInfo[] {
  const out: MachineInfo[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (!line || /^supported machines/i.test(line)) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    let description = (m[2] ?? '').trim();
    let isDefault = false;
    let alias: string | undefined;
    for (;;) {
      const tail = /\s*\((default|alias of ([^)]+)|deprecated)\)$/.exec(description);
      if (!tail) break;
      if (tail[1] === 'default') isDefault = true;
      else if (tail[2]) alias = tail[2].trim();
      description = description.slice(0, tail.index).trim();
    }
    out.push({ name: m[1], description, isDefault, ...(alias ? { alias } : {}) });
  }
  return out;
}

export function listMachines(bin: string): Promise<MachineInfo[]> {
  return memoFor('machines', bin, async () =>
    parseMachines((await runCapture(bin, ['-machine', 'help'])).stdout),
  );
}

export async function hasMachine(bin: string, name: string): Promise<boolean> {
  return (await listMachines(bin)).some((m) => m.name === name);
}

/** "qemu-system-aarch64" → "aarch64": the architecture the binary emulates. */
export function targetOf(systemName: string): string {
  return path
    .basename(systemName)
    .replace(/\.exe$/i, '')
    .replace(/^qemu-system-/, '');
}
