// The Raspberry Pi path end to end: the demo SD card image, compressed as .wic.xz the way
// people download them, with a size that is NOT a power of two (QEMU's SD card refuses
// those), is imported through importImage and boots to a shell on raspi3b with the root on
// the SD card's second partition. Neither the store's blob nor the original .wic change.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { isPowerOfTwo } from '../../electron/engine/disks/size.ts';
import { importImage } from '../../electron/engine/images/import.ts';
import { mainDisk } from '../../electron/engine/images/record.ts';
import { Store } from '../../electron/engine/images/store.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import { guestsDir } from '../../electron/engine/paths.ts';
import { runInGuest } from '../../electron/engine/vm/guest-shell.ts';

const NO_GUESTS = 'demo guests not built: run npm run guests';
const guestsIndex = path.join(guestsDir(), 'guests.json');
const haveGuests = existsSync(guestsIndex);
const haveXz = !spawnSync('xz', ['--version'], { stdio: 'ignore' }).error;
if (!haveGuests) console.log(`pi-import test skipped: ${NO_GUESTS}`);
else if (!haveXz) console.log('pi-import test skipped: xz is not installed (xz-utils)');

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return h.digest('hex');
}

function demoWic(): string {
  const list = JSON.parse(readFileSync(guestsIndex, 'utf8')) as Array<{ name: string; deployDir: string }>;
  const g = list.find((x) => x.name === 'demo-raspberrypi3-64');
  if (!g) throw new Error('demo-raspberrypi3-64 missing from guests.json');
  const dir = path.resolve(guestsDir(), g.deployDir);
  const f = readdirSync(dir).find((n) => n.endsWith('.wic'));
  if (!f) throw new Error(`no .wic in ${dir}`);
  return path.join(dir, f);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'stacklab-pi-import-'));
let engine: Engine | undefined;

afterAll(async () => {
  await engine?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!haveGuests || !haveXz)('a Raspberry Pi .wic.xz imports and boots on raspi3b', () => {
  it('demo-raspberrypi3-64 as .wic.xz (not a power of two) → importImage → shell: aarch64, root=/dev/mmcblk0p2; bases unchanged', async () => {
    const wic = demoWic();
    const wicSize = statSync(wic).size;
    // The point of the test: QEMU's SD card only takes powers of two, this image is not one.
    expect(isPowerOfTwo(wicSize), `${wic} is ${wicSize} bytes`).toBe(false);
    const wicSha = await sha256(wic);

    const copy = path.join(work, path.basename(wic));
    copyFileSync(wic, copy);
    execFileSync('xz', ['-T2', '-1', '-k', copy]);
    const xz = `${copy}.xz`;
    expect(existsSync(xz)).toBe(true);

    const home = path.join(work, 'home');
    const env = { ...process.env, STACKLAB_HOME: home };
    const store = new Store(path.join(home, 'store'));
    const rec = await importImage(xz, { store });
    expect(rec.board).toBe('raspi3b');
    expect(rec.arch).toBe('aarch64');
    expect(rec.deployDir).toBeDefined();
    const disk = mainDisk(rec)!;
    expect(disk.sizeBytes).toBe(wicSize); // decompressed, not padded: the store keeps the bytes as they were
    expect(disk.sha256).toBe(wicSha);
    const blob = store.blobPath(disk.sha256);

    engine = await createEngine({ env });
    engine.library.add({ id: rec.id, source: 'import', deployDir: rec.deployDir! });
    const vm = await engine.supervisor.boot(await engine.library.resolve(rec.id));
    try {
      expect(vm.plan.board).toBe('raspi3b');
      const ch = vm.consoles[0]!;
      const uname = await runInGuest(ch, 'uname -m', { timeoutMs: 180_000 });
      expect(uname).toEqual({ status: 0, output: 'aarch64\n' });
      const cmdline = await runInGuest(ch, 'cat /proc/cmdline', { timeoutMs: 60_000 });
      expect(cmdline.output).toMatch(/(^|\s)root=\/dev\/mmcblk0p2(\s|$)/);
      // The root really is the SD card's partition 2, mounted from the (overlay over the) imported blob.
      const mounts = await runInGuest(ch, "grep ' / ' /proc/mounts", { timeoutMs: 60_000 });
      expect(mounts.output).toMatch(/^\/dev\/mmcblk0p2 \/ ext4 /m);
    } finally {
      await engine.supervisor.stop(vm.id, true);
    }
    expect(await sha256(blob)).toBe(wicSha);
    expect(await sha256(wic)).toBe(wicSha);
  });
});
