// "Try before flashing": customising an image's VM. The edits go into a derived working
// base (see disk/workbase.ts) that the VM's overlay sits on from its next boot; flashing
// then writes exactly that working base. Resetting drops it and the VM's disk.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { type PublicCustomisation, publicCustomisation } from '../../common/customise-rules.ts';
import { deriveBase, dropWorkingBase, readWorkingBase, writeWorkingBase } from '../disk/workbase.ts';
import type { Engine } from '../index.ts';
import { customiseImage, type Flavour } from './apply.ts';
import { sha512Crypt } from './sha512-crypt.ts';
import { type CustomiseSpec, describeSpec, parseCustomiseSpec } from './spec.ts';

/** The parts of the engine customising needs (handlers get them before the Engine exists). */
export type CustomiseEngine = Pick<Engine, 'library' | 'supervisor' | 'qemu'>;

export interface CustomiseResult {
  vmId: string;
  imageId: string;
  /** The derived working base the VM boots from now. */
  path: string;
  cached: boolean;
  flavour: Flavour;
  why: string;
  changes: string[];
  notes: string[];
}

export interface CustomiseOptions {
  /** Force a flavour instead of detecting it. */
  flavour?: Flavour;
  /** The VM already has a disk with changes from earlier runs: start it afresh anyway. */
  resetDisk?: boolean;
}

const run = promisify(execFile);
const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Identifies a base cheaply (hashing a multi-GiB image on every customise would be slow). */
function baseIdentity(file: string): string {
  const st = statSync(file);
  return `${realpathSync(file)}\0${st.size}\0${Math.floor(st.mtimeMs)}`;
}

/**
 * The password salt is derived from the base and user name so the same customisation
 * hashes the same way and its cached working base is found again. The cache key then
 * holds only the crypt hash — never something weaker than the shadow entry itself.
 */
function saltFor(identity: string, user: string): string {
  const d = createHash('sha256').update(`stacklab-salt\0${identity}\0${user}`).digest();
  return [...d.subarray(0, 16)].map((b) => CRYPT_ALPHABET[b & 0x3f]).join('');
}

export function customisationKey(identity: string, spec: CustomiseSpec, salt: string): string {
  const safe = spec.user
    ? { ...spec, user: { name: spec.user.name, hash: sha512Crypt(spec.user.password, salt) } }
    : spec;
  const canonical = JSON.stringify(sortKeys(safe));
  return createHash('sha256').update(`v1\0${identity}\0${canonical}`).digest('hex').slice(0, 32);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, x]) => [k, sortKeys(x)]),
    );
  return v;
}

function vmPaths(engine: CustomiseEngine, vmId: string) {
  const vmDir = engine.supervisor.vmDir(vmId);
  return { vmDir, basesDir: path.join(vmDir, 'bases'), overlay: path.join(vmDir, 'disk.qcow2') };
}

/**
 * Refuses while the VM runs — in this engine, or in another Stacklab process (the app while
 * the CLI customises): QEMU holds a write lock on the overlay, which qemu-img then reports.
 */
async function refuseIfRunning(engine: CustomiseEngine, vmId: string, doing: string): Promise<void> {
  const vm = engine.supervisor.find(vmId);
  if (vm && !vm.exit) throw new Error(`${vmId} is running; stop it before ${doing}`);
  const overlay = path.join(engine.supervisor.vmDir(vmId), 'disk.qcow2');
  const qemuImg = existsSync(overlay) ? (await engine.qemu().catch(() => undefined))?.img : undefined;
  if (!qemuImg) return;
  try {
    await run(qemuImg, ['info', overlay]);
  } catch (e) {
    if (/lock/i.test(String((e as { stderr?: string }).stderr)))
      throw new Error(`${vmId} is running in another Stacklab window or process; stop it before ${doing}`);
  }
}

