// The customise and flash requests through the real engine's dispatcher, as every front end
// sends them: contract validation, customise.get without secrets, drive verdicts, a flash
// to a file-backed drive with write/verify progress, cancel, and the explicit confirm.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventPayload, Progress } from '../../electron/common/contract.ts';
import type { TestOnlyDrive } from '../../electron/engine/flash/flash-jobs.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import { demoGuests, NO_GUESTS } from '../helpers/cli.ts';

const IMAGE = 'demo-qemuarm64';
const arm = demoGuests()?.find((g) => g.name === IMAGE);
if (!arm) console.warn(`skipping the customise/flash requests: ${NO_GUESTS}`);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-flash-req-'));
const home = path.join(tmp, 'home');
const card = path.join(tmp, 'card.img');
const GiB = 1024 ** 3;
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

// TEST-ONLY MOCK (no card reader here): the drive list is fed in as data; the one good
// card is backed by a regular file.
const drive = (over: Partial<TestOnlyDrive> & { device: string }): TestOnlyDrive => ({
  raw: over.device,
  description: 'Card reader',
  size: 8 * GiB,
  removable: true,
  system: false,
  virtual: false,
  mountpoints: [],
  readOnly: false,
  ...over,
});
const fed: TestOnlyDrive[] = [
  drive({
    device: '/dev/nvme0n1',
    description: 'System SSD',
    size: 512 * GiB,
    system: true,
    removable: false,
    mountpoints: ['/'],
  }),
  drive({ device: '/dev/sdx', description: 'Tiny card', size: 1024 * 1024 }),
  drive({ device: '/dev/sdy', description: 'USB disk', removable: false }),
  drive({ device: '/dev/sdz', description: 'Test card (file-backed)', file: card }),
];

let engine: Engine | undefined;
const events: Array<{ event: string; payload: unknown }> = [];
const req = (method: string, params: unknown) => engine!.dispatcher.dispatch(method, params);

