// VM disks with real QEMU and the demo guests: a snapshot, a change in the guest, a revert,
// and the change is gone — live (savevm/loadvm through QMP) and stopped (qemu-img on the
// overlay); reset goes back to the base; resize grows the disk and the guest's df sees it,
// for a bare ext4 (qemuarm64) and for partition 2 of an SD card (raspberrypi3-64). The
// base images' sha256 must not change. Plus real-file checks without booting: a GPT image
// grown and verified by sfdisk, and a resize that fails midway leaving the old disk as it was.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPartitions } from '../../electron/engine/disk/partitions.ts';
import { e2fsTools, findTool } from '../../electron/engine/disks/ext4-grow.ts';
import { resizeDisk } from '../../electron/engine/disks/resize.ts';
import { parseSize } from '../../electron/engine/disks/size.ts';
import { validateSnapshotName } from '../../electron/engine/disks/snapshots.ts';
import { VmDisks } from '../../electron/engine/disks/vm-disks.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import { guestsDir } from '../../electron/engine/paths.ts';
import { runInGuest } from '../../electron/engine/vm/guest-shell.ts';
import { ensureOverlay } from '../../electron/engine/vm/overlay.ts';
import type { Vm } from '../../electron/engine/vm/vm.ts';

const NO_GUESTS = 'demo guests not built: run npm run guests';
const CLI = path.resolve(import.meta.dirname, '..', '..', 'bin', 'stacklab.mjs');
const guestsIndex = path.join(guestsDir(), 'guests.json');
const haveGuests = existsSync(guestsIndex);
if (!haveGuests) console.log(`disks tests skipped: ${NO_GUESTS}`);
const haveE2fs = Boolean(findTool('e2fsck') && findTool('resize2fs') && findTool('mke2fs'));
if (!haveE2fs)
  console.log('disk resize tests skipped: e2fsprogs (e2fsck, resize2fs, mke2fs) is not installed');
const haveSfdisk = Boolean(findTool('sfdisk'));
if (!haveSfdisk) console.log('GPT resize test skipped: sfdisk (fdisk package) is not installed');

const ARM = 'demo-qemuarm64';
const PI = 'demo-raspberrypi3-64';
const MiB = 2 ** 20;

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return h.digest('hex');
}

function deployDirOf(name: string): string {
  const list = JSON.parse(readFileSync(guestsIndex, 'utf8')) as Array<{ name: string; deployDir: string }>;
  const g = list.find((x) => x.name === name);
  if (!g) throw new Error(`${name} missing from guests.json`);
  return path.resolve(guestsDir(), g.deployDir);
}

function baseOf(name: string): string {
  const dir = deployDirOf(name);
  const f = readdirSync(dir).find((n) => /\.rootfs\.(ext4|wic)$/.test(n));
  if (!f) throw new Error(`no rootfs in ${dir}`);
  return path.join(dir, f);
}

/** A thrown error's message must be one line. */
async function oneLineError(p: Promise<unknown> | (() => unknown)): Promise<string> {
  let msg: string | undefined;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    msg = (e as Error).message;
  }
  expect(msg, 'expected an error').toBeDefined();
  expect(msg).not.toContain('\n');
  return msg!;
}

const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-disks-'));
const env = { ...process.env, STACKLAB_HOME: home };
let engine: Engine;
let disks: VmDisks;
const baseShas = new Map<string, string>();

beforeAll(async () => {
  if (!haveGuests) return;
  for (const g of [ARM, PI]) baseShas.set(g, await sha256(baseOf(g)));
  engine = await createEngine({ env });
  disks = new VmDisks(engine, env);
});

afterAll(async () => {
  await engine?.dispose();
  rmSync(home, { recursive: true, force: true });
});

async function boot(id: string): Promise<Vm> {
  const vm = await engine.supervisor.boot(await engine.library.resolve(id));
  await runInGuest(vm.consoles[0]!, 'true', { timeoutMs: 150_000 });
  return vm;
}

