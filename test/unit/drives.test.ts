// Which drives an image may be written to, and how rights to write one are asked for.
// Drive lists are fed in as data shaped exactly like drivelist's (its fields and types),
// since no SD card reader exists here.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Drive as DrivelistDrive } from 'drivelist';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chooseTarget,
  driveHolding,
  eligibility,
  normaliseDrive,
} from '../../electron/engine/flash/drives.ts';
import { elevationPlan, runElevated } from '../../electron/engine/flash/elevate.ts';

const GiB = 1024 ** 3;

function drivelistDrive(over: Partial<DrivelistDrive>): DrivelistDrive {
  return {
    enumerator: 'lsblk:json',
    busType: 'USB',
    busVersion: null,
    device: '/dev/sdz',
    devicePath: null,
    raw: '/dev/sdz',
    description: 'Generic SD card reader',
    error: null,
    size: 32 * GiB,
    blockSize: 512,
    logicalBlockSize: 512,
    mountpoints: [],
    isReadOnly: false,
    isSystem: false,
    isVirtual: false,
    isRemovable: true,
    isCard: null,
    isSCSI: false,
    isUSB: true,
    isUAS: null,
    partitionTableType: 'mbr',
    ...over,
  };
}

// A laptop: system NVMe with / and /home, a card with the image on it, a locked card, a tiny card, a good card.
const list: DrivelistDrive[] = [
  drivelistDrive({
    device: '/dev/nvme0n1',
    raw: '/dev/nvme0n1',
    description: 'Samsung SSD 980',
    size: 512 * GiB,
    isSystem: true,
    isRemovable: false,
    busType: 'NVME',
    mountpoints: [
      { path: '/', label: null },
      { path: '/home', label: null },
    ],
  }),
  drivelistDrive({
    device: '/dev/sdb',
    raw: '/dev/sdb',
    description: 'USB stick with images',
    size: 64 * GiB,
    mountpoints: [{ path: '/media/me/IMAGES', label: 'IMAGES' }],
  }),
  drivelistDrive({ device: '/dev/sdc', raw: '/dev/sdc', description: 'Locked SD card', isReadOnly: true }),
  drivelistDrive({
    device: '/dev/sdd',
    raw: '/dev/sdd',
    description: 'Old 128 MB card',
    size: 128 * 1024 * 1024,
  }),
  drivelistDrive({ device: '/dev/sde', raw: '/dev/sde', description: 'SanDisk Ultra 32 GB', size: 32 * GiB }),
  drivelistDrive({
    device: '/dev/sdf',
    raw: '/dev/sdf',
    description: 'Internal SATA disk',
    isRemovable: false,
    size: GiB * 1000,
  }),
];
const drives = list.map(normaliseDrive);
const byDevice = (d: string) => drives.find((x) => x.device === d)!;
const image = { path: '/media/me/IMAGES/raspios.img', bytes: 2 * GiB };

describe('eligibility', () => {
  it('refuses the system drive', () => {
    const v = eligibility(byDevice('/dev/nvme0n1'), image.bytes, '/home/me/raspios.img', drives);
    expect(v).toEqual({ ok: false, reason: expect.stringMatching(/^\/dev\/nvme0n1 .*system drive/) });
  });

  it('refuses the drive the image sits on (longest mountpoint wins over /)', () => {
    expect(driveHolding(image.path, drives)?.device).toBe('/dev/sdb');
    expect(driveHolding('/home/me/x.img', drives)?.device).toBe('/dev/nvme0n1');
    const v = eligibility(byDevice('/dev/sdb'), image.bytes, image.path, drives);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.reason).toMatch(/holds the image being written/);
    // Without the full list a mountpoint above the image's path is enough to refuse.
    expect(eligibility(byDevice('/dev/sdb'), image.bytes, image.path).ok).toBe(false);
    // A sibling mount whose name merely starts the same is not "above" it.
    expect(eligibility(byDevice('/dev/sdb'), image.bytes, '/media/me/IMAGES2/x.img').ok).toBe(true);
  });

  it('refuses a read-only card', () => {
    const v = eligibility(byDevice('/dev/sdc'), image.bytes, image.path, drives);
    expect(!v.ok && v.reason).toMatch(/^\/dev\/sdc \(Locked SD card\) is read-only/);
  });

  it('refuses a card that is too small, saying both sizes', () => {
    const v = eligibility(byDevice('/dev/sdd'), image.bytes, image.path, drives);
    expect(!v.ok && v.reason).toBe('/dev/sdd (Old 128 MB card) is too small: 128 MiB for a 2.0 GiB image');
  });

  it('refuses a fixed (non-removable) disk', () => {
    const v = eligibility(byDevice('/dev/sdf'), image.bytes, image.path, drives);
    expect(!v.ok && v.reason).toMatch(/not a removable drive/);
  });

  it('refuses virtual drives (zram swap, loop devices), as drivelist reports them', () => {
    const zram = normaliseDrive(
      drivelistDrive({ device: '/dev/zram0', description: '', size: null, isVirtual: true }),
    );
    expect(eligibility(zram, image.bytes, image.path)).toEqual({
      ok: false,
      reason: '/dev/zram0 is a virtual drive (zram, loop, RAM disk), not a card',
    });
  });

  it('refuses a reader with no card (no size)', () => {
    const empty = normaliseDrive(drivelistDrive({ device: '/dev/sdg', size: null }));
    expect(eligibility(empty, image.bytes, image.path).ok).toBe(false);
  });

  it('accepts a good SD card', () => {
    expect(eligibility(byDevice('/dev/sde'), image.bytes, image.path, drives)).toEqual({ ok: true });
    // Exactly the image's size fits.
    expect(eligibility(byDevice('/dev/sde'), 32 * GiB, image.path, drives)).toEqual({ ok: true });
  });

  it('every refusal is one line', () => {
    for (const d of drives) {
      const v = eligibility(d, image.bytes, image.path, drives);
      if (!v.ok) expect(v.reason).not.toMatch(/\n/);
    }
  });

  it('compares Windows paths by drive letter, case-insensitively', () => {
    const win = [
      normaliseDrive(
        drivelistDrive({
          device: '\\\\.\\PHYSICALDRIVE0',
          isSystem: true,
          mountpoints: [{ path: 'C:\\', label: null }],
        }),
      ),
      normaliseDrive(
        drivelistDrive({ device: '\\\\.\\PHYSICALDRIVE2', mountpoints: [{ path: 'E:\\', label: 'CARD' }] }),
      ),
    ];
    expect(driveHolding('e:\\images\\pi.img', win)?.device).toBe('\\\\.\\PHYSICALDRIVE2');
    expect(eligibility(win[1]!, GiB, 'E:\\images\\pi.img', win).ok).toBe(false);
    expect(eligibility(win[1]!, GiB, 'C:\\Users\\me\\pi.img', win).ok).toBe(true);
  });
});

