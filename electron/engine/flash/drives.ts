// Drives an image could be written to, and whether a given one may be. eligibility() is a
// pure function over drivelist-shaped data so it can be tested with any list of drives,
// and every refusal is one line saying why.
import path from 'node:path';
import type { Drive as DrivelistDrive } from 'drivelist';

export interface Drive {
  device: string;
  /** The raw device etcher-sdk writes to (/dev/sdb; \\.\PhysicalDrive2 on Windows; /dev/rdisk2 on macOS). */
  raw: string;
  description: string;
  size: number | null;
  removable: boolean;
  system: boolean;
  virtual: boolean;
  mountpoints: string[];
  readOnly: boolean;
}

export type Eligibility = { ok: true } | { ok: false; reason: string };

export function normaliseDrive(d: DrivelistDrive): Drive {
  return {
    device: d.device,
    raw: d.raw || d.device,
    description: d.description || '',
    size: d.size,
    removable: Boolean(d.isRemovable),
    system: Boolean(d.isSystem),
    virtual: Boolean(d.isVirtual),
    mountpoints: (d.mountpoints ?? []).map((m) => m.path).filter(Boolean),
    readOnly: Boolean(d.isReadOnly),
  };
}

export async function listDrives(): Promise<Drive[]> {
  // Loaded on demand: a native addon the rest of the engine does not need.
  const { list } = await import('drivelist');
  return (await list()).map(normaliseDrive);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const isWindowsPath = (p: string) => /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');

/** A path in one comparable form: forward slashes, no trailing slash, lower case on Windows. */
function canonical(p: string): string {
  if (isWindowsPath(p)) {
    const s = p.replace(/\\/g, '/').replace(/\/+$/, '');
    return (s.length === 2 ? `${s}/` : s).toLowerCase();
  }
  const s = path.posix.normalize(p);
  return s.length > 1 ? s.replace(/\/+$/, '') : s;
}

function under(file: string, mount: string): boolean {
  const f = canonical(file);
  const m = canonical(mount);
  if (m === '/' || m.endsWith(':/')) return f.startsWith(m);
  return f === m || f.startsWith(`${m}/`);
}

/**
 * Which drive holds `file`: the one whose mountpoint is the longest prefix of its path
 * (a card mounted at /media/card holds /media/card/x.img even though / matches too).
 */
export function driveHolding(file: string, drives: Drive[]): Drive | undefined {
  let best: { drive: Drive; len: number } | undefined;
  for (const d of drives)
    for (const m of d.mountpoints)
      if (under(file, m) && (!best || canonical(m).length > best.len))
        best = { drive: d, len: canonical(m).length };
  return best?.drive;
}

/**
 * May `drive` receive an image of `imageBytes` bytes read from `imageLocation`? Give
 * `allDrives` to tell which drive holds the image exactly; without it a drive with any
 * mountpoint above the image's path counts as holding it.
 */
export function eligibility(
  drive: Drive,
  imageBytes: number,
  imageLocation: string,
  allDrives?: Drive[],
): Eligibility {
  const name = `${drive.device}${drive.description ? ` (${drive.description})` : ''}`;
  if (drive.system) return { ok: false, reason: `${name} is a system drive; Stacklab never writes to one` };
  const holder = allDrives
    ? driveHolding(imageLocation, allDrives)
    : drive.mountpoints.some((m) => under(imageLocation, m))
      ? drive
      : undefined;
  if (holder && holder.device === drive.device)
    return {
      ok: false,
      reason: `${name} holds the image being written (${imageLocation}); writing it would destroy the source`,
    };
  if (drive.virtual)
    return { ok: false, reason: `${name} is a virtual drive (zram, loop, RAM disk), not a card` };
  if (drive.readOnly) return { ok: false, reason: `${name} is read-only (is the card's lock switch on?)` };
  if (!drive.removable) return { ok: false, reason: `${name} is not a removable drive` };
  if (drive.size === null || !(drive.size > 0))
    return { ok: false, reason: `${name} reports no size (is a card in the reader?)` };
  if (drive.size < imageBytes)
    return {
      ok: false,
      reason: `${name} is too small: ${formatBytes(drive.size)} for a ${formatBytes(imageBytes)} image`,
    };
  return { ok: true };
}

/**
 * The drive `device` names, if it may be written and the user confirmed: the checks every
 * front end makes before flashing. Unknown, ineligible or unconfirmed → one-line Error
 * (`code` 'ENOTCONFIRMED' for the last, so a CLI can answer "add --yes").
 */
export function chooseTarget(
  drives: Drive[],
  device: string,
  image: { path: string; bytes: number },
  confirmed: boolean,
): Drive {
  const drive = drives.find((d) => d.device === device || d.raw === device);
  if (!drive) throw new Error(`no drive ${device} (run "stacklab drives" to list them)`);
  const verdict = eligibility(drive, image.bytes, image.path, drives);
  if (!verdict.ok) throw new Error(verdict.reason);
  if (!confirmed) {
    const e = new Error(
      `this replaces everything on ${drive.device} (${drive.description || 'no description'}, ${formatBytes(drive.size ?? 0)}): confirm to write it`,
    ) as Error & { code: string };
    e.code = 'ENOTCONFIRMED';
    throw e;
  }
  return drive;
}

export interface DriveChoice {
  device: string;
  description: string;
  sizeBytes: number | null;
  removable: boolean;
  system: boolean;
  readOnly: boolean;
  virtual: boolean;
  mountpoints: string[];
  eligible: boolean;
  reason?: string;
  needsElevation: boolean;
}

/**
 * Every drive with its verdict for this image, for a front end to show: the eligible ones
 * first, refused ones after with their one-line reason. Without an image only the checks
 * that need none (system, virtual, read-only, not removable, no size) can refuse.
 */
export function driveChoices(
  drives: Drive[],
  image: { path: string; bytes: number } | undefined,
  needsRights: (d: Drive) => boolean,
): DriveChoice[] {
  const rows = drives.map((d): DriveChoice => {
    const v = eligibility(d, image?.bytes ?? 0, image?.path ?? '', drives);
    return {
      device: d.device,
      description: d.description,
      sizeBytes: d.size,
      removable: d.removable,
      system: d.system,
      readOnly: d.readOnly,
      virtual: d.virtual,
      mountpoints: d.mountpoints,
      eligible: v.ok,
      reason: v.ok ? undefined : v.reason,
      needsElevation: v.ok && needsRights(d),
    };
  });
  return [...rows.filter((r) => r.eligible), ...rows.filter((r) => !r.eligible)];
}