async function sh(vm: Vm, cmd: string): Promise<string> {
  const r = await runInGuest(vm.consoles[0]!, cmd, { timeoutMs: 60_000 });
  expect(r.status, `${cmd} → ${r.output}`).toBe(0);
  return r.output.trim();
}

async function stop(vm: Vm): Promise<void> {
  // The guests were told to sync; QEMU's quit flushes its own caches.
  await engine.supervisor.stop(vm.id, true);
  expect(vm.exit).toBeDefined();
}

const markerState = 'if [ -e /root/marker ]; then echo present; else echo gone; fi';

describe.skipIf(!haveGuests)(`snapshots, reset and resize of ${ARM} in real QEMU`, () => {
  it('a live snapshot (savevm), a change in the guest, a revert (loadvm): the change is gone', async () => {
    const vm = await boot(ARM);
    try {
      const snap = await disks.takeSnapshot(ARM, 'before');
      expect(snap.name).toBe('before');
      expect(snap.sizeBytes).toBeGreaterThan(1 * MiB); // RAM and device state were saved
      expect(snap.vmClock).toBeGreaterThan(0);
      expect(Math.abs(Date.parse(snap.date) - Date.now())).toBeLessThan(120_000);

      expect(await sh(vm, 'echo hello > /root/marker; sync; cat /root/marker')).toBe('hello');
      expect(await sh(vm, markerState)).toBe('present');

      await disks.revertSnapshot(ARM, 'before');
      expect(await sh(vm, markerState)).toBe('gone');
      expect(vm.exit).toBeUndefined(); // the guest kept running after the revert

      expect((await disks.listSnapshots(ARM)).map((s) => s.name)).toEqual(['before']);
      // What a user can get wrong, each refused in one line and nothing lost.
      expect(await oneLineError(disks.takeSnapshot(ARM, 'before'))).toMatch(
        /already has a snapshot called before/,
      );
      expect(await oneLineError(disks.takeSnapshot(ARM, 'two words'))).toMatch(/snapshot names are/);
      expect(await oneLineError(disks.takeSnapshot(ARM, '42'))).toMatch(/not only digits/);
      expect(await oneLineError(disks.revertSnapshot(ARM, 'nosuch'))).toMatch(
        /has no snapshot called nosuch \(it has: before\)/,
      );
      expect(await oneLineError(disks.deleteSnapshot(ARM, 'nosuch'))).toMatch(
        /has no snapshot called nosuch/,
      );
      expect(await oneLineError(() => disks.reset(ARM))).toMatch(/is running; stop it before resetting/);
      expect(await oneLineError(disks.resize(ARM, 256 * MiB))).toMatch(/is running; stop it before resizing/);
      expect(await sh(vm, 'uname -m')).toBe('aarch64'); // and the guest is still fine
    } finally {
      await stop(vm);
    }
  });

  it('stopped: qemu-img snapshot of the overlay, a change in the guest, qemu-img revert: the change is gone', async () => {
    const cold = await disks.takeSnapshot(ARM, 'cold');
    expect(cold.sizeBytes).toBe(0); // disk only
    expect(disks.usage(ARM).snapshots).toBe(2);

    let vm = await boot(ARM);
    try {
      expect(await sh(vm, 'echo hello > /root/marker; sync; cat /root/marker')).toBe('hello');
      // A disk-only snapshot cannot be loaded into a running guest.
      expect(await oneLineError(disks.revertSnapshot(ARM, 'cold'))).toMatch(/taken while .* was stopped/);
    } finally {
      await stop(vm);
    }

    await disks.revertSnapshot(ARM, 'cold');
    vm = await boot(ARM);
    try {
      expect(await sh(vm, markerState)).toBe('gone');
      // A change for the reset test to undo.
      await sh(vm, 'echo keep > /root/after-revert; sync');
    } finally {
      await stop(vm);
    }

    await disks.deleteSnapshot(ARM, 'before');
    expect((await disks.listSnapshots(ARM)).map((s) => s.name)).toEqual(['cold']);
  });

  it('reset returns the disk to the base image', async () => {
    const before = disks.usage(ARM);
    expect(before.overlayBytes).toBeGreaterThan(0);
    const r = disks.reset(ARM);
    expect(r.changed).toBe(true);
    expect(r.droppedSnapshots).toBe(1);
    expect(r.freedBytes).toBe(before.overlayBytes + before.baseBytes);
    expect(existsSync(path.join(disks.vmDir(ARM), 'disk.qcow2'))).toBe(false);
    expect(disks.usage(ARM)).toEqual({ overlayBytes: 0, baseBytes: 0, snapshots: 0, virtualBytes: 0 });

    const vm = await boot(ARM);
    try {
      expect(await sh(vm, 'if [ -e /root/after-revert ]; then echo present; else echo gone; fi')).toBe(
        'gone',
      );
      await sh(vm, 'echo survives > /root/kept; sync');
    } finally {
      await stop(vm);
    }
  });

  it.skipIf(!haveE2fs)(
    'resize grows the disk and the ext4 root offline; df -m / in the guest shows it',
    async () => {
      const vmDir = disks.vmDir(ARM);
      const overlayBefore = await sha256(path.join(vmDir, 'disk.qcow2'));
      // Refusals first: they must leave the disk exactly as it was.
      expect(await oneLineError(disks.resize(ARM, 16 * MiB))).toMatch(/disks only grow/);
      expect(await oneLineError(disks.resize(ARM, 256 * MiB + 1))).toMatch(/whole MiB/);
      expect(await oneLineError(async () => parseSize('lots'))).toMatch(/not a size/);
      expect(await sha256(path.join(vmDir, 'disk.qcow2'))).toBe(overlayBefore);

      const r = await disks.resize(ARM, parseSize('256M'));
      expect(r.sizeBytes).toBe(256 * MiB);
      expect(r.partition).toBeUndefined(); // a bare ext4 has no table
      expect(path.basename(r.base)).toBe('grown-256M.raw');
      const u = disks.usage(ARM);
      expect(u.virtualBytes).toBe(256 * MiB);
      expect(u.overlayBytes).toBeLessThan(2 * MiB); // a fresh overlay
      expect(u.baseBytes).toBeGreaterThan(0);
      expect(u.baseBytes).toBeLessThan(256 * MiB); // the grown base is sparse

      const vm = await boot(ARM);
      try {
        const df = await sh(vm, "df -m / | tail -n 1 | awk '{print $2}'");
        expect(Number(df)).toBeGreaterThan(200);
        expect(await sh(vm, 'cat /root/kept')).toBe('survives'); // the changes made before the resize are kept
      } finally {
        await stop(vm);
      }
    },
  );

  it('the base image is unchanged after all of it', async () => {
    expect(await sha256(baseOf(ARM))).toBe(baseShas.get(ARM));
  });
});