describe('chooseTarget: never without confirmation', () => {
  it('an eligible card still needs the confirmation', () => {
    expect(() => chooseTarget(drives, '/dev/sde', image, false)).toThrow(/replaces everything on \/dev\/sde/);
    try {
      chooseTarget(drives, '/dev/sde', image, false);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('ENOTCONFIRMED');
    }
    expect(chooseTarget(drives, '/dev/sde', image, true).device).toBe('/dev/sde');
  });

  it('an ineligible drive is refused even when confirmed, and unknown drives are named', () => {
    expect(() => chooseTarget(drives, '/dev/nvme0n1', image, true)).toThrow(/system drive/);
    expect(() => chooseTarget(drives, '/dev/sdq', image, true)).toThrow(/^no drive \/dev\/sdq/);
  });
});

describe('asking for administrator rights (Linux: pkexec)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-elevate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // MOCK (polkit cannot ask anyone for a password in a test): a "pkexec" that runs its
  // arguments as they are, or exits as a dismissed dialog does.
  const fakePkexec = (name: string, body: string) => {
    mkdirSync(path.join(dir, name), { recursive: true });
    const f = path.join(dir, name, 'pkexec');
    writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return { PATH: path.join(dir, name) };
  };

  it('plans exactly the one flash command through pkexec, with the reason kept for the user', () => {
    const env = fakePkexec('ok', 'exec "$@"');
    const plan = elevationPlan(
      ['flash', '/img', '/dev/sde', '--yes', '--json', '--elevated'],
      'writing /dev/sde needs rights',
      {
        cli: ['/usr/bin/node', '/app/bin/stacklab.mjs'],
        platform: 'linux',
        env,
      },
    );
    expect(plan).toEqual({
      command: path.join(dir, 'ok', 'pkexec'),
      args: [
        '/usr/bin/node',
        '/app/bin/stacklab.mjs',
        'flash',
        '/img',
        '/dev/sde',
        '--yes',
        '--json',
        '--elevated',
      ],
      reason: 'writing /dev/sde needs rights',
    });
  });

  it('says what to do when pkexec is missing or the platform is not Linux yet', () => {
    expect(() =>
      elevationPlan(['flash'], 'writing /dev/sde needs rights', { platform: 'linux', env: { PATH: dir } }),
    ).toThrow(/^writing \/dev\/sde needs rights, and pkexec \(polkit\) is not installed/);
    expect(() => elevationPlan(['flash'], 'why', { platform: 'darwin', env: { PATH: dir } })).toThrow(
      /only built for Linux so far/,
    );
  });

  it('relays the elevated command’s JSON lines, and a dismissed dialog is a clear refusal', async () => {
    const ok = fakePkexec('relay', 'exec "$@"');
    const plan = elevationPlan(
      [
        '-e',
        'console.log(JSON.stringify({event:"progress",position:1}));console.log(JSON.stringify({event:"done"}))',
      ],
      'r',
      { cli: [process.execPath], platform: 'linux', env: ok },
    );
    const lines: string[] = [];
    expect(await runElevated(plan, (l) => lines.push(l))).toBe(0);
    expect(lines.map((l) => JSON.parse(l).event)).toEqual(['progress', 'done']);
    const dismissed = elevationPlan(['x'], 'r', {
      cli: [],
      platform: 'linux',
      env: fakePkexec('no', 'exit 126'),
    });
    await expect(runElevated(dismissed, () => undefined)).rejects.toThrow(
      /^administrator rights were not granted; nothing was written$/,
    );
  });
});
