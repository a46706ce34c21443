// qemuboot.conf: the file Yocto writes next to every image so runqemu knows how to boot it
// (field notes §1). It is Python configparser output: one [config_bsp] section, lower-case
// keys, `key = value` with values that may themselves contain '=' or ':'. This reader keeps
// configparser's rules (comments, continuation lines, %% and %(key)s interpolation) so a file
// runqemu accepts reads the same here, and reports anything else with file:line.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Every key runqemu reads (scarthgap/walnascar; kirkstone lacks a few), plus what qemuboot.bbclass writes. */
export const QEMUBOOT_KEYS = [
  'qb_system_name',
  'qb_machine',
  'qb_cpu',
  'qb_cpu_kvm',
  'qb_smp',
  'qb_mem',
  'qb_kernel_cmdline_append',
  'qb_kernel_cmdline',
  'qb_kernel_root',
  'qb_default_kernel',
  'qb_default_bios',
  'qb_default_fstype',
  'qb_dtb',
  'qb_rootfs',
  'qb_rootfs_opt',
  'qb_rootfs_extra_opt',
  'qb_drive_type',
  'qb_fsinfo',
  'qb_network_device',
  'qb_tap_opt',
  'qb_slirp_opt',
  'qb_cmdline_ip_slirp',
  'qb_cmdline_ip_tap',
  'qb_net',
  'qb_serial_opt',
  'qb_tcpserial_opt',
  'qb_graphics',
  'qb_opt_append',
  'qb_rng',
  'qb_audio_drv',
  'qb_audio_opt',
  'qb_setup_cmd',
  'qb_cleanup_cmd',
  'qb_nfsrootfs_extra_opt',
  'machine',
  'deploy_dir_image',
  'kernel_imagetype',
  'image_link_name',
  'image_name',
  'serial_consoles',
  'staging_bindir_native',
  'staging_dir_native',
  'staging_dir_host',
  'tune_arch',
  'kernel_image_name',
  'kernel_image_bin_ext',
  'uninative_loader',
] as const;

export type QemuBootKey = (typeof QEMUBOOT_KEYS)[number];

export type QemuBoot = { [K in QemuBootKey]?: string } & {
  /** The file it was read from ('' when made from a board profile). */
  file: string;
  /** The directory relative paths are resolved against. */
  dir: string;
  /** Every key of [config_bsp] exactly as written (after %-interpolation), unknown ones too. */
  raw: Record<string, string>;
  /** Line number of each key, for error messages. */
  lineOf: Record<string, number>;
};

const SECTION = 'config_bsp';

/**
 * Parses qemuboot.conf text. `file` is used for error messages and to resolve relative
 * paths the way runqemu does ("../x" → absolute, "." → the file's directory).
 */
export function parseQemuboot(text: string, file: string): QemuBoot {
  const where = (n: number) => `${file}:${n}`;
  const sections = new Map<string, { values: Map<string, string>; lines: Map<string, number> }>();
  let current: { values: Map<string, string>; lines: Map<string, number> } | undefined;
  let lastKey: string | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  lines.forEach((line, i) => {
    const n = i + 1;
    const stripped = line.trim();
    if (stripped === '') {
      lastKey = undefined;
      return;
    }
    if (stripped.startsWith('#') || stripped.startsWith(';')) return;
    // configparser: an indented line continues the previous value.
    if (/^\s/.test(line) && lastKey && current) {
      current.values.set(lastKey, `${current.values.get(lastKey)}\n${stripped}`);
      return;
    }
    const sec = /^\[([^\]]+)\]\s*$/.exec(stripped);
    if (sec?.[1]) {
      const name = sec[1];
      if (sections.has(name)) throw new Error(`${where(n)}: section [${name}] appears twice`);
      current = { values: new Map(), lines: new Map() };
      sections.set(name, current);
      lastKey = undefined;
      return;
    }
    const kv = /^(.*?)\s*[=:]\s*(.*)$/.exec(stripped);
    if (!kv?.[1]) throw new Error(`${where(n)}: cannot read "${clip(stripped)}": expected "key = value"`);
    if (!current)
      throw new Error(
        `${where(n)}: "${clip(stripped)}" comes before any section; expected [${SECTION}] first`,
      );
    const key = kv[1].trim().toLowerCase();
    const first = current.lines.get(key);
    if (first !== undefined) throw new Error(`${where(n)}: ${key} is set twice (first on line ${first})`);
    current.values.set(key, kv[2] ?? '');
    current.lines.set(key, n);
    lastKey = key;
  });

  const bsp = sections.get(SECTION);
  if (!bsp) throw new Error(`${file}:1: no [${SECTION}] section (is this a qemuboot.conf?)`);

  const raw: Record<string, string> = {};
  const lineOf: Record<string, number> = {};
  for (const [k, v] of bsp.values) {
    const n = bsp.lines.get(k) ?? 1;
    lineOf[k] = n;
    raw[k] = interpolate(v, bsp.values, where(n), 0);
  }
  const dir = path.dirname(path.resolve(file));
  const out: QemuBoot = { file, dir, raw, lineOf };
  const typed = out as Record<string, unknown>;
  for (const k of QEMUBOOT_KEYS) {
    const v = raw[k];
    if (v !== undefined) typed[k] = resolveLikeRunqemu(v, dir);
  }
  return out;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

