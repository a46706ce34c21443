// How the Flash panel shows drives and a flash in progress: one row per drive (refused ones
// greyed with their reason), which drive to preselect, the confirmation's words, and the
// progress line. Plain TypeScript so unit tests import it.
import type { DriveChoice, FlashFinished, Progress } from '../../../electron/common/contract.ts';
import { formatBytes, formatEta } from './format.ts';

export interface DriveRow {
  device: string;
  /** "SanDisk SD card" or the device when the drive has no description. */
  title: string;
  size: string;
  /** What kind of drive: removable/fixed, mounted where. */
  detail: string;
  disabled: boolean;
  /** Why it cannot be chosen, one line (disabled rows only). */
  reason?: string;
  needsElevation: boolean;
}

export function driveRows(drives: readonly DriveChoice[]): DriveRow[] {
  return drives.map((d) => {
    const kind = [
      d.removable ? 'removable' : 'fixed',
      d.system ? 'system' : '',
      d.readOnly ? 'read-only' : '',
    ]
      .filter(Boolean)
      .join(', ');
    const mounted = d.mountpoints.length ? ` · mounted at ${d.mountpoints.slice(0, 3).join(', ')}` : '';
    return {
      device: d.device,
      title: d.description || d.device,
      size: d.sizeBytes === null ? 'no size' : formatBytes(d.sizeBytes),
      detail: `${d.device} · ${kind}${mounted}`,
      disabled: !d.eligible,
      reason: d.eligible ? undefined : (d.reason ?? 'cannot be written'),
      needsElevation: d.needsElevation,
    };
  });
}

/** Keeps the chosen drive while it can still be chosen; otherwise the only eligible one, if just one. */
export function pickDrive(rows: readonly DriveRow[], current: string | undefined): string | undefined {
  const ok = rows.filter((r) => !r.disabled);
  if (current && ok.some((r) => r.device === current)) return current;
  return ok.length === 1 ? ok[0]!.device : undefined;
}

/** The confirmation: names the drive and its size, what is written and why a password may be asked. */
export function confirmFlash(
  drive: DriveChoice,
  source: { imageId: string; customised: boolean; imageBytes: number },
  elevation: string,
): { title: string; message: string; confirmLabel: string } {
  const name = drive.description ? `${drive.description} (${drive.device})` : drive.device;
  const size = drive.sizeBytes === null ? '' : `, ${formatBytes(drive.sizeBytes)}`;
  const what = source.customised
    ? `${source.imageId} with its customisation (the same bytes its VM boots)`
    : `${source.imageId} as it came`;
  const parts = [
    `Everything on ${name}${size} is replaced by ${what}, ${formatBytes(source.imageBytes)}.`,
    'Every byte is read back afterwards to check the card.',
  ];
  if (drive.needsElevation) parts.push(elevation);
  return {
    title: `Erase ${drive.device} and write it?`,
    message: parts.join(' '),
    confirmLabel: `Erase and write`,
  };
}

export interface FlashView {
  state: 'idle' | 'running' | 'done' | 'failed' | 'cancelled';
  /** Writing / Verifying / Verified / … */
  label: string;
  /** 0..100 while running with a known size. */
  percent?: number;
  /** "12.3 MB of 30.4 MB · 45 MB/s · 2 s left" */
  detail: string;
}

const PHASE_LABEL: Record<string, string> = { write: 'Writing', verify: 'Verifying' };

/** What the progress area says for a flash task, from its last progress event and its result. */
export function flashView(p: Progress | undefined, finished: FlashFinished | undefined): FlashView {
  if (finished && p?.state !== 'failed') {
    const secs = (finished.durationMs / 1000).toFixed(1);
    const eject = finished.ejected ? ' It is unmounted: you can remove it now.' : '';
    return {
      state: 'done',
      label: finished.verified ? 'Written and verified' : 'Written (not verified)',
      percent: 100,
      detail: `${formatBytes(finished.imageBytes)} in ${secs} s${
        finished.verified ? ': every byte read back matches the image.' : '.'
      }${eject}`,
    };
  }
  if (!p) return { state: 'idle', label: '', detail: '' };
  if (p.state === 'failed')
    return { state: 'failed', label: 'Failed', detail: p.message ?? 'the flash failed' };
  if (p.state === 'cancelled')
    return { state: 'cancelled', label: 'Cancelled', detail: p.message ?? 'the flash was cancelled' };
  if (p.state === 'done') return { state: 'done', label: 'Finished', percent: 100, detail: '' };
  const label = (p.phase && PHASE_LABEL[p.phase]) || p.message || 'Starting';
  if (p.unit !== 'bytes') return { state: 'running', label, detail: '' };
  const percent = p.total ? Math.min(100, (100 * p.done) / p.total) : undefined;
  const bits = [p.total ? `${formatBytes(p.done)} of ${formatBytes(p.total)}` : formatBytes(p.done)];
  if (p.ratePerSec) bits.push(`${formatBytes(p.ratePerSec)}/s`);
  const eta = formatEta(p.etaSec);
  if (eta) bits.push(eta);
  return { state: 'running', label, percent, detail: bits.join(' · ') };
}

/**
 * "Flash this" belongs on a VM that booted fine from a Library image: it reached the login
 * prompt or a shell, and it is the image's own VM (a stack layer's disk holds nested guests).
 */
export function canFlashThis(
  vm:
    | { id: string; imageId: string; depth?: number; state: string; milestones: Array<{ name: string }> }
    | undefined,
): boolean {
  if (!vm || vm.id !== vm.imageId || (vm.depth ?? 1) !== 1) return false;
  if (vm.state === 'crashed' || vm.state === 'lost') return false;
  return vm.milestones.some((m) => m.name === 'login' || m.name === 'shell');
}
