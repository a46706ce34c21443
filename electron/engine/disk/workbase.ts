// Derived working bases: a customised copy of a base image that a VM's qcow2 overlay then
// sits on. The copy is made with `qemu-img convert -O raw` (sparse, flattens qcow2 chains,
// and present wherever QEMU is), edited, and cached under a key that hashes the edits, so
// the same customisation is made once. The base itself is only ever read.
//
// A VM records which derived base it boots from in its directory (working-base.json); the
// supervisor reads that record, so every way of booting (app, CLI, restart) sees it.
// "Reset" is dropping the record, the derived bases and the overlay.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PublicCustomisation } from '../../common/customise-rules.ts';
import { findPartitions, type ImagePartitions } from './partitions.ts';

const run = promisify(execFile);

export interface DerivedImage {
  /** The raw copy being edited (a temporary name until the edits succeed). */
  path: string;
  partitions: ImagePartitions;
}

export interface DeriveSpec {
  base: string;
  baseFormat: 'raw' | 'qcow2';
  /** Cache directory; the result is `<dir>/<key>.raw`. */
  dir: string;
  /** A hash of the edits (and of the base): same key, same bytes. */
  key: string;
  edit: (img: DerivedImage) => Promise<void>;
  /** qemu-img to use; found on PATH when left out. */
  qemuImg?: string;
}

const inFlight = new Map<string, Promise<{ path: string; cached: boolean }>>();

export function derivedPath(dir: string, key: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(key) || key.startsWith('.'))
    throw new Error(`a working base key must be 1-128 letters, digits, dots, dashes or underscores: ${key}`);
  return path.join(dir, `${key}.raw`);
}

export async function deriveBase(spec: DeriveSpec): Promise<{ path: string; cached: boolean }> {
  const target = derivedPath(spec.dir, spec.key);
  if (existsSync(target)) return { path: target, cached: true };
  // Two callers asking for the same key at once share one copy.
  const pending = inFlight.get(target);
  if (pending) return pending;
  const p = make(spec, target).finally(() => inFlight.delete(target));
  inFlight.set(target, p);
  return p;
}

async function make(spec: DeriveSpec, target: string): Promise<{ path: string; cached: boolean }> {
  if (!existsSync(spec.base)) throw new Error(`the base image ${spec.base} does not exist`);
  mkdirSync(spec.dir, { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await copySparse(spec.qemuImg ?? 'qemu-img', spec.base, spec.baseFormat, tmp);
    await spec.edit({ path: tmp, partitions: await findPartitions(tmp) });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return { path: target, cached: false };
}

/**
 * A sparse raw copy of `base`. qemu-img opens its source read-only; -U (force share) lets
 * it read a base that a running VM's overlay holds open, which is safe because nothing
 * ever writes a base.
 */
async function copySparse(
  qemuImg: string,
  base: string,
  format: 'raw' | 'qcow2',
  out: string,
): Promise<void> {
  try {
    await run(qemuImg, ['convert', '-U', '-f', format, '-O', 'raw', base, out], { maxBuffer: 1 << 20 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error('qemu-img is not installed; it is needed to copy the base image');
    const msg = String(err.stderr ?? err.message)
      .trim()
      .split('\n')
      .pop();
    throw new Error(`could not copy ${path.basename(base)}: ${msg}`);
  }
}

// ---- which base a VM boots from -------------------------------------------------------

export interface WorkingBaseRecord {
  /** The derived raw image the VM's overlay sits on. */
  path: string;
  format: 'raw';
  key: string;
  /** The pristine base it was derived from. */
  base: string;
  createdAt: number;
  /** What the customisation changed, one line each (no secrets). */
  changes: string[];
  /** How it was applied (customise/apply.ts's flavour and reason) and what is worth knowing. */
  flavour?: string;
  why?: string;
  notes?: string[];
  /** The customisation's settings without its secrets, to show them again. */
  settings?: PublicCustomisation;
}

const RECORD = 'working-base.json';

export function readWorkingBase(vmDir: string): WorkingBaseRecord | undefined {
  const f = path.join(vmDir, RECORD);
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as WorkingBaseRecord;
  } catch (e) {
    throw new Error(`${f} is damaged (${(e as Error).message}); reset the VM's customisation`);
  }
}

export function writeWorkingBase(vmDir: string, rec: WorkingBaseRecord): void {
  mkdirSync(vmDir, { recursive: true });
  const f = path.join(vmDir, RECORD);
  writeFileSync(`${f}.tmp`, `${JSON.stringify(rec, null, 2)}\n`);
  renameSync(`${f}.tmp`, f);
}

/**
 * The base a VM should boot from: its derived working base when it has one (which must
 * still exist: booting the pristine base instead would silently drop the customisation).
 */
export function workingBaseFor(vmDir: string): { path: string; format: 'raw' } | undefined {
  const rec = readWorkingBase(vmDir);
  if (!rec) return undefined;
  if (!existsSync(rec.path))
    throw new Error(
      `the customised disk ${path.basename(rec.path)} is missing; customise the image again or reset it`,
    );
  return { path: rec.path, format: rec.format };
}

/** Drops the record and every derived base in `basesDir`. */
export function dropWorkingBase(vmDir: string, basesDir: string): void {
  rmSync(path.join(vmDir, RECORD), { force: true });
  rmSync(basesDir, { recursive: true, force: true });
}
