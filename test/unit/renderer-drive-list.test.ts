// How the Flash panel presents drives and a flash: refused drives greyed with their reason,
// the preselected drive, the confirmation's words, the progress line, and when "Flash this"
// is offered on a VM.
import { describe, expect, it } from 'vitest';
import type { DriveChoice, FlashFinished, Progress, VmSummary } from '../../electron/common/contract.ts';
import {
  canFlashThis,
  confirmFlash,
  driveRows,
  flashView,
  pickDrive,
} from '../../renderer/src/lib/drive-list.ts';

const GB = 1e9;
const drive = (over: Partial<DriveChoice> & { device: string }): DriveChoice => ({
  description: '',
  sizeBytes: 32 * GB,
  removable: true,
  system: false,
  readOnly: false,
  virtual: false,
  mountpoints: [],
  eligible: true,
  needsElevation: false,
  ...over,
});

const list: DriveChoice[] = [
  drive({ device: '/dev/sdb', description: 'SanDisk Ultra', sizeBytes: 31.9 * GB, needsElevation: true }),
  drive({
    device: '/dev/nvme0n1',
    description: 'Samsung SSD 980',
    sizeBytes: 512 * GB,
    removable: false,
    system: true,
    mountpoints: ['/', '/home', '/boot', '/var'],
    eligible: false,
    reason: '/dev/nvme0n1 (Samsung SSD 980) is a system drive; Stacklab never writes to one',
  }),
  drive({
    device: '/dev/sdc',
    sizeBytes: null,
    eligible: false,
    reason: '/dev/sdc reports no size (is a card in the reader?)',
  }),
];

describe('drive rows', () => {
  it('eligible drives can be chosen; refused ones are disabled with their one-line reason', () => {
    const rows = driveRows(list);
    expect(rows[0]).toEqual({
      device: '/dev/sdb',
      title: 'SanDisk Ultra',
      size: '31.9 GB',
      detail: '/dev/sdb · removable',
      disabled: false,
      reason: undefined,
      needsElevation: true,
    });
    expect(rows[1]).toMatchObject({
      disabled: true,
      reason: '/dev/nvme0n1 (Samsung SSD 980) is a system drive; Stacklab never writes to one',
      detail: '/dev/nvme0n1 · fixed, system · mounted at /, /home, /boot',
    });
    // No description: the device names it; no size: said so.
    expect(rows[2]).toMatchObject({ title: '/dev/sdc', size: 'no size', disabled: true });
    for (const r of rows) if (r.reason) expect(r.reason).not.toMatch(/\n/);
  });

  it('keeps the chosen drive while it may be written, else picks the only eligible one', () => {
    const rows = driveRows(list);
    expect(pickDrive(rows, undefined)).toBe('/dev/sdb');
    expect(pickDrive(rows, '/dev/nvme0n1')).toBe('/dev/sdb'); // a refused drive is never kept
    const two = driveRows([...list, drive({ device: '/dev/sdd', description: 'Other card' })]);
    expect(pickDrive(two, undefined)).toBeUndefined(); // two cards: the user picks
    expect(pickDrive(two, '/dev/sdd')).toBe('/dev/sdd');
    expect(pickDrive(driveRows(list.slice(1)), '/dev/sdb')).toBeUndefined(); // the card was pulled out
  });
});

describe('flash confirmation', () => {
  const source = { imageId: 'demo-raspberrypi3-64', customised: true, imageBytes: 300e6 };
  it('names the drive, its size and what is written; explains elevated rights when they are needed', () => {
    const c = confirmFlash(list[0]!, source, 'Only an administrator may write a whole drive.');
    expect(c.title).toBe('Erase /dev/sdb and write it?');
    expect(c.message).toMatch(
      /^Everything on SanDisk Ultra \(\/dev\/sdb\), 31\.9 GB is replaced by demo-raspberrypi3-64 with its customisation/,
    );
    expect(c.message).toMatch(/300 MB\./);
    expect(c.message).toMatch(/Only an administrator may write a whole drive\.$/);
    const file = confirmFlash(drive({ device: '/dev/sdz' }), { ...source, customised: false }, 'ADMIN');
    expect(file.message).toMatch(
      /^Everything on \/dev\/sdz, 32\.0 GB is replaced by demo-raspberrypi3-64 as it came/,
    );
    expect(file.message).not.toMatch(/ADMIN/);
  });
});