describe.skipIf(!haveGuests || !haveE2fs)(`${PI}: an SD card grows partition 2 to a power of two`, () => {
  it('300 MiB is refused (not a power of two); 256 MiB boots with a bigger root; live snapshots are refused with QEMU’s reason', async () => {
    expect(await oneLineError(disks.resize(PI, 300 * MiB))).toMatch(
      /power of two.*choose 256 MiB or 512 MiB/,
    );
    const r = await disks.resize(PI, 256 * MiB);
    expect(r.partition).toMatchObject({ table: 'mbr', index: 2 });
    expect(r.partition!.newBytes).toBeGreaterThan(r.partition!.oldBytes);
    const parts = await findPartitions(r.base);
    expect(parts.table).toBe('mbr');
    expect(parts.root?.index).toBe(2);
    expect(parts.root!.offset + parts.root!.size).toBe(256 * MiB);
    expect(parts.boot?.index).toBe(1); // the FAT boot partition is where it was

    const vm = await boot(PI);
    try {
      const df = Number(await sh(vm, "df -m / | tail -n 1 | awk '{print $2}'"));
      expect(df).toBeGreaterThan(180);
      expect(await sh(vm, 'cat /proc/cmdline')).toMatch(/root=\/dev\/mmcblk0p2/);
      // raspi3b's usb-net cannot save its state: savevm refuses, and says why, in one line.
      expect(await oneLineError(disks.takeSnapshot(PI, 'live'))).toMatch(
        /cannot be snapshotted while it runs.*usb-net/,
      );
      expect(await sh(vm, 'uname -m')).toBe('aarch64');
    } finally {
      await stop(vm);
    }
    expect(await sha256(baseOf(PI))).toBe(baseShas.get(PI));
  });
});

