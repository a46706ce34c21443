// Customising a Yocto-style root file system in an ext4 image (no mount, no root rights),
// read back with e2fsprogs' debugfs and checked with e2fsck; the password hash is checked
// against OpenSSL.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { customiseRootfs } from '../../electron/engine/customise/rootfs.ts';
import { parseCustomiseSpec } from '../../electron/engine/customise/spec.ts';
import { wpaPsk } from '../../electron/engine/customise/wpa.ts';
import { withExt4 } from '../../electron/engine/disk/ext4.ts';

const have = (cmd: string, arg = '-V') => spawnSync(cmd, [arg], { encoding: 'utf8' }).error === undefined;
const tools = have('mke2fs') && have('e2fsck') && have('debugfs') && have('openssl', 'version');
if (!tools) console.warn('skipping rootfs customisation tests: needs e2fsprogs and openssl');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-rootfs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function keyLine(comment: string): string {
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, name.length]),
    name,
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, comment.length),
  ]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

/** A small root file system laid out the way Yocto lays it out (root's home is /home/root). */
function yoctoRootfs(name: string, opts: { dropbear?: boolean } = {}): string {
  const root = path.join(tmp, `${name}-tree`);
  const w = (rel: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  };
  w('etc/passwd', 'root:x:0:0:root:/home/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/sh\n');
  w('etc/shadow', 'root::19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
  w('etc/group', 'root:x:0:\ndaemon:x:1:\nsudo:x:27:\n');
  w('etc/hostname', 'qemuarm64\n');
  w(
    'etc/hosts',
    '127.0.0.1\tlocalhost.localdomain\t\tlocalhost\n127.0.1.1\tqemuarm64\n\n# IPv6\n::1\tlocalhost ip6-localhost\n',
  );
  w('etc/skel/.profile', 'PS1="\\u@\\h$ "\n');
  w('usr/share/zoneinfo/Europe/London', 'TZif2 (stand-in zone data)\n');
  w('bin/busybox', '#!stand-in\n');
  mkdirSync(path.join(root, 'home/root'), { recursive: true });
  if (opts.dropbear) {
    w('usr/sbin/dropbear', '#!stand-in\n');
    w('etc/init.d/dropbear', '#!/bin/sh\n');
    mkdirSync(path.join(root, 'etc/rc5.d'), { recursive: true });
    mkdirSync(path.join(root, 'etc/rc3.d'), { recursive: true });
    symlinkSync('../init.d/dropbear', path.join(root, 'etc/rc3.d/S10dropbear'));
  }
  const img = path.join(tmp, `${name}.ext4`);
  execFileSync('mke2fs', [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-O',
    '64bit,metadata_csum',
    '-E',
    'root_owner=0:0',
    '-d',
    root,
    img,
    '16M',
  ]);
  return img;
}

const cat = (img: string, p: string) =>
  execFileSync('debugfs', ['-R', `cat ${p}`, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
const stat = (img: string, p: string) =>
  execFileSync('debugfs', ['-R', `stat ${p}`, img], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
const modeOf = (s: string) => /Mode:\s+(\d+)/.exec(s)?.[1];
const ownerOf = (s: string) => /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(s)?.slice(1, 3).map(Number);
const linkOf = (s: string) => /Fast link dest: "([^"]*)"/.exec(s)?.[1];

describe.skipIf(!tools)('customiseRootfs on a Yocto-style ext4', () => {
  it('hostname, user, keys, SSH, Wi-Fi, timezone, keyboard — read back with debugfs, clean e2fsck', async () => {
    const img = yoctoRootfs('full', { dropbear: true });
    const spec = parseCustomiseSpec({
      hostname: 'kitchen-pi',
      user: { name: 'bob', password: 's3cret pass' },
      sshAuthorizedKey: keyLine('me@laptop'),
      ssh: true,
      wifi: { country: 'DE', ssid: 'Heimnetz', passphrase: 'correcthorse' },
      timezone: 'Europe/London',
      keyboard: 'de(nodeadkeys)',
    });
    const r = await withExt4(img, { write: true }, (fs) => customiseRootfs(fs, spec, { salt: 'fixedsalt' }));
    expect(r.changes.join('\n')).toMatch(/user bob \(uid 1000\)/);
    expect(r.notes).toEqual([]);

    const fsck = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);

    expect(cat(img, '/etc/hostname')).toBe('kitchen-pi\n');
    const hosts = cat(img, '/etc/hosts');
    expect(hosts).toContain('127.0.1.1\tkitchen-pi\n');
    expect(hosts).toContain('::1\tlocalhost ip6-localhost');
    expect(hosts).not.toContain('qemuarm64');

    expect(cat(img, '/etc/passwd')).toContain('bob:x:1000:1000:bob:/home/bob:/bin/sh\n');
    expect(cat(img, '/etc/passwd')).toContain('root:x:0:0:root:/home/root:/bin/sh\n');
    expect(cat(img, '/etc/group')).toContain('bob:x:1000:\n');
    expect(cat(img, '/etc/group')).toContain('sudo:x:27:bob\n');
    const shadowLine = cat(img, '/etc/shadow')
      .split('\n')
      .find((l) => l.startsWith('bob:'))!;
    const hash = shadowLine.split(':')[1]!;
    const salt = hash.split('$')[2]!;
    const expected = execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], {
      input: 's3cret pass\n',
      encoding: 'utf8',
    }).trim();
    expect(hash).toBe(expected);
    expect(cat(img, '/etc/shadow')).toContain('root::19000:'); // root untouched

    expect(ownerOf(stat(img, '/home/bob'))).toEqual([1000, 1000]);
    expect(cat(img, '/home/bob/.profile')).toContain('PS1=');
    expect(ownerOf(stat(img, '/home/bob/.profile'))).toEqual([1000, 1000]);

    for (const [home, uid] of [
      ['/home/root', 0],
      ['/home/bob', 1000],
    ] as const) {
      expect(cat(img, `${home}/.ssh/authorized_keys`)).toBe(`${keyLine('me@laptop')}\n`);
      expect(modeOf(stat(img, `${home}/.ssh/authorized_keys`))).toBe('0600');
      expect(ownerOf(stat(img, `${home}/.ssh/authorized_keys`))).toEqual([uid, uid]);
      expect(modeOf(stat(img, `${home}/.ssh`))).toBe('0700');
      expect(ownerOf(stat(img, `${home}/.ssh`))).toEqual([uid, uid]);
    }

    // Dropbear already started at runlevel 3; runlevel 5 gets its link.
    expect(linkOf(stat(img, '/etc/rc5.d/S09dropbear'))).toBe('../init.d/dropbear');

    const wpa = cat(img, '/etc/wpa_supplicant.conf');
    expect(wpa).toContain('country=DE');
    expect(wpa).toContain('ssid="Heimnetz"');
    expect(wpa).toContain(`psk=${wpaPsk('Heimnetz', 'correcthorse')}`);
    expect(wpa).not.toContain('correcthorse');
    expect(modeOf(stat(img, '/etc/wpa_supplicant.conf'))).toBe('0600');

    expect(cat(img, '/etc/timezone')).toBe('Europe/London\n');
    expect(linkOf(stat(img, '/etc/localtime'))).toBe('/usr/share/zoneinfo/Europe/London');
    expect(cat(img, '/etc/default/keyboard')).toContain('XKBLAYOUT="de"\nXKBVARIANT="nodeadkeys"');
  });

  it('a second run changes the password, keeps existing keys and does not repeat them', async () => {
    const img = yoctoRootfs('again');
    const first = parseCustomiseSpec({
      user: { name: 'bob', password: 'one' },
      sshAuthorizedKey: keyLine('first'),
    });
    await withExt4(img, { write: true }, (fs) => customiseRootfs(fs, first));
    const second = parseCustomiseSpec({
      user: { name: 'bob', password: 'two' },
      sshAuthorizedKey: `${keyLine('first')}\n${keyLine('second-key')}`,
    });
    const r = await withExt4(img, { write: true }, (fs) => customiseRootfs(fs, second));
    expect(r.changes).toContain('password of bob set');
    expect(cat(img, '/etc/passwd').match(/^bob:/gm)).toHaveLength(1);
    expect(cat(img, '/home/bob/.ssh/authorized_keys')).toBe(
      `${keyLine('first')}\n${keyLine('second-key')}\n`,
    );
    const hash = cat(img, '/etc/shadow')
      .split('\n')
      .find((l) => l.startsWith('bob:'))!
      .split(':')[1]!;
    const again = execFileSync('openssl', ['passwd', '-6', '-salt', hash.split('$')[2]!, 'two'], {
      encoding: 'utf8',
    }).trim();
    expect(hash).toBe(again);
  });

  it('asking for SSH on an image without a server is one clear line; no zoneinfo is a note', async () => {
    const img = yoctoRootfs('nossh');
    await expect(
      withExt4(img, { write: true }, (fs) => customiseRootfs(fs, parseCustomiseSpec({ ssh: true }))),
    ).rejects.toThrow(/^this image has no SSH server \(neither OpenSSH nor Dropbear\)/);
    const r = await withExt4(img, { write: true }, (fs) =>
      customiseRootfs(fs, parseCustomiseSpec({ timezone: 'Asia/Tokyo' })),
    );
    expect(r.notes.join()).toMatch(/no \/usr\/share\/zoneinfo\/Asia\/Tokyo/);
    expect(cat(img, '/etc/timezone')).toBe('Asia/Tokyo\n');
  });
});