// configparser's BasicInterpolation: %% is a literal %, %(key)s is another key's value.
function interpolate(value: string, all: Map<string, string>, where: string, depth: number): string {
  if (!value.includes('%')) return value;
  if (depth > 10) throw new Error(`${where}: %(…)s references nest too deeply`);
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const next = value[i + 1];
    if (next === '%') {
      out += '%';
      i++;
      continue;
    }
    const ref = /^%\(([^)]+)\)s/.exec(value.slice(i));
    if (!ref?.[1]) throw new Error(`${where}: a lone "%" in the value; write %% for a literal percent sign`);
    const name = ref[1].toLowerCase();
    const target = all.get(name);
    if (target === undefined) throw new Error(`${where}: %(${ref[1]})s refers to a key that is not set`);
    out += interpolate(target, all, where, depth + 1);
    i += ref[0].length - 1;
  }
  return out;
}

/** runqemu turns values starting with "../" into absolute paths and "." into the conf's directory. */
function resolveLikeRunqemu(v: string, dir: string): string {
  if (v.startsWith('../')) return path.resolve(dir, v);
  if (v === '.') return dir;
  return v;
}

export function readQemuboot(file: string): QemuBoot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseQemuboot(text, file);
}

const CONF_SUFFIX = '.qemuboot.conf';
// Real files carry the build time: "…-qemuarm64-20240416133845.qemuboot.conf" (≤ kirkstone)
// or "…-qemuarm64.rootfs-20240416133845.qemuboot.conf" (≥ 4.3); the link names do not.
const STAMP = /-\d{14}(?=\.|$)/;

/** "core-image-minimal-qemuarm64.rootfs.qemuboot.conf" → "core-image-minimal-qemuarm64". */
export function imageOfConf(name: string): string {
  return name
    .slice(0, -CONF_SUFFIX.length)
    .replace(STAMP, '')
    .replace(/\.rootfs$/, '');
}

/**
 * Finds the qemuboot.conf of a deploy directory. With several images there, `image`
 * (e.g. "core-image-minimal" or "core-image-minimal-qemuarm64") picks one.
 */
export function findQemubootConf(dir: string, image?: string): string {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new Error(
      `cannot read the deploy directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const confs = names.filter((n) => n.endsWith(CONF_SUFFIX)).sort();
  if (confs.length === 0) throw new Error(`no *.qemuboot.conf in ${dir}`);

  // Group the link name with its timestamped twins; prefer the link, else the newest stamp.
  const groups = new Map<string, string[]>();
  for (const n of confs) {
    const img = imageOfConf(n);
    groups.set(img, [...(groups.get(img) ?? []), n]);
  }
  let images = [...groups.keys()];
  if (image) {
    const want = image.replace(/\.rootfs$/, '');
    const matching = images.filter((i) => i === want || i.startsWith(`${want}-`));
    if (matching.length === 0)
      throw new Error(`no qemuboot.conf for image ${image} in ${dir} (found: ${images.join(', ')})`);
    images = matching;
  } else if (images.length > 1) {
    // runqemu skips initramfs images when there is another choice.
    const plain = images.filter((i) => !i.includes('-initramfs-'));
    if (plain.length > 0) images = plain;
  }
  if (images.length > 1) {
    throw new Error(`several images in ${dir}: ${images.join(', ')}; say which one to boot`);
  }
  const members = groups.get(images[0] as string) ?? [];
  const link = members.find((n) => !STAMP.test(n));
  const chosen = link ?? [...members].sort().at(-1);
  return path.join(dir, chosen as string);
}
