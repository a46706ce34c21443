// Older builds stay until asked to go: a VM's qcow2 overlay may still name a file in one of
// them as its backing file, and deleting it would break that VM's disk.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run } from './exec.ts';

const BUILD_DIR = /^[0-9a-f]{12}$/;

/** Keyed build directories other than `keep`. */
export function olderBuilds(top: string, keep: string): string[] {
  return readdirSync(top)
    .filter((d) => BUILD_DIR.test(d) && d !== keep)
    .map((d) => path.join(top, d));
}

/** Downloads and extracted-package tarballs the current build does not use. */
export function unusedDownloads(debsDir: string, used: ReadonlySet<string>): string[] {
  if (!existsSync(debsDir)) return [];
  return readdirSync(debsDir)
    .filter((f) => (f.endsWith('.deb') || f.endsWith('.tar')) && !used.has(f))
    .map((f) => path.join(debsDir, f));
}

export async function totalMiB(paths: readonly string[]): Promise<number> {
  if (paths.length === 0) return 0;
  const { stdout } = await run('du', ['-s', '-c', '-B', '1M', ...paths]);
  return Number(/^(\d+)\s+total$/m.exec(stdout)?.[1] ?? 0);
}

export function remove(paths: readonly string[]): void {
  for (const p of paths) rmSync(p, { recursive: true, force: true });
}
