// qemuboot.conf option values are shell-like strings ("-drive id=disk0,file=@ROOTFS@ …");
// runqemu substitutes placeholders into the whole command and then shlex-splits it, which
// breaks on paths with spaces. Here the value is split first and placeholders are replaced
// inside the resulting arguments, so any path survives.
import { split } from 'shlex';
import type { QemuBoot, QemuBootKey } from './qemuboot.ts';

export function where(conf: QemuBoot, key: string): string {
  if (!conf.file) return `board profile (${key})`;
  const n = conf.lineOf[key];
  return n ? `${conf.file}:${n}` : conf.file;
}

/** The value of `key` split like a POSIX shell would (runqemu uses shlex.split). */
export function qbTokens(conf: QemuBoot, key: QemuBootKey): string[] {
  const v = conf[key];
  if (!v) return [];
  try {
    return split(v);
  } catch (e) {
    throw new Error(`${where(conf, key)}: ${key} cannot be split into arguments (${(e as Error).message})`);
  }
}

/** QEMU option lists separate with ',', so a ',' inside a value is written ',,'. */
export function escapeOptValue(s: string): string {
  return s.replace(/,/g, ',,');
}

/**
 * Replaces a placeholder inside one argument. Where the placeholder is the value of a
 * key=value option list ("file=@ROOTFS@,if=none") the path's commas are doubled; where it
 * is a whole argument (after -initrd, say) it goes in as it is.
 */
export function substitute(arg: string, placeholder: string, value: string): string {
  if (!arg.includes(placeholder)) return arg;
  return arg
    .split(placeholder)
    .reduce(
      (acc, part, i) => (i === 0 ? part : acc + (/=[^,]*$/.test(acc) ? escapeOptValue(value) : value) + part),
      '',
    );
}

/** The board a command line selects: the type of the first -machine/-M option ("virt", "q35"). */
export function machineType(tokens: string[]): string | undefined {
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i];
    if (t === '-machine' || t === '-M' || t === '--machine') {
      const spec = tokens[i + 1] ?? '';
      for (const part of spec.split(',')) {
        if (part.startsWith('type=')) return part.slice(5);
        if (!part.includes('=') && part.length > 0) return part;
      }
    }
  }
  return undefined;
}
