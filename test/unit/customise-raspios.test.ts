// Raspberry Pi OS-style customisation: only the FAT boot partition is written (userconf.txt,
// ssh, firstrun.sh hooked into cmdline.txt — or cloud-init's user-data/network-config).
// The boot partitions are made here with mkfs.vfat + mcopy and read back with mtools;
// fsck.fat checks them; bash -n checks the script; OpenSSL checks the password hash.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { customiseImage } from '../../electron/engine/customise/apply.ts';
import { parseCustomiseSpec } from '../../electron/engine/customise/spec.ts';
import { wpaPsk } from '../../electron/engine/customise/wpa.ts';
import { deriveBase } from '../../electron/engine/disk/workbase.ts';

const have = (cmd: string, arg = '--version') =>
  spawnSync(cmd, [arg], { encoding: 'utf8' }).error === undefined;
const tools =
  have('qemu-img') &&
  have('sfdisk') &&
  have('mkfs.vfat') &&
  have('mcopy') &&
  have('mtype') &&
  have('fsck.vfat') &&
  have('openssl', 'version') &&
  have('bash');
if (!tools)
  console.warn(
    'skipping Pi OS customisation tests: needs qemu-img, sfdisk, dosfstools, mtools, openssl and bash',
  );

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-raspios-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const CMDLINE =
  'console=serial0,115200 console=tty1 root=PARTUUID=662b4900-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot';

function keyLine(comment: string): string {
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, name.length]),
    name,
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, 9),
  ]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

/** A Pi OS card's boot partition at 4 MiB of an MBR disk, holding `files`. With partitioned: false, the bare FAT. */
function piCard(
  name: string,
  files: Record<string, string>,
  partitioned = true,
): { path: string; offset: number } {
  const vfat = path.join(tmp, `${name}.vfat`);
  execFileSync('mkfs.vfat', ['-C', '-n', 'bootfs', vfat, String(32 * 1024)], { stdio: 'ignore' });
  for (const [n, text] of Object.entries(files)) {
    const f = path.join(tmp, `${name}-${n}`);
    writeFileSync(f, text);
    execFileSync('mcopy', ['-i', vfat, f, `::${n}`]);
  }
  if (!partitioned) return { path: vfat, offset: 0 };
  const img = path.join(tmp, `${name}.img`);
  writeFileSync(img, '');
  execFileSync('truncate', ['-s', String(40 * MiB), img]);
  execFileSync('sfdisk', ['-q', img], { input: 'label: dos\nstart=8192, size=65536, type=c\n' });
  const fd = openSync(img, 'r+');
  writeSync(fd, readFileSync(vfat), 0, 32 * MiB, 4 * MiB);
  closeSync(fd);
  return { path: img, offset: 4 * MiB };
}