describe.skipIf(!haveGuests)(`${ARM} run by another Stacklab process (the CLI)`, () => {
  it('a live snapshot through that VM’s control QMP socket; reset and resize refuse while it runs', async () => {
    const home2 = mkdtempSync(path.join(os.tmpdir(), 'stacklab-disks-cli-'));
    const env2 = { ...process.env, STACKLAB_HOME: home2 };
    const cli = spawn(process.execPath, [CLI, 'boot', ARM, '--headless'], {
      env: env2,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const other = await createEngine({ env: env2 });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        cli.stdout.on('data', (b) => {
          out += b;
          if (/\(pid \d+/.test(out)) resolve();
        });
        cli.on('exit', () => reject(new Error(`the CLI exited before booting: ${out}`)));
      });
      const d = new VmDisks(other, env2);
      const snap = await d.takeSnapshot(ARM, 'from-outside');
      expect(snap.sizeBytes).toBeGreaterThan(1 * MiB);
      expect((await d.listSnapshots(ARM)).map((x) => x.name)).toEqual(['from-outside']);
      expect(await oneLineError(() => d.reset(ARM))).toMatch(/is running/);
      expect(await oneLineError(d.resize(ARM, 256 * MiB))).toMatch(/is running/);
      cli.kill('SIGTERM'); // the CLI stops its VM on SIGTERM
      await new Promise((r) => (cli.exitCode === null ? cli.once('exit', r) : r(null)));
      // Stopped now: the snapshot is in the overlay on disk.
      const stopped = await d.listSnapshots(ARM);
      expect(stopped.map((x) => x.name)).toEqual(['from-outside']);
      expect(stopped[0]!.sizeBytes).toBe(snap.sizeBytes);
    } finally {
      if (cli.exitCode === null) cli.kill('SIGKILL');
      await other.dispose();
      rmSync(home2, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!haveE2fs)('resize on real files, no QEMU boot', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'stacklab-disks-files-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const qemuImg = findTool('qemu-img') ?? 'qemu-img';

  it.skipIf(!haveSfdisk)(
    'a GPT image: the root partition, the backup GPT and the ext4 inside all grow (sfdisk --verify)',
    async () => {
      const img = path.join(work, 'gpt.img');
      writeFileSync(img, '');
      truncateSync(img, 64 * MiB);
      execFileSync('sfdisk', ['--quiet', img], {
        input:
          'label: gpt\nstart=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=18432, type=0FC63DAF-8483-4772-8E69-3D47298C7D88\n',
      });
      const before = await findPartitions(img);
      const p2 = before.partitions.find((p) => p.index === 2)!;
      execFileSync(findTool('mke2fs')!, [
        '-q',
        '-F',
        '-t',
        'ext4',
        '-E',
        `offset=${p2.offset}`,
        img,
        `${p2.size / 1024}k`,
      ]);
      truncateSync(img, 64 * MiB); // mke2fs may have touched the length; the disk stays 64 MiB
      const vmDir = path.join(work, 'vm-gpt');
      const r = await resizeDisk({
        vmId: 'gpt',
        vmDir,
        qemuImg,
        base: { path: img, format: 'raw' },
        imageDisk: img,
        sdCard: false,
        sizeBytes: 128 * MiB,
        running: false,
      });
      expect(r.partition).toMatchObject({ table: 'gpt', index: 2 });
      const verify = spawnSync('sfdisk', ['--verify', r.base], { encoding: 'utf8' });
      expect(verify.status, verify.stdout + verify.stderr).toBe(0);
      expect(verify.stdout).toMatch(/No errors detected/);
      const after = await findPartitions(r.base);
      const np2 = after.partitions.find((p) => p.index === 2)!;
      expect(np2.offset).toBe(p2.offset);
      expect(np2.offset + np2.size).toBe(128 * MiB - 33 * 512); // up to the backup GPT (32 sectors of entries + header)
      // The file system inside fills the partition and is clean.
      const fsck = spawnSync(e2fsTools().e2fsck, ['-fn', `${r.base}?offset=${np2.offset}`], {
        encoding: 'utf8',
      });
      expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
      const blocks = /(\d+)\/(\d+) blocks/.exec(fsck.stdout);
      expect(Number(blocks![2]) * 1024).toBeGreaterThan(np2.size - 4 * MiB);
    },
  );

  it('a resize that fails midway leaves the previous disk as it was', async () => {
    const base = path.join(work, 'root.ext4');
    writeFileSync(base, '');
    truncateSync(base, 32 * MiB);
    execFileSync(findTool('mke2fs')!, ['-q', '-F', '-t', 'ext4', base]);
    const baseSha = await sha256(base);
    const vmDir = path.join(work, 'vm-fail');
    const overlay = path.join(vmDir, 'disk.qcow2');
    mkdirSync(vmDir, { recursive: true });
    await ensureOverlay({ qemuImg, base, baseFormat: 'raw', path: overlay });
    execFileSync(qemuImg, ['snapshot', '-c', 'keepme', overlay]);
    const overlaySha = await sha256(overlay);
    const spec = {
      vmId: 'fail',
      vmDir,
      qemuImg,
      base: { path: base, format: 'raw' as const },
      imageDisk: base,
      sdCard: false,
      sizeBytes: 64 * MiB,
      running: false,
    };
    // The overlay's snapshot would be lost: refused unless allowed.
    expect(await oneLineError(resizeDisk(spec))).toMatch(/1 snapshot\(s\), which resizing cannot keep/);
    // A failure injected after the copy and the fsck: resize2fs replaced by false(1) (the
    // only stand-in in this file: a real resize2fs failure cannot be provoked on demand).
    const failing = { e2fsck: e2fsTools().e2fsck, resize2fs: findTool('false')! };
    expect(await oneLineError(resizeDisk({ ...spec, dropSnapshots: true, tools: failing }))).toMatch(
      /resize2fs could not grow/,
    );
    expect(await sha256(overlay)).toBe(overlaySha);
    expect(existsSync(path.join(vmDir, 'working-base.json'))).toBe(false);
    expect(readdirSync(path.join(vmDir, 'base'))).toEqual([]); // no half-made base left behind
    const check = spawnSync(qemuImg, ['check', overlay], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(await sha256(base)).toBe(baseSha);
    // And the same resize with the real tools then succeeds.
    const r = await resizeDisk({ ...spec, dropSnapshots: true });
    expect(r.droppedSnapshots).toBe(1);
    expect(JSON.parse(readFileSync(path.join(vmDir, 'working-base.json'), 'utf8')).path).toBe(r.base);
    expect(await sha256(base)).toBe(baseSha);
  });

  it('snapshot names are validated in one line', async () => {
    for (const bad of ['', 'a b', '-x', '.x', '123', 'x'.repeat(65), 'semi;colon', 'new\nline'])
      expect(await oneLineError(async () => validateSnapshotName(bad))).toMatch(/snapshot names are/);
    for (const good of ['before', 'v1.2', 'pre_upgrade-2', '2024-01-01'])
      expect(validateSnapshotName(good)).toBe(good);
  });
});