export async function customiseVm(
  engine: CustomiseEngine,
  imageId: string,
  input: unknown,
  opts: CustomiseOptions = {},
): Promise<CustomiseResult> {
  const spec = parseCustomiseSpec(input);
  const image = await engine.library.resolve(imageId);
  if (image.rootfsKind === 'initramfs')
    throw new Error(`${image.id} boots from an initramfs: it has no disk to customise`);
  const vmId = image.id;
  await refuseIfRunning(engine, vmId, 'customising it');
  const { vmDir, basesDir, overlay } = vmPaths(engine, vmId);

  const identity = baseIdentity(image.rootfs);
  const salt = saltFor(identity, spec.user?.name ?? '');
  const key = customisationKey(identity, spec, salt);
  const current = readWorkingBase(vmDir);
  const sameAsNow = current?.key === key && existsSync(current.path);
  // A customisation is a fresh working copy: the VM's old disk sits on other bytes.
  if (!sameAsNow && existsSync(overlay) && !opts.resetDisk)
    throw new Error(
      `${vmId} has a disk with changes from earlier runs; customising starts a fresh one (pass resetDisk / --reset-disk)`,
    );

  const qemu = await engine.qemu();
  let applied: Awaited<ReturnType<typeof customiseImage>> | undefined;
  const derived = await deriveBase({
    base: image.rootfs,
    baseFormat: image.rootfsFormat,
    dir: basesDir,
    key,
    qemuImg: qemu.img,
    edit: async (img) => {
      applied = await customiseImage(img, spec, { salt, flavour: opts.flavour });
    },
  });
  if (!sameAsNow) rmSync(overlay, { force: true });
  // Only the current working base is kept (another process's copy in progress is left alone).
  for (const f of readdirSync(basesDir))
    if (f.endsWith('.raw') && path.join(basesDir, f) !== derived.path)
      rmSync(path.join(basesDir, f), { force: true });

  // A cached copy was described when it was made: the record keeps what the edit said.
  const prior = current?.key === key ? current : undefined;
  const flavour = applied?.flavour ?? (prior?.flavour as Flavour | undefined) ?? 'rootfs';
  const why = applied?.why ?? prior?.why ?? 'made before with the same settings';
  const changes = applied?.changes ?? prior?.changes ?? describeSpec(spec);
  const notes = applied?.notes ?? prior?.notes ?? [];
  writeWorkingBase(vmDir, {
    path: derived.path,
    format: 'raw',
    key,
    base: image.rootfs,
    createdAt: prior?.createdAt ?? Date.now(),
    changes,
    flavour,
    why,
    notes,
    // What was set, for showing again; the secrets are only in the image, hashed.
    settings: publicCustomisation(spec),
  });
  return {
    vmId,
    imageId: image.id,
    path: derived.path,
    cached: derived.cached,
    flavour,
    why,
    changes,
    notes,
  };
}

export interface CustomisationStatus {
  imageId: string;
  vmId: string;
  /** The VM boots a customised copy of the image. */
  customised: boolean;
  changes: string[];
  settings?: PublicCustomisation;
  flavour?: string;
  why?: string;
  notes: string[];
  createdAt?: number;
  /** The VM has a disk with changes from earlier runs (customising again starts a fresh one). */
  hasDisk: boolean;
  running: boolean;
}

/** What is applied to an image's VM now, without secrets. */
export async function customisationStatus(
  engine: CustomiseEngine,
  imageId: string,
): Promise<CustomisationStatus> {
  const image = await engine.library.resolve(imageId);
  const { vmDir, basesDir, overlay } = vmPaths(engine, image.id);
  const rec = readWorkingBase(vmDir);
  const customised = rec !== undefined && path.dirname(rec.path) === basesDir;
  const vm = engine.supervisor.find(image.id);
  return {
    imageId: image.id,
    vmId: image.id,
    customised,
    changes: rec?.changes ?? [],
    settings: customised ? rec?.settings : undefined,
    flavour: customised ? rec?.flavour : undefined,
    why: customised ? rec?.why : undefined,
    notes: customised ? (rec?.notes ?? []) : [],
    createdAt: rec?.createdAt,
    hasDisk: existsSync(overlay),
    running: vm !== undefined && !vm.exit,
  };
}

/** Drops the VM's customisation and its disk: the next boot starts from the pristine base. */
export async function resetCustomisation(
  engine: CustomiseEngine,
  imageId: string,
): Promise<{ vmId: string; dropped: boolean }> {
  const image = await engine.library.resolve(imageId);
  await refuseIfRunning(engine, image.id, 'resetting it');
  const { vmDir, basesDir, overlay } = vmPaths(engine, image.id);
  const rec = readWorkingBase(vmDir);
  // Only a customised working base is ours to drop; another kind (a grown disk, disks/resize.ts) stays.
  const customised = rec !== undefined && path.dirname(rec.path) === basesDir;
  const dropped = customised || existsSync(overlay);
  if (customised) dropWorkingBase(vmDir, basesDir);
  else rmSync(basesDir, { recursive: true, force: true });
  rmSync(overlay, { force: true });
  return { vmId: image.id, dropped };
}

/** What "flash this" writes: the VM's customised working base when it has one, else the image's own disk. */
export async function flashSourceFor(
  engine: CustomiseEngine,
  imageId: string,
): Promise<{ path: string; customised: boolean; changes: string[] }> {
  const image = await engine.library.resolve(imageId);
  const rec = readWorkingBase(engine.supervisor.vmDir(image.id));
  if (rec) {
    if (!existsSync(rec.path))
      throw new Error(`the customised disk of ${image.id} is missing; customise it again or reset it`);
    return { path: rec.path, customised: true, changes: rec.changes };
  }
  if (image.rootfsKind === 'initramfs')
    throw new Error(`${image.id} boots from an initramfs: there is no disk image to flash`);
  if (image.rootfsFormat !== 'raw')
    throw new Error(`${image.id}'s disk is ${image.rootfsFormat}; only raw images can be flashed`);
  return { path: image.rootfs, customised: false, changes: [] };
}
