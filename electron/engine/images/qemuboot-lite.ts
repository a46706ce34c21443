// Just enough qemuboot.conf for the store: which files a deploy directory's conf names (to
// copy them in) and writing one for an imported image that came without it. The full
// reader that turns a conf into a QEMU command line is electron/engine/image/.
export type QemubootKeys = Record<string, string>;

export function readQemubootKeys(text: string): QemubootKeys {
  const keys: QemubootKeys = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) keys[m[1]!.toLowerCase()] = m[2]!;
  }
  return keys;
}

export function writeQemuboot(keys: QemubootKeys): string {
  const lines = Object.entries(keys).map(([k, v]) => `${k} = ${v}`);
  return `[config_bsp]\n${lines.join('\n')}\n`;
}

/** Deploy-dir files a conf refers to: kernel, rootfs, dtb, bios and @DEPLOY_DIR_IMAGE@/… paths. */
export function referencedFiles(
  keys: QemubootKeys,
): Array<{ role: 'kernel' | 'rootfs' | 'dtb' | 'bios' | 'other'; name: string }> {
  const out: Array<{ role: 'kernel' | 'rootfs' | 'dtb' | 'bios' | 'other'; name: string }> = [];
  const add = (role: (typeof out)[number]['role'], name: string | undefined) => {
    if (name && name !== 'none' && !out.some((o) => o.name === name)) out.push({ role, name });
  };
  add('kernel', keys.qb_default_kernel);
  const fstype = (keys.qb_default_fstype ?? 'ext4').split(/\s+/)[0];
  if (keys.image_link_name) add('rootfs', `${keys.image_link_name}.${fstype}`);
  add('dtb', keys.qb_dtb);
  add('bios', keys.qb_default_bios);
  for (const v of Object.values(keys)) {
    for (const m of v.matchAll(/@DEPLOY_DIR_IMAGE@\/([^\s,]+)/g)) add('other', m[1]);
  }
  return out;
}

/** The QEMU board a conf asks for: the -machine name in qb_machine, or in qb_cpu (x86 puts q35 there). */
export function boardOf(keys: QemubootKeys): string | undefined {
  for (const k of ['qb_machine', 'qb_cpu']) {
    const m =
      /-machine\s+([A-Za-z0-9_.-]+)/.exec(keys[k] ?? '') ?? /-M\s+([A-Za-z0-9_.-]+)/.exec(keys[k] ?? '');
    if (m) return m[1];
  }
  return undefined;
}

export function archOfSystem(name: string | undefined): string | undefined {
  const m = /qemu-system-(\w+)/.exec(name ?? '');
  if (!m) return undefined;
  return { aarch64: 'aarch64', x86_64: 'x86_64', i386: 'x86', arm: 'arm', riscv64: 'riscv64' }[m[1]!] ?? m[1];
}
