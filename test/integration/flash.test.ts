// Flashing with etcher-sdk to file-backed targets (no SD card reader exists here): every
// byte compared with the source, compressed sources decompressed on the fly, a write
// corrupted on purpose caught by verification, and the CLI's refusals on this machine's
// real drives.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sourceDestination } from 'etcher-sdk';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { flashCommands } from '../../electron/cli/flash-commands.ts';
import { driveHolding, listDrives } from '../../electron/engine/flash/drives.ts';
import { type FlashProgress, flash } from '../../electron/engine/flash/flash.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-flash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const src = path.join(tmp, 'card.img');
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const have = (cmd: string) => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).error === undefined;

beforeAll(() => {
  // 24 MiB: an MBR-looking first sector, random data, then compressible text — like a card image.
  const text = Buffer.from(
    'Stacklab flash test pattern: the quick brown fox jumps over the lazy dog.\n'.repeat(1024),
  );
  const parts = [randomBytes(8 * MiB)];
  for (let n = 0; n < 16 * MiB; n += text.length)
    parts.push(text.subarray(0, Math.min(text.length, 16 * MiB - n)));
  writeFileSync(src, Buffer.concat(parts));
});

describe('flash to a file-backed target', () => {
  it('writes every byte of a raw image and verifies it, with progress and speed', async () => {
    const out = path.join(tmp, 'out-raw.img');
    writeFileSync(out, Buffer.alloc(40 * MiB, 0xee)); // an old, bigger image: it is replaced, not overlaid
    const seen: FlashProgress[] = [];
    const r = await flash({
      source: src,
      target: { file: out },
      verify: true,
      onProgress: (p) => seen.push(p),
    });
    expect(readFileSync(out).equals(readFileSync(src))).toBe(true);
    expect(r).toMatchObject({ target: out, imageBytes: 24 * MiB, verified: true, ejected: false });
    const phases = [...new Set(seen.map((p) => p.phase))];
    expect(phases).toEqual(['flashing', 'verifying', 'finished']);
    expect(seen.at(-1)).toMatchObject({ phase: 'finished', percentage: 100, position: 24 * MiB });
    expect(seen.some((p) => p.phase === 'flashing' && p.total === 24 * MiB)).toBe(true);
    console.log(
      `raw 24 MiB: ${r.durationMs} ms, ${(r.averageSpeed / MiB).toFixed(0)} MiB/s (write + verify)`,
    );
  });

  for (const [ext, tool, args] of [
    ['xz', 'xz', ['-T1', '-3', '-k', '-f']],
    ['zst', 'zstd', ['-q', '-f', '-k']],
    ['gz', 'gzip', ['-k', '-f']],
    ['bz2', 'bzip2', ['-k', '-f']],
  ] as const) {
    const ok = have(tool);
    if (!ok) console.warn(`skipping the .${ext} source: ${tool} is not installed`);
    it.skipIf(!ok)(`decompresses a .${ext} source on the fly, byte for byte`, async () => {
      const file = path.join(tmp, `card.${ext}.img`);
      writeFileSync(file, readFileSync(src));
      execFileSync(tool, [...args, file]);
      const compressed = `${file}.${ext}`;
      const out = path.join(tmp, `out-${ext}.img`);
      const r = await flash({ source: compressed, target: { file: out }, verify: true });
      expect(sha256(out)).toBe(sha256(src));
      expect(r.imageBytes).toBe(24 * MiB);
      console.log(`.${ext}: ${r.durationMs} ms`);
    });
  }

  it('a write corrupted on purpose fails verification with a clear message', async () => {
    // MOCK (a faulty card cannot exist here): an etcher-sdk file destination that flips one
    // byte in the middle of what was written, between the write and the read-back.
    class CorruptingFileMock extends sourceDestination.File {
      override createVerifier(checksumOrBlocks: string, size?: number) {
        const v = super.createVerifier(checksumOrBlocks as never, size);
        const run = v.run.bind(v);
        v.run = async () => {
          const fh = await open(this.path, 'r+');
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, 12 * MiB + 4321);
          b[0] = b[0]! ^ 0xff;
          await fh.write(b, 0, 1, 12 * MiB + 4321);
          await fh.close();
          return run();
        };
        return v;
      }
    }
    const out = path.join(tmp, 'out-faulty.img');
    writeFileSync(out, '');
    await expect(
      flash({
        source: src,
        target: { destination: new CorruptingFileMock({ path: out, write: true }), name: 'the faulty card' },
        verify: true,
      }),
    ).rejects.toThrow(
      /^verification failed: what was read back from the faulty card differs from the image; the card may be faulty/,
    );
    // Without verification the same corruption would have gone unnoticed: the check is what caught it.
    await expect(
      flash({
        source: src,
        target: { destination: new CorruptingFileMock({ path: out, write: true }), name: 'x' },
        verify: false,
      }),
    ).resolves.toMatchObject({ verified: false });
  });

  it('cancelling stops the write, or the read-back, with a one-line cancelled error', async () => {
    // MOCK (a card whose speed we control cannot exist here): a file destination that
    // calls `onWrite` / `onRead` as etcher-sdk writes it and, when verifying, reads it back.
    class WatchedFileMock extends sourceDestination.File {
      onWrite = () => {};
      onRead = () => {};
      override async createWriteStream(o?: { highWaterMark?: number }) {
        const s = await super.createWriteStream(o);
        const w = s as unknown as { _write: (...a: unknown[]) => void; _writev?: (...a: unknown[]) => void };
        const write = w._write.bind(s);
        w._write = (...a) => {
          this.onWrite();
          write(...a);
        };
        if (w._writev) {
          const writev = w._writev.bind(s);
          w._writev = (...a) => {
            this.onWrite();
            writev(...a);
          };
        }
        return s;
      }
      override async read(buffer: Buffer, bufferOffset: number, length: number, sourceOffset: number) {
        this.onRead();
        return super.read(buffer, bufferOffset, length, sourceOffset);
      }
    }
    for (const phase of ['write', 'verify'] as const) {
      const out = path.join(tmp, `out-cancel-${phase}.img`);
      writeFileSync(out, '');
      const ctl = new AbortController();
      const dest = new WatchedFileMock({ path: out, write: true });
      let calls = 0;
      const trip = () => {
        if (++calls === 2) ctl.abort();
      };
      if (phase === 'write') dest.onWrite = trip;
      else dest.onRead = trip;
      const seen = new Set<string>();
      const err = await flash({
        source: src,
        target: { destination: dest, name: 'the card' },
        verify: true,
        signal: ctl.signal,
        onProgress: (p) => seen.add(p.phase),
      }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe('AbortError');
      expect((err as Error).message).toBe(
        'cancelled: the card holds only part of the image now; write it again before using it',
      );
      expect(seen.has('finished')).toBe(false);
      if (phase === 'write') expect(statSync(out).size).toBeLessThan(24 * MiB);
    }
  });

  it('refuses nonsense targets and sources in one line', async () => {
    await expect(
      flash({ source: path.join(tmp, 'missing.img'), target: { file: path.join(tmp, 'o.img') } }),
    ).rejects.toThrow(/^no image at /);
    await expect(flash({ source: src, target: { file: src } })).rejects.toThrow(
      /^the target file is the image itself$/,
    );
    await expect(flash({ source: src, target: { file: '/dev/null' } })).rejects.toThrow(
      /is not a regular file/,
    );
  });
});

