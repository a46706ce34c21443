// Customising a root file system directly (Yocto images and any plain Linux root): the
// same files a person would edit by hand — /etc/hostname and /etc/hosts, passwd/shadow/
// group and a home directory, authorized_keys, wpa_supplicant, the timezone and keyboard.
// Existing content is kept: lines are replaced or added, never the whole account database.
import path from 'node:path';
import type { Ext4Fs } from '../disk/ext4.ts';
import { sha512Crypt } from './sha512-crypt.ts';
import type { CustomiseSpec } from './spec.ts';
import { wpaSupplicantConf } from './wpa.ts';

export interface ApplyResult {
  /** What changed, one line each (no secrets). */
  changes: string[];
  /** Things worth knowing that are not errors. */
  notes: string[];
}

interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const text = async (fs: Ext4Fs, p: string) => (await fs.readFile(p)).toString('utf8');
const days = (d: Date) => Math.floor(d.getTime() / 86_400_000);

/** Lines of a colon-separated database, with a way to replace or add a record by its first field. */
class ColonFile {
  lines: string[];
  constructor(content: string) {
    this.lines = content.split('\n');
    if (this.lines.at(-1) === '') this.lines.pop();
  }
  find(name: string): string[] | undefined {
    return this.lines.map((l) => l.split(':')).find((f) => f[0] === name);
  }
  set(name: string, fields: string[]): void {
    const i = this.lines.findIndex((l) => l.split(':')[0] === name);
    if (i >= 0) this.lines[i] = fields.join(':');
    else this.lines.push(fields.join(':'));
  }
  records(): string[][] {
    return this.lines.filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  }
  toString(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function accountOf(passwd: ColonFile, name: string): Account | undefined {
  const f = passwd.find(name);
  if (!f || f.length < 7) return undefined;
  return {
    name,
    uid: Number(f[2]),
    gid: Number(f[3]),
    home: f[5] || (name === 'root' ? '/root' : `/home/${name}`),
  };
}

function freeId(taken: Set<number>, from = 1000): number {
  let id = from;
  while (taken.has(id)) id++;
  if (id >= 60000) throw new Error('no free user or group id between 1000 and 60000');
  return id;
}

export async function customiseRootfs(
  fs: Ext4Fs,
  spec: CustomiseSpec,
  opts: { salt?: string; now?: Date } = {},
): Promise<ApplyResult> {
  const changes: string[] = [];
  const notes: string[] = [];
  if (!(await fs.exists('/etc/passwd')))
    throw new Error('this file system has no /etc/passwd: it is not a Linux root file system');

  if (spec.hostname) {
    await setHostname(fs, spec.hostname);
    changes.push(`/etc/hostname: ${spec.hostname}`);
  }

  let user: Account | undefined;
  if (spec.user) {
    user = await setUser(fs, spec.user.name, spec.user.password, opts, changes);
  }

  if (spec.sshAuthorizedKey) {
    const passwd = new ColonFile(await text(fs, '/etc/passwd'));
    const root = accountOf(passwd, 'root') ?? { name: 'root', uid: 0, gid: 0, home: '/root' };
    // Yocto images log in as root; a created user gets the key too.
    for (const acct of user && user.name !== 'root' ? [root, user] : [root]) {
      await addAuthorizedKeys(fs, acct, spec.sshAuthorizedKey);
      changes.push(`${path.posix.join(acct.home, '.ssh/authorized_keys')}: key added`);
    }
  }

  if (spec.ssh) await enableSsh(fs, changes, notes);

  if (spec.wifi) {
    const conf = wpaSupplicantConf(spec.wifi);
    await fs.writeFile('/etc/wpa_supplicant.conf', conf, { mode: 0o600, uid: 0, gid: 0 });
    changes.push('/etc/wpa_supplicant.conf: network added');
    // systemd images start wpa_supplicant@wlan0, which reads the per-interface file.
    const systemdUnit =
      (await fs.exists('/lib/systemd/system/wpa_supplicant@.service')) ||
      (await fs.exists('/usr/lib/systemd/system/wpa_supplicant@.service'));
    if (systemdUnit || (await fs.exists('/etc/wpa_supplicant'))) {
      await fs.mkdirp('/etc/wpa_supplicant');
      await fs.writeFile('/etc/wpa_supplicant/wpa_supplicant-wlan0.conf', conf, {
        mode: 0o600,
        uid: 0,
        gid: 0,
      });
      changes.push('/etc/wpa_supplicant/wpa_supplicant-wlan0.conf: network added');
    }
  }

  if (spec.timezone) {
    await fs.writeFile('/etc/timezone', `${spec.timezone}\n`);
    const zone = `/usr/share/zoneinfo/${spec.timezone}`;
    if (await fs.exists(zone)) {
      if (await fs.exists('/etc/localtime')) {
        if ((await fs.lstat('/etc/localtime')).isDirectory)
          throw new Error('/etc/localtime is a directory in this image');
        await fs.unlink('/etc/localtime');
      }
      await fs.symlink(zone, '/etc/localtime');
      changes.push(`/etc/localtime -> ${zone}`);
    } else {
      notes.push(`this image has no ${zone}: only /etc/timezone was written`);
    }
    changes.push(`/etc/timezone: ${spec.timezone}`);
  }

  if (spec.keyboard) {
    const m = /^([a-z]+)(?:\(([^)]+)\))?$/.exec(spec.keyboard)!;
    await fs.mkdirp('/etc/default');
    await fs.writeFile(
      '/etc/default/keyboard',
      `XKBMODEL="pc105"\nXKBLAYOUT="${m[1]}"\nXKBVARIANT="${m[2] ?? ''}"\nXKBOPTIONS=""\nBACKSPACE="guess"\n`,
    );
    changes.push(`/etc/default/keyboard: ${spec.keyboard}`);
  }
  return { changes, notes };
}

async function setHostname(fs: Ext4Fs, hostname: string): Promise<void> {
  const old = (await fs.exists('/etc/hostname')) ? (await text(fs, '/etc/hostname')).trim() : '';
  await fs.writeFile('/etc/hostname', `${hostname}\n`);
  const short = hostname.split('.')[0]!;
  const entry = hostname === short ? `127.0.1.1\t${hostname}` : `127.0.1.1\t${hostname} ${short}`;
  if (!(await fs.exists('/etc/hosts'))) {
    await fs.writeFile('/etc/hosts', `127.0.0.1\tlocalhost\n${entry}\n`);
    return;
  }
  const lines = (await text(fs, '/etc/hosts')).split('\n');
  let found = false;
  const out = lines.map((l) => {
    const fields = l.split(/\s+/);
    if (fields[0] === '127.0.1.1') {
      found = true;
      return entry;
    }
    // The old name elsewhere (127.0.0.1 localhost oldname) follows the rename.
    if (old && !l.trimStart().startsWith('#') && fields.slice(1).includes(old))
      return l.replace(
        new RegExp(`(\\s)${old.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=\\s|$)`, 'g'),
        `$1${short}`,
      );
    return l;
  });
  if (!found) {
    if (out.at(-1) === '') out.splice(out.length - 1, 0, entry);
    else out.push(entry, '');
  }
  await fs.writeFile('/etc/hosts', out.join('\n'));
}

async function setUser(
  fs: Ext4Fs,
  name: string,
  password: string,
  opts: { salt?: string; now?: Date },
  changes: string[],
): Promise<Account> {
  const passwd = new ColonFile(await text(fs, '/etc/passwd'));
  const hasShadow = await fs.exists('/etc/shadow');
  const shadow = new ColonFile(hasShadow ? await text(fs, '/etc/shadow') : '');
  const group = new ColonFile((await fs.exists('/etc/group')) ? await text(fs, '/etc/group') : 'root:x:0:\n');
  const hash = sha512Crypt(password, opts.salt);
  const today = String(days(opts.now ?? new Date()));

  let acct = accountOf(passwd, name);
  const created = !acct;
  if (!acct) {
    const uid = freeId(new Set(passwd.records().map((f) => Number(f[2]))));
    const existingGroup = group.find(name);
    const gid = existingGroup
      ? Number(existingGroup[2])
      : freeId(new Set(group.records().map((f) => Number(f[2]))), uid);
    if (!existingGroup) group.set(name, [name, 'x', String(gid), '']);
    const shell = (await fs.exists('/bin/bash')) ? '/bin/bash' : '/bin/sh';
    acct = { name, uid, gid, home: `/home/${name}` };
    passwd.set(name, [name, 'x', String(uid), String(gid), name, acct.home, shell]);
    // Administrators' group where the image has one (sudo on Debian-like and Yocto images with sudo).
    const sudo = group.find('sudo');
    if (sudo) {
      const members = (sudo[3] ?? '').split(',').filter(Boolean);
      if (!members.includes(name))
        group.set('sudo', [sudo[0]!, sudo[1] ?? 'x', sudo[2]!, [...members, name].join(',')]);
    }
  } else if (passwd.find(name)![1] !== 'x' && hasShadow) {
    // A hash (or nothing) in passwd itself would win over shadow on some systems: point it at shadow.
    const f = passwd.find(name)!;
    f[1] = 'x';
    passwd.set(name, f);
  }

  const old = shadow.find(name);
  shadow.set(name, [
    name,
    hash,
    today,
    old?.[3] ?? '0',
    old?.[4] ?? '99999',
    old?.[5] ?? '7',
    old?.[6] ?? '',
    old?.[7] ?? '',
    old?.[8] ?? '',
  ]);
  if (!hasShadow) {
    // No shadow file: the hash goes into passwd, which every libc and busybox read.
    const f = passwd.find(name)!;
    f[1] = hash;
    passwd.set(name, f);
  } else {
    await fs.writeFile('/etc/shadow', shadow.toString());
  }
  await fs.writeFile('/etc/passwd', passwd.toString());
  await fs.writeFile('/etc/group', group.toString());
  if (created && (await fs.exists('/etc/gshadow'))) {
    const gshadow = new ColonFile(await text(fs, '/etc/gshadow'));
    if (!gshadow.find(name)) gshadow.set(name, [name, '!', '', '']);
    await fs.writeFile('/etc/gshadow', gshadow.toString());
  }

  if (!(await fs.exists(acct.home))) {
    await fs.mkdirp(path.posix.dirname(acct.home));
    await fs.mkdirp(acct.home, 0o755);
    await fs.chown(acct.home, acct.uid, acct.gid);
    if (await fs.exists('/etc/skel')) await copySkel(fs, '/etc/skel', acct.home, acct);
  }
  changes.push(created ? `user ${name} (uid ${acct.uid}) with home ${acct.home}` : `password of ${name} set`);
  return acct;
}

async function copySkel(fs: Ext4Fs, from: string, to: string, acct: Account): Promise<void> {
  for (const n of await fs.readdir(from)) {
    const src = `${from}/${n}`;
    const dst = `${to}/${n}`;
    const st = await fs.lstat(src);
    if (await fs.exists(dst)) continue;
    if (st.isDirectory) {
      await fs.mkdirp(dst, st.mode & 0o7777);
      await fs.chown(dst, acct.uid, acct.gid);
      await copySkel(fs, src, dst, acct);
    } else if (st.isFile) {
      await fs.writeFile(dst, await fs.readFile(src), {
        mode: st.mode & 0o7777,
        uid: acct.uid,
        gid: acct.gid,
      });
    } else if (st.isSymbolicLink) {
      await fs.symlink(await fs.readlink(src), dst);
      await fs.chown(dst, acct.uid, acct.gid);
    }
  }
}

async function addAuthorizedKeys(fs: Ext4Fs, acct: Account, keys: string): Promise<void> {
  const dir = path.posix.join(acct.home, '.ssh');
  const file = path.posix.join(dir, 'authorized_keys');
  if (!(await fs.exists(acct.home))) {
    await fs.mkdirp(acct.home, acct.uid === 0 ? 0o700 : 0o755);
    await fs.chown(acct.home, acct.uid, acct.gid);
  }
  if (!(await fs.exists(dir))) await fs.mkdirp(dir, 0o700);
  await fs.chmod(dir, 0o700);
  await fs.chown(dir, acct.uid, acct.gid);
  const existing = (await fs.exists(file)) ? (await text(fs, file)).split('\n').filter(Boolean) : [];
  const wanted = keys
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  // Keys already there stay; the same key (type + body) is not added twice.
  const body = (l: string) => l.split(/\s+/).slice(0, 2).join(' ');
  const have = new Set(existing.map(body));
  const merged = [...existing, ...wanted.filter((k) => !have.has(body(k)))];
  await fs.writeFile(file, `${merged.join('\n')}\n`, { mode: 0o600, uid: acct.uid, gid: acct.gid });
}

async function enableSsh(fs: Ext4Fs, changes: string[], notes: string[]): Promise<void> {
  const servers = [
    {
      name: 'OpenSSH',
      bin: '/usr/sbin/sshd',
      units: ['sshd.socket', 'sshd.service', 'ssh.service'],
      init: ['sshd', 'ssh'],
    },
    {
      name: 'Dropbear',
      bin: '/usr/sbin/dropbear',
      units: ['dropbear.socket', 'dropbear.service'],
      init: ['dropbear'],
    },
  ];
  let server: (typeof servers)[number] | undefined;
  for (const s of servers) if (await fs.exists(s.bin)) server = s;
  if (!server)
    throw new Error(
      'this image has no SSH server (neither OpenSSH nor Dropbear), so SSH cannot be switched on',
    );
  for (const libdir of ['/lib/systemd/system', '/usr/lib/systemd/system']) {
    for (const unit of server.units) {
      if (!(await fs.exists(`${libdir}/${unit}`))) continue;
      const wants = unit.endsWith('.socket') ? 'sockets.target.wants' : 'multi-user.target.wants';
      const link = `/etc/systemd/system/${wants}/${unit}`;
      if (!(await fs.exists(link))) {
        await fs.mkdirp(`/etc/systemd/system/${wants}`);
        await fs.symlink(`${libdir}/${unit}`, link);
      }
      changes.push(`${server.name}: ${unit} enabled`);
      return;
    }
  }
  for (const script of server.init) {
    if (!(await fs.exists(`/etc/init.d/${script}`))) continue;
    let linked = false;
    for (const level of [2, 3, 4, 5]) {
      const rc = `/etc/rc${level}.d`;
      if (!(await fs.exists(rc))) continue;
      const names = await fs.readdir(rc);
      if (!names.some((n) => n.startsWith('S') && n.slice(3) === script))
        await fs.symlink(`../init.d/${script}`, `${rc}/S09${script}`);
      linked = true;
    }
    changes.push(`${server.name}: /etc/init.d/${script} ${linked ? 'started at runlevels 2-5' : 'present'}`);
    if (!linked)
      notes.push(
        `${server.name} is installed but this image has no rc.d runlevel directories; its own init starts it`,
      );
    return;
  }
  notes.push(
    `${server.name} is installed; this image starts it its own way (no systemd unit or init.d script found)`,
  );
}