beforeAll(async () => {
  if (!arm) return;
  engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home }, testOnlyDrives: fed });
  engine.hub.onAny((event, payload) => events.push({ event, payload }));
});
afterAll(async () => {
  await engine?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function taskEvents(taskId: string): Progress[] {
  return events
    .filter((e) => e.event === 'progress' && (e.payload as Progress).taskId === taskId)
    .map((e) => e.payload as Progress);
}

async function settled(taskId: string): Promise<Progress> {
  for (let i = 0; i < 600; i++) {
    const last = taskEvents(taskId).at(-1);
    if (last && last.state !== 'running') return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`task ${taskId} never ended`);
}

describe.skipIf(!arm)('customise and flash requests', () => {
  const password = 'correct horse battery staple';
  const key = `ssh-ed25519 ${Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from('ssh-ed25519'),
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, 9),
  ]).toString('base64')} me@laptop`;

  it('vm.customise refuses a bad spec in one line naming the field', async () => {
    await expect(req('vm.customise', { imageId: IMAGE, spec: { hostname: 'bad_name' } })).rejects.toThrow(
      /^bad params for vm\.customise at spec\.hostname: hostname may only hold letters, digits/,
    );
    await expect(
      req('vm.customise', {
        imageId: IMAGE,
        spec: { wifi: { country: 'GB', ssid: 'Home', passphrase: 'short' } },
      }),
    ).rejects.toThrow(/Wi-Fi passphrase must be 8 to 63 printable ASCII characters$/);
    await expect(req('vm.customise', { imageId: IMAGE, spec: {} })).rejects.toThrow(/^nothing to customise/);
  });

  it('vm.customise applies to the working copy; customise.get shows it without secrets', async () => {
    const before = await req('customise.get', { imageId: IMAGE });
    expect(before).toMatchObject({ customised: false, hasDisk: false, running: false, changes: [] });
    const r = (await req('vm.customise', {
      imageId: IMAGE,
      spec: { hostname: 'from-the-form', sshAuthorizedKey: key, user: { name: 'ann', password } },
    })) as { changes: string[]; flavour: string };
    expect(r.flavour).toBe('rootfs');
    expect(r.changes).toContain('/etc/hostname: from-the-form');
    const got = await req('customise.get', { imageId: IMAGE });
    expect(got).toMatchObject({
      customised: true,
      settings: { hostname: 'from-the-form', sshAuthorizedKey: key, user: { name: 'ann' } },
    });
    // Neither the answer nor what the engine keeps on disk holds the password.
    expect(JSON.stringify(got)).not.toContain(password);
    const record = readFileSync(path.join(home, 'vms', IMAGE, 'working-base.json'), 'utf8');
    expect(record).toContain('from-the-form');
    expect(record).not.toContain(password);
    // The customisation ran as a task with a bar.
    expect(taskEvents(`customise-${IMAGE}`).map((p) => p.state)).toContain('done');
  });

  it('drives.list gives each fed drive its verdict; refused ones say why in one line', async () => {
    const r = (await req('drives.list', { imageId: IMAGE })) as {
      drives: Array<{ device: string; eligible: boolean; reason?: string; needsElevation: boolean }>;
      source: { customised: boolean; imageBytes: number };
      elevation: string;
    };
    expect(r.source.customised).toBe(true);
    expect(r.source.imageBytes).toBeGreaterThan(1024 * 1024);
    expect(r.drives.map((d) => d.device)).toEqual(['/dev/sdz', '/dev/nvme0n1', '/dev/sdx', '/dev/sdy']);
    const by = Object.fromEntries(r.drives.map((d) => [d.device, d]));
    expect(by['/dev/sdz']).toMatchObject({ eligible: true, needsElevation: false });
    expect(by['/dev/nvme0n1']!.reason).toMatch(/is a system drive; Stacklab never writes to one$/);
    expect(by['/dev/sdx']!.reason).toMatch(/is too small: 1\.0 MiB for a \d+(\.\d)? MiB image$/);
    expect(by['/dev/sdy']!.reason).toMatch(/is not a removable drive$/);
    expect(r.elevation).toMatch(/administrator/);
  });

  it('flash.start needs confirm: true and an eligible drive', async () => {
    await expect(req('flash.start', { imageId: IMAGE, device: '/dev/sdz' })).rejects.toThrow(
      /^bad params for flash\.start at confirm: confirm must be true: flashing replaces everything/,
    );
    await expect(req('flash.start', { imageId: IMAGE, device: '/dev/sdz', confirm: false })).rejects.toThrow(
      /confirm must be true/,
    );
    await expect(
      req('flash.start', { imageId: IMAGE, device: '/dev/nvme0n1', confirm: true }),
    ).rejects.toThrow(/is a system drive/);
    await expect(req('flash.start', { device: '/dev/sdz', confirm: true })).rejects.toThrow(
      /give the imageId or the vmId/,
    );
  });

  it('flash.start writes the customised copy to the file-backed drive, with write and verify progress', async () => {
    writeFileSync(card, Buffer.alloc(64, 1)); // an old card's contents: replaced
    const { taskId } = (await req('flash.start', { imageId: IMAGE, device: '/dev/sdz', confirm: true })) as {
      taskId: string;
    };
    const end = await settled(taskId);
    expect(end.state, end.message).toBe('done');
    const finished = events.find(
      (e) => e.event === 'flash.finished' && (e.payload as { taskId: string }).taskId === taskId,
    )?.payload as EventPayload<'flash.finished'>;
    expect(finished).toMatchObject({ imageId: IMAGE, device: '/dev/sdz', customised: true, verified: true });
    const working = (
      JSON.parse(readFileSync(path.join(home, 'vms', IMAGE, 'working-base.json'), 'utf8')) as { path: string }
    ).path;
    expect(readFileSync(card).equals(readFileSync(working))).toBe(true);
    const bytes = taskEvents(taskId).filter((p) => p.unit === 'bytes');
    expect(new Set(bytes.map((p) => p.phase))).toEqual(new Set(['write', 'verify']));
    for (const p of bytes) expect(p.total).toBe(finished.imageBytes);
  });

  it('task.cancel stops a flash; the task ends cancelled and nothing says it finished', async () => {
    const before = sha256(card);
    const { taskId } = (await req('flash.start', { imageId: IMAGE, device: '/dev/sdz', confirm: true })) as {
      taskId: string;
    };
    await req('task.cancel', { taskId });
    const end = await settled(taskId);
    expect(end.state).toBe('cancelled');
    expect(end.message).toBe(
      `cancelled: ${card} holds only part of the image now; write it again before using it`,
    );
    expect(
      events.some((e) => e.event === 'flash.finished' && (e.payload as { taskId: string }).taskId === taskId),
    ).toBe(false);
    expect(sha256(card)).not.toBe(before); // the file was emptied for the write that was stopped
    await expect(req('task.cancel', { taskId })).rejects.toThrow(/no running task/);
  });

  it('customise.reset drops the customisation; flashing then writes the image as it came', async () => {
    expect(await req('customise.reset', { imageId: IMAGE })).toEqual({ dropped: true });
    const got = await req('customise.get', { imageId: IMAGE });
    expect(got).toMatchObject({ customised: false, changes: [] });
    const r = (await req('drives.list', { imageId: IMAGE })) as { source: { customised: boolean } };
    expect(r.source.customised).toBe(false);
  });
});