const mtype = (img: string, offset: number, f: string) =>
  execFileSync('mtype', ['-i', `${img}@@${offset}`, `::${f}`], {
    encoding: 'utf8',
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
const mdir = (img: string, offset: number) =>
  execFileSync('mdir', ['-b', '-i', `${img}@@${offset}`, '::'], {
    encoding: 'utf8',
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });

function fsckFat(img: string, offset: number): { status: number | null; out: string } {
  const part = path.join(tmp, `fsck-${Date.now()}.vfat`);
  writeFileSync(part, readFileSync(img).subarray(offset, offset + 32 * MiB));
  const r = spawnSync('fsck.vfat', ['-n', part], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

async function customise(card: { path: string }, key: string, input: unknown) {
  let applied: Awaited<ReturnType<typeof customiseImage>> | undefined;
  const d = await deriveBase({
    base: card.path,
    baseFormat: 'raw',
    dir: path.join(tmp, 'bases'),
    key,
    edit: async (img) => {
      applied = await customiseImage(img, parseCustomiseSpec(input), { salt: 'pisalt' });
    },
  });
  return { path: d.path, ...applied! };
}

describe.skipIf(!tools)('Raspberry Pi OS boot-partition customisation', () => {
  it('Imager-style: userconf.txt, ssh, firstrun.sh and its cmdline.txt hook', async () => {
    const card = piCard('imager', {
      'cmdline.txt': `${CMDLINE}\n`,
      'issue.txt': 'Raspberry Pi reference 2024-07-04\n',
      'config.txt': 'arm_64bit=1\n',
    });
    const r = await customise(card, 'imager', {
      hostname: 'garden-pi',
      user: { name: 'bob', password: 'tulips 4 ever' },
      sshAuthorizedKey: keyLine('me@laptop'),
      wifi: { country: 'NL', ssid: 'Tuin', passphrase: 'greenhouse' },
      timezone: 'Europe/Amsterdam',
      keyboard: 'us',
    });
    expect(r.flavour).toBe('raspios');
    expect(r.why).toMatch(/issue\.txt/);

    const names = mdir(r.path, card.offset).toLowerCase();
    for (const f of ['userconf.txt', 'ssh', 'firstrun.sh', 'cmdline.txt', 'config.txt'])
      expect(names).toContain(`::/${f}`);

    const [user, hash] = mtype(r.path, card.offset, 'userconf.txt').trim().split(':') as [string, string];
    expect(user).toBe('bob');
    const salt = hash.split('$')[2]!;
    expect(hash).toBe(
      execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], {
        input: 'tulips 4 ever\n',
        encoding: 'utf8',
      }).trim(),
    );

    const cmdline = mtype(r.path, card.offset, 'cmdline.txt');
    expect(cmdline.trimEnd().split('\n')).toHaveLength(1);
    expect(cmdline).toContain(CMDLINE);
    expect(cmdline).toContain(
      ' systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target',
    );
    expect(cmdline).toContain(' cfg80211.ieee80211_regdom=NL');

    const script = mtype(r.path, card.offset, 'firstrun.sh');
    const scriptFile = path.join(tmp, 'firstrun.sh');
    writeFileSync(scriptFile, script);
    const syntax = spawnSync('bash', ['-n', scriptFile], { encoding: 'utf8' });
    expect(syntax.status, syntax.stderr).toBe(0);
    expect(script).toContain("raspi-config nonint do_hostname 'garden-pi'");
    expect(script).toContain(keyLine('me@laptop'));
    expect(script).toContain(`psk=${wpaPsk('Tuin', 'greenhouse')}`);
    expect(script).not.toContain('greenhouse');
    expect(script).not.toContain('tulips');
    expect(script).toContain('ln -s /usr/share/zoneinfo/Europe/Amsterdam /etc/localtime');
    expect(script).toContain('XKBLAYOUT="us"');
    expect(script).toMatch(/rm -f "\$BOOT\/firstrun\.sh"/);
    expect(mtype(r.path, card.offset, 'ssh').length).toBeGreaterThan(0);

    // Both FAT copies agree and nothing needs fixing.
    const fsck = fsckFat(r.path, card.offset);
    expect(fsck.out).not.toMatch(/differ|Truncating|corrupt/i);
    expect(fsck.status).toBe(0);
    // The base card is untouched.
    expect(mdir(card.path, card.offset).toLowerCase()).not.toContain('firstrun.sh');
  });

  it('a user alone needs no script: only userconf.txt', async () => {
    const card = piCard('useronly', {
      'cmdline.txt': `${CMDLINE}\n`,
      'issue.txt': 'Raspberry Pi reference\n',
    });
    const r = await customise(card, 'useronly', { user: { name: 'alice', password: 'pw' } });
    expect(r.changes).toEqual(['userconf.txt: user alice']);
    expect(mdir(r.path, card.offset).toLowerCase()).not.toContain('firstrun.sh');
    expect(mtype(r.path, card.offset, 'cmdline.txt')).toBe(`${CMDLINE}\n`);
  });

  it('cloud-init images get user-data and network-config instead', async () => {
    const card = piCard('cloud', {
      'cmdline.txt': `${CMDLINE}\n`,
      'user-data': '#cloud-config\n# This is the user-data configuration file for cloud-init.\n',
      'meta-data': 'instance-id: rpios-image\n',
      'network-config': 'network:\n  config: disabled\n',
    });
    const r = await customise(card, 'cloud', {
      hostname: 'cloudy',
      user: { name: 'bob', password: 'pw' },
      sshAuthorizedKey: keyLine('me@laptop'),
      wifi: { country: 'FR', ssid: 'Maison', passphrase: 'baguette123' },
      timezone: 'Europe/Paris',
    });
    expect(r.flavour).toBe('cloud-init');
    const userData = mtype(r.path, card.offset, 'user-data');
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    expect(userData).toContain('# This is the user-data configuration file for cloud-init.');
    const ud = parseYaml(userData) as Record<string, unknown> & { users: Array<Record<string, unknown>> };
    expect(ud.hostname).toBe('cloudy');
    expect(ud.timezone).toBe('Europe/Paris');
    expect(ud.users[0]!.name).toBe('bob');
    expect(ud.users[0]!.ssh_authorized_keys).toEqual([keyLine('me@laptop')]);
    const hash = String(ud.users[0]!.passwd);
    expect(hash).toBe(
      execFileSync('openssl', ['passwd', '-6', '-salt', hash.split('$')[2]!, 'pw'], {
        encoding: 'utf8',
      }).trim(),
    );
    const net = parseYaml(mtype(r.path, card.offset, 'network-config')) as {
      wifis: {
        wlan0: { 'regulatory-domain': string; 'access-points': Record<string, { password: string }> };
      };
    };
    expect(net.wifis.wlan0['regulatory-domain']).toBe('FR');
    expect(net.wifis.wlan0['access-points'].Maison!.password).toBe(wpaPsk('Maison', 'baguette123'));
    expect(mdir(r.path, card.offset).toLowerCase()).not.toContain('firstrun.sh');
    expect(fsckFat(r.path, card.offset).status).toBe(0);
  });

  it('a bare boot partition (no partition table, no root) is customised the Imager way', async () => {
    const card = piCard('bare', { 'cmdline.txt': `${CMDLINE}\n` }, false);
    const r = await customise(card, 'bare', { hostname: 'barepi', ssh: true });
    expect(r.flavour).toBe('raspios');
    expect(r.why).toMatch(/no readable root/);
    expect(mtype(r.path, 0, 'cmdline.txt')).toContain('systemd.run=/boot/firstrun.sh');
    expect(mtype(r.path, 0, 'firstrun.sh')).toContain('systemctl enable ssh');
  });
});