describe('flash progress', () => {
  const p = (over: Partial<Progress>): Progress => ({
    taskId: 'flash-1',
    label: 'Flashing x to /dev/sdb',
    state: 'running',
    done: 0,
    unit: 'bytes',
    ...over,
  });
  it('shows the phase, percent, bytes, speed and time left', () => {
    expect(
      flashView(p({ phase: 'write', done: 100e6, total: 400e6, ratePerSec: 25e6, etaSec: 12 }), undefined),
    ).toEqual({
      state: 'running',
      label: 'Writing',
      percent: 25,
      detail: '100 MB of 400 MB · 25.0 MB/s · 12 s left',
    });
    expect(flashView(p({ phase: 'verify', done: 400e6, total: 400e6 }), undefined)).toMatchObject({
      label: 'Verifying',
      percent: 100,
    });
    // Before the first byte: the task exists, no size yet.
    expect(flashView(p({ unit: 'items' }), undefined)).toEqual({
      state: 'running',
      label: 'Starting',
      detail: '',
    });
    expect(flashView(undefined, undefined).state).toBe('idle');
  });

  it('says how it ended: verified and ejected, failed with the reason, or cancelled', () => {
    const fin: FlashFinished = {
      taskId: 'flash-1',
      imageId: 'x',
      device: '/dev/sdb',
      customised: true,
      imageBytes: 400e6,
      bytesWritten: 400e6,
      verified: true,
      durationMs: 12_345,
      averageSpeed: 65e6,
      ejected: true,
    };
    expect(flashView(p({ state: 'done', done: 1, total: 1, unit: 'items' }), fin)).toEqual({
      state: 'done',
      label: 'Written and verified',
      percent: 100,
      detail:
        '400 MB in 12.3 s: every byte read back matches the image. It is unmounted: you can remove it now.',
    });
    expect(flashView(undefined, { ...fin, verified: false, ejected: false }).label).toBe(
      'Written (not verified)',
    );
    expect(
      flashView(
        p({ state: 'failed', message: 'verification failed: what was read back from /dev/sdb differs' }),
        undefined,
      ),
    ).toEqual({
      state: 'failed',
      label: 'Failed',
      detail: 'verification failed: what was read back from /dev/sdb differs',
    });
    expect(
      flashView(p({ state: 'cancelled', message: 'cancelled: /dev/sdb holds only part' }), undefined),
    ).toMatchObject({
      state: 'cancelled',
      label: 'Cancelled',
    });
  });
});

describe('"Flash this" on a VM', () => {
  const vm = (over: Partial<VmSummary>): VmSummary =>
    ({
      id: 'demo-qemuarm64',
      imageId: 'demo-qemuarm64',
      state: 'running',
      depth: 1,
      milestones: [
        { name: 'kernel', atMs: 100 },
        { name: 'login', atMs: 900 },
      ],
      ...over,
    }) as VmSummary;
  it("appears once the image's own VM reached login or a shell", () => {
    expect(canFlashThis(vm({}))).toBe(true);
    expect(canFlashThis(vm({ state: 'stopped' }))).toBe(true); // it did boot fine
    expect(canFlashThis(vm({ milestones: [{ name: 'kernel', atMs: 100 }] }))).toBe(false);
    expect(canFlashThis(vm({ state: 'crashed' }))).toBe(false);
    expect(canFlashThis(vm({ id: 'seed-arm64', imageId: 'demo-qemuarm64-host' }))).toBe(false); // a stack layer
    expect(canFlashThis(vm({ depth: 2 }))).toBe(false);
    expect(canFlashThis(undefined)).toBe(false);
  });
});
