// Editing ext4 images without mounting them (disk/ext4.ts over the ext2fs WASM library),
// checked with e2fsprogs as the independent reader: e2fsck -fn must find nothing to fix,
// debugfs must see the same files, modes and owners.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withExt4 } from '../../electron/engine/disk/ext4.ts';

const have = (cmd: string) => spawnSync(cmd, ['-V'], { encoding: 'utf8' }).error === undefined;
const e2fsprogs = have('mke2fs') && have('e2fsck') && have('debugfs');
if (!e2fsprogs)
  console.warn('skipping ext4 editing tests: e2fsprogs (mke2fs, e2fsck, debugfs) is not installed');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-ext4-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** A fresh ext4 (Yocto's feature set: 64bit, metadata_csum, extents, journal) holding /etc/hostname. */
function makeExt4(name: string, sizeMiB: number, blockSize?: number): string {
  const root = path.join(tmp, `${name}-root`);
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'etc/hostname'), 'a-much-longer-original-hostname\n');
  const img = path.join(tmp, `${name}.ext4`);
  execFileSync('mke2fs', [
    '-q',
    '-F',
    '-t',
    'ext4',
    ...(blockSize ? ['-b', String(blockSize)] : []),
    '-O',
    '64bit,metadata_csum',
    '-E',
    'root_owner=0:0',
    '-d',
    root,
    img,
    `${sizeMiB}M`,
  ]);
  return img;
}

function fsck(img: string): { status: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function debugfs(img: string, cmd: string): string {
  return execFileSync('debugfs', ['-R', cmd, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

describe.skipIf(!e2fsprogs)('withExt4', () => {
  it('writes files, directories, links and owners that e2fsck accepts and debugfs reads back', async () => {
    const img = makeExt4('edit', 32);
    await withExt4(img, { write: true }, async (fs) => {
      // Replacing with shorter content truncates.
      await fs.writeFile('/etc/hostname', 'pi\n');
      await fs.mkdirp('/home/bob/.ssh', 0o700);
      await fs.chown('/home/bob/.ssh', 1000, 1000);
      await fs.writeFile('/home/bob/.ssh/authorized_keys', 'ssh-ed25519 AAAA test\n', {
        mode: 0o600,
        uid: 1000,
        gid: 1000,
      });
      await fs.symlink('/usr/share/zoneinfo/UTC', '/etc/localtime');
      await fs.writeFile('/etc/binary', Buffer.from([0, 1, 2, 255, 254]));
      expect(await fs.exists('/home/bob/.ssh')).toBe(true);
      expect(await fs.exists('/nope/deeper')).toBe(false);
      expect((await fs.readdir('/home')).sort()).toEqual(['bob']);
      expect((await fs.readFile('/etc/binary')).equals(Buffer.from([0, 1, 2, 255, 254]))).toBe(true);
      expect(await fs.readlink('/etc/localtime')).toBe('/usr/share/zoneinfo/UTC');
      const st = await fs.lstat('/home/bob/.ssh/authorized_keys');
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o600, 1000, 1000]);
    });
    const check = fsck(img);
    expect(check.out).not.toMatch(/Fix\?|fix\?|\bcorrupt/i);
    expect(check.status).toBe(0);
    expect(debugfs(img, 'cat /etc/hostname')).toBe('pi\n');
    const stat = debugfs(img, 'stat /home/bob/.ssh/authorized_keys');
    expect(stat).toMatch(/Mode:\s+0600/);
    expect(stat).toMatch(/User:\s+1000\s+Group:\s+1000/);
    expect(debugfs(img, 'stat /home/bob/.ssh')).toMatch(/Mode:\s+0700/);
    expect(debugfs(img, 'stat /etc/localtime')).toMatch(/Type: symlink/);
  });

  it('copyIn streams a 64 MiB file in (a single Buffer that size kills the WASM heap)', async () => {
    // 4 KiB blocks, as real root file systems have (mke2fs picks 1 KiB below 512 MiB, which
    // makes libext2fs allocate four times as many blocks: several times slower).
    const img = makeExt4('big', 128, 4096);
    const host = path.join(tmp, 'big.bin');
    writeFileSync(host, randomBytes(64 * 1024 * 1024));
    const t = Date.now();
    await withExt4(img, { write: true }, (fs) => fs.copyIn(host, '/big.bin', { mode: 0o640 }));
    console.log(`copyIn 64 MiB: ${Date.now() - t} ms`);
    expect(fsck(img).status).toBe(0);
    const out = path.join(tmp, 'big.out');
    execFileSync('debugfs', ['-R', `dump /big.bin ${out}`, img], { stdio: 'ignore' });
    expect(sha256(out)).toBe(sha256(host));
    expect(debugfs(img, 'stat /big.bin')).toMatch(/Mode:\s+0640/);
  }, 60_000);

  it('read-only mode never changes the image, and mistakes are one line', async () => {
    const img = makeExt4('ro', 16);
    const before = sha256(img);
    const text = await withExt4(img, { write: false }, async (fs) =>
      (await fs.readFile('/etc/hostname')).toString(),
    );
    expect(text).toBe('a-much-longer-original-hostname\n');
    await expect(withExt4(img, { write: false }, (fs) => fs.readFile('/etc/missing'))).rejects.toThrow(
      /^cannot read \/etc\/missing: no such file or directory$/,
    );
    expect(sha256(img)).toBe(before);
    const notExt = path.join(tmp, 'zeros.img');
    writeFileSync(notExt, Buffer.alloc(4 * 1024 * 1024));
    await expect(withExt4(notExt, { write: false }, async () => 1)).rejects.toThrow(
      /zeros\.img has no ext2\/3\/4 file system at offset 0/,
    );
  });

  it('a full file system is reported as such', async () => {
    const img = makeExt4('full', 8);
    const host = path.join(tmp, 'too-big.bin');
    writeFileSync(host, randomBytes(12 * 1024 * 1024));
    await expect(withExt4(img, { write: true }, (fs) => fs.copyIn(host, '/too-big.bin'))).rejects.toThrow(
      /^cannot write \/too-big\.bin: the file system is full/,
    );
  });
});