describe('stacklab flash (CLI command)', () => {
  async function runFlash(
    values: Record<string, unknown>,
    positionals: string[],
  ): Promise<{ code: number; out: string }> {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += chunk.toString();
      return true;
    });
    try {
      return { code: await flashCommands.flash!.run(values, positionals), out };
    } finally {
      spy.mockRestore();
    }
  }

  it('--to-file --json prints progress lines and a done line', async () => {
    const out = path.join(tmp, 'cli-out.img');
    const r = await runFlash({ 'to-file': out, json: true }, [src]);
    expect(r.code).toBe(0);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; phase?: string });
    expect(lines.filter((l) => l.event === 'progress').length).toBeGreaterThan(1);
    expect(lines.at(-1)).toMatchObject({ event: 'done', verified: true, imageBytes: 24 * MiB });
    expect(sha256(out)).toBe(sha256(src));
  });

  it('refuses the drive this image sits on (a real drive of this machine), --yes or not', async () => {
    const drives = await listDrives();
    const holder = driveHolding(src, drives);
    if (!holder) {
      console.warn('skipping: no drive reported for the temporary directory (tmpfs?)');
      return;
    }
    await expect(runFlash({ yes: true }, [src, holder.device])).rejects.toThrow(
      /system drive|holds the image being written/,
    );
    await expect(runFlash({}, [src, holder.device])).rejects.toThrow(
      /system drive|holds the image being written/,
    );
    await expect(runFlash({ yes: true }, [src, '/dev/no-such-drive'])).rejects.toThrow(
      /^no drive \/dev\/no-such-drive/,
    );
  });
});
