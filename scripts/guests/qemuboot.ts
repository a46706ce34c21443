// The two text files Yocto deploys beside every image: <image>.qemuboot.conf (what runqemu
// reads) and <image>.manifest (one installed package per line: name, architecture, version).
import { writeFileSync } from 'node:fs';
import type { DebPackage } from './apt.ts';

/** Writes `[config_bsp]` with lower-case keys in sorted order, the way qemuboot.bbclass does. */
export function writeQemuboot(file: string, values: Record<string, string>): void {
  const keys = Object.keys(values).sort();
  for (const k of keys) if (k !== k.toLowerCase()) throw new Error(`qemuboot key ${k} must be lower case`);
  writeFileSync(file, ['[config_bsp]', ...keys.map((k) => `${k} = ${values[k]}`), ''].join('\n'));
}

export function writeManifest(file: string, pkgs: readonly DebPackage[]): void {
  const lines = [...pkgs]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => `${p.name} ${p.arch} ${p.version}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
}
