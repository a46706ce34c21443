// Snapshots of a VM's qcow2 overlay (never of the base, which is only ever read).
// A stopped VM: `qemu-img snapshot` on the overlay, disk only. A running VM: QEMU's own
// savevm/loadvm/delvm through QMP's human-monitor-command, which also saves RAM and device
// state, so a revert puts the guest back mid-flight. savevm needs every writable disk to
// be qcow2 (the overlay is; kernels and initramfs are not drives) and every device to be
// migratable: raspi3b's usb-net is not, so such a VM is refused with QEMU's reason.
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { imageInfo, type QcowSnapshotJson, qemuImg } from './qemu-img.ts';

export interface SnapshotInfo {
  id: string;
  name: string;
  /** Bytes of saved RAM and device state; 0 for a disk-only snapshot (taken while stopped). */
  sizeBytes: number;
  /** When it was taken, ISO 8601. */
  date: string;
  /** The guest's clock at the snapshot, in milliseconds since it started (0 when stopped). */
  vmClock: number;
}

/** The slice of the QMP client used here (vm.qmp, or a connection to a VM's control socket). */
export interface Monitor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
}

export interface SnapshotTarget {
  vmId: string;
  /** `<vmDir>/disk.qcow2`. */
  overlay: string;
  qemuImg: string;
  /** The running VM's QMP; left out when the VM is stopped. */
  monitor?: Monitor;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/**
 * Names are typed into QEMU's monitor, and loadvm/delvm accept a snapshot's id as well as
 * its name, so an all-digit name could pick another snapshot: letters are required.
 */
export function validateSnapshotName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name) || /^\d+$/.test(name))
    throw new Error(
      `snapshot names are 1-64 letters, digits and . _ - (not only digits, not starting with . or -): ${JSON.stringify(String(name)).slice(0, 80)}`,
    );
  return name;
}

function toInfo(s: QcowSnapshotJson): SnapshotInfo {
  return {
    id: String(s.id),
    name: s.name,
    sizeBytes: s['vm-state-size'],
    date: new Date(s['date-sec'] * 1000 + Math.floor(s['date-nsec'] / 1e6)).toISOString(),
    vmClock: s['vm-clock-sec'] * 1000 + Math.floor(s['vm-clock-nsec'] / 1e6),
  };
}

function needDisk(t: SnapshotTarget): void {
  if (!existsSync(t.overlay))
    throw new Error(`${t.vmId} has no disk yet (never booted, or reset): there is nothing to snapshot`);
}

const real = (p: string) => (existsSync(p) ? realpathSync(p) : path.resolve(p));

interface QueryBlockEntry {
  device: string;
  inserted?: { file?: string; image?: { filename?: string; snapshots?: QcowSnapshotJson[] } };
}

async function hmp(m: Monitor, line: string): Promise<string> {
  return (await m.execute<string>('human-monitor-command', { 'command-line': line }))
    .replace(/\r/g, '')
    .trim();
}

/** QEMU prints nothing when savevm/loadvm/delvm succeed; anything else is its complaint. */
function complaint(out: string): string {
  return (
    out
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean)
      ?.replace(/^Error: /, '') ?? ''
  );
}

export async function listSnapshots(t: SnapshotTarget): Promise<SnapshotInfo[]> {
  if (t.monitor) {
    const blocks = await t.monitor.execute<QueryBlockEntry[]>('query-block');
    const mine = blocks.find((b) => {
      const f = b.inserted?.image?.filename ?? b.inserted?.file;
      return f !== undefined && real(f) === real(t.overlay);
    });
    if (!mine) throw new Error(`${t.vmId} is running without its disk ${path.basename(t.overlay)} attached`);
    return (mine.inserted?.image?.snapshots ?? []).map(toInfo);
  }
  if (!existsSync(t.overlay)) return [];
  // -U: listing is a read-only look and must work while another process runs the VM.
  return (await imageInfo(t.qemuImg, t.overlay, { shared: true })).snapshots.map(toInfo);
}

async function find(t: SnapshotTarget, name: string): Promise<SnapshotInfo> {
  const all = await listSnapshots(t);
  const s = all.find((x) => x.name === name);
  if (!s)
    throw new Error(
      `${t.vmId} has no snapshot called ${name}${all.length ? ` (it has: ${all.map((x) => x.name).join(', ')})` : ' (it has none)'}`,
    );
  return s;
}

export async function takeSnapshot(t: SnapshotTarget, name: string): Promise<SnapshotInfo> {
  validateSnapshotName(name);
  needDisk(t);
  // savevm and qemu-img would silently replace a snapshot of the same name: losing it is the user's call.
  if ((await listSnapshots(t)).some((s) => s.name === name))
    throw new Error(
      `${t.vmId} already has a snapshot called ${name}; delete it first or choose another name`,
    );
  if (t.monitor) {
    const why = complaint(await hmp(t.monitor, `savevm ${name}`));
    if (why) {
      const dev = /non-migratable device '([^']+)'/.exec(why)?.[1];
      if (dev)
        throw new Error(
          `${t.vmId} cannot be snapshotted while it runs: its device ${dev.replace(/^.*\//, '')} cannot save its state (${why}); stop the VM to take a disk-only snapshot`,
        );
      throw new Error(`could not snapshot ${t.vmId} while it runs: ${why}`);
    }
  } else {
    await qemuImg(t.qemuImg, ['snapshot', '-q', '-c', name, t.overlay], `snapshot ${t.vmId}'s disk`);
  }
  return find(t, name);
}

export async function revertSnapshot(t: SnapshotTarget, name: string): Promise<SnapshotInfo> {
  validateSnapshotName(name);
  needDisk(t);
  const snap = await find(t, name);
  if (t.monitor) {
    if (snap.sizeBytes === 0)
      throw new Error(
        `${name} was taken while ${t.vmId} was stopped (disk only): stop the VM to revert to it`,
      );
    const status = await t.monitor.execute<{ running: boolean }>('query-status');
    const out = await hmp(t.monitor, `loadvm ${name}`);
    // A failed loadvm leaves the guest paused; put it back the way it was.
    const after = await t.monitor.execute<{ running: boolean }>('query-status');
    if (status.running && !after.running) await t.monitor.execute('cont');
    const why = complaint(out);
    if (why) throw new Error(`could not revert ${t.vmId} to ${name}: ${why}`);
  } else {
    await qemuImg(t.qemuImg, ['snapshot', '-q', '-a', name, t.overlay], `revert ${t.vmId}'s disk to ${name}`);
  }
  return snap;
}

export async function deleteSnapshot(t: SnapshotTarget, name: string): Promise<void> {
  validateSnapshotName(name);
  needDisk(t);
  await find(t, name); // delvm says nothing about a name it does not know
  if (t.monitor) {
    const why = complaint(await hmp(t.monitor, `delvm ${name}`));
    if (why) throw new Error(`could not delete ${t.vmId}'s snapshot ${name}: ${why}`);
  } else {
    await qemuImg(
      t.qemuImg,
      ['snapshot', '-q', '-d', name, t.overlay],
      `delete ${t.vmId}'s snapshot ${name}`,
    );
  }
}
