// Customising a Raspberry Pi OS image the way its own first boot expects, by writing only
// to the FAT boot partition (the root file system is untouched, as Raspberry Pi Imager
// does it):
//  - userconf.txt (`name:sha512-crypt`) — the userconf service creates/renames the user;
//  - ssh — sshswitch turns the SSH server on when this file exists;
//  - firstrun.sh, run once by systemd through `systemd.run=` on cmdline.txt, for the
//    hostname, authorised key, Wi-Fi, timezone and keyboard; it removes itself and its
//    cmdline.txt hook, then systemd reboots (run_success_action=reboot);
//  - or, on images that ship cloud-init (a user-data file on the boot partition),
//    cloud-init's user-data and network-config instead.
import { randomBytes, randomUUID } from 'node:crypto';
import { isMap, parseDocument, stringify } from 'yaml';
import type { FatFs } from '../disk/fat.ts';
import type { ApplyResult } from './rootfs.ts';
import { sha512Crypt } from './sha512-crypt.ts';
import type { CustomiseSpec } from './spec.ts';
import { wpaPsk, wpaSupplicantConf } from './wpa.ts';

const HOOK = ['systemd.run_success_action=reboot', 'systemd.unit=kernel-command-line.target'];

/** cmdline.txt with our parameters replaced: one line, old hooks and regulatory domain dropped. */
export function hookCmdline(cmdline: string, add: string[]): string {
  const words = cmdline
    .replace(/\r?\n/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .filter(
      (w) =>
        !/^systemd\.(run|run_success_action)=/.test(w) && w !== 'systemd.unit=kernel-command-line.target',
    )
    .filter(
      (w) => !(add.some((a) => a.startsWith('cfg80211.')) && w.startsWith('cfg80211.ieee80211_regdom=')),
    );
  return `${[...words, ...add].join(' ')}\n`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** NetworkManager keyfile for the network; the PSK is the derived hex key, never the passphrase. */
function nmConnection(w: NonNullable<CustomiseSpec['wifi']>): string {
  // Plain text when keyfile-safe, else NM's byte-list form.
  const ssid =
    /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(w.ssid) && !/[;\\#]/.test(w.ssid)
      ? w.ssid
      : `${[...Buffer.from(w.ssid, 'utf8')].join(';')};`;
  return [
    '[connection]',
    'id=preconfigured',
    `uuid=${randomUUID()}`,
    'type=wifi',
    '',
    '[wifi]',
    'mode=infrastructure',
    `ssid=${ssid}`,
    'hidden=false',
    '',
    '[wifi-security]',
    'key-mgmt=wpa-psk',
    `psk=${wpaPsk(w.ssid, w.passphrase)}`,
    '',
    '[ipv4]',
    'method=auto',
    '',
    '[ipv6]',
    'addr-gen-mode=default',
    'method=auto',
    '',
  ].join('\n');
}

/** The once-only script. Every user value in it has been validated (no quotes, no newlines) or is in a quoted here-doc. */
export function firstrunScript(spec: CustomiseSpec, bootDir: string, passwordHash?: string): string {
  const eof = `STACKLAB_EOF_${randomBytes(6).toString('hex')}`;
  const out: string[] = [
    '#!/bin/bash',
    '# Written by Stacklab: applies the settings chosen before flashing, once, then removes',
    '# itself and its hook in cmdline.txt. systemd reboots when it exits successfully.',
    'set +e',
    `BOOT=${shellQuote(bootDir)}`,
    '[ -f "$BOOT/firstrun.sh" ] || BOOT=/boot/firmware',
    '[ -f "$BOOT/firstrun.sh" ] || BOOT=/boot',
    'FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)',
    'FIRSTHOME=$(getent passwd 1000 | cut -d: -f6)',
  ];
  if (spec.user) {
    // userconf.txt normally makes the user before this runs; if it has not yet, do it here
    // the same way (Pi OS's userconf renames the first user), else with useradd.
    const name = shellQuote(spec.user.name);
    const hash = shellQuote(passwordHash ?? sha512Crypt(spec.user.password));
    out.push(
      '',
      '# User',
      `if ! getent passwd ${name} >/dev/null; then`,
      `  if [ -x /usr/lib/userconf-pi/userconf ]; then /usr/lib/userconf-pi/userconf ${name} ${hash}`,
      `  else useradd -m -s /bin/bash ${name} && echo ${name}:${hash} | chpasswd -e; fi`,
      'fi',
      `FIRSTUSER=${name}`,
      'FIRSTHOME=$(getent passwd "$FIRSTUSER" | cut -d: -f6)',
      '[ -n "$FIRSTHOME" ] || FIRSTHOME=/home/$FIRSTUSER',
    );
  }
  if (spec.hostname) {
    const h = spec.hostname;
    out.push(
      '',
      '# Host name',
      'CURRENT=$(tr -d " \\t\\n\\r" < /etc/hostname)',
      `if command -v raspi-config >/dev/null; then raspi-config nonint do_hostname ${shellQuote(h)}; else`,
      `  echo ${shellQuote(h)} > /etc/hostname`,
      `  sed -i "s/127\\.0\\.1\\.1.*$CURRENT/127.0.1.1\\t${h}/g" /etc/hosts`,
      'fi',
    );
  }
  if (spec.sshAuthorizedKey) {
    const keys = spec.sshAuthorizedKey
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    out.push(
      '',
      '# Authorised SSH keys for the first user',
      'install -o "$FIRSTUSER" -g "$FIRSTUSER" -m 700 -d "$FIRSTHOME/.ssh"',
      `cat >> "$FIRSTHOME/.ssh/authorized_keys" <<'${eof}'`,
      ...keys,
      eof,
      'chown "$FIRSTUSER:$FIRSTUSER" "$FIRSTHOME/.ssh/authorized_keys"',
      'chmod 600 "$FIRSTHOME/.ssh/authorized_keys"',
    );
  }
  if (spec.ssh === true || (spec.sshAuthorizedKey && spec.ssh !== false)) {
    out.push('', '# SSH server', 'systemctl enable ssh 2>/dev/null || systemctl enable sshd');
  }
  if (spec.wifi) {
    const w = spec.wifi;
    out.push(
      '',
      '# Wi-Fi: NetworkManager on Bookworm and later, wpa_supplicant before',
      'if [ -d /etc/NetworkManager/system-connections ]; then',
      `  cat > /etc/NetworkManager/system-connections/preconfigured.nmconnection <<'${eof}'`,
      nmConnection(w).trimEnd(),
      eof,
      '  chmod 600 /etc/NetworkManager/system-connections/preconfigured.nmconnection',
      'else',
      `  cat > /etc/wpa_supplicant/wpa_supplicant.conf <<'${eof}'`,
      wpaSupplicantConf(w, { ctrlInterface: 'DIR=/var/run/wpa_supplicant GROUP=netdev' }).trimEnd(),
      eof,
      '  chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf',
      'fi',
      `command -v raspi-config >/dev/null && raspi-config nonint do_wifi_country ${w.country}`,
      'rfkill unblock wifi 2>/dev/null',
      'for f in /var/lib/systemd/rfkill/*:wlan; do echo 0 > "$f"; done 2>/dev/null',
    );
  }
  if (spec.timezone) {
    const tz = spec.timezone;
    out.push(
      '',
      '# Timezone',
      `if [ -f /usr/share/zoneinfo/${tz} ]; then`,
      '  rm -f /etc/localtime',
      `  ln -s /usr/share/zoneinfo/${tz} /etc/localtime`,
      `  echo ${shellQuote(tz)} > /etc/timezone`,
      '  command -v dpkg-reconfigure >/dev/null && dpkg-reconfigure -f noninteractive tzdata',
      'fi',
    );
  }
  if (spec.keyboard) {
    const m = /^([a-z]+)(?:\(([^)]+)\))?$/.exec(spec.keyboard)!;
    out.push(
      '',
      '# Keyboard',
      `cat > /etc/default/keyboard <<'${eof}'`,
      `XKBMODEL="pc105"\nXKBLAYOUT="${m[1]}"\nXKBVARIANT="${m[2] ?? ''}"\nXKBOPTIONS=""`,
      eof,
      'command -v dpkg-reconfigure >/dev/null && dpkg-reconfigure -f noninteractive keyboard-configuration',
      'command -v setupcon >/dev/null && setupcon -k --force',
    );
  }
  out.push(
    '',
    '# Done: remove this script and its hook so it never runs again.',
    'rm -f "$BOOT/firstrun.sh"',
    'sed -i \'s| systemd.run=[^ ]*||g; s| systemd.run_success_action=[^ ]*||g; s| systemd.unit=kernel-command-line.target||g\' "$BOOT/cmdline.txt"',
    'exit 0',
    '',
  );
  return out.join('\n');
}

/** cloud-init's user-data, merged into the image's own (its other keys and comments stay). */
export function cloudInitUserData(existing: string | undefined, spec: CustomiseSpec, salt?: string): string {
  const doc = parseDocument(existing?.trim() ? existing : '#cloud-config\n');
  if (doc.errors.length)
    throw new Error(`the image's user-data is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  // A user-data that is only comments (Pi OS ships one like that) has no map to add to yet.
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  if (!isMap(doc.contents)) throw new Error("the image's user-data is YAML but not a cloud-config mapping");
  if (spec.hostname) {
    doc.set('hostname', spec.hostname);
    doc.set('manage_etc_hosts', true);
  }
  if (spec.timezone) doc.set('timezone', spec.timezone);
  if (spec.keyboard) {
    const m = /^([a-z]+)(?:\(([^)]+)\))?$/.exec(spec.keyboard)!;
    doc.set(
      'keyboard',
      m[2] ? { model: 'pc105', layout: m[1], variant: m[2] } : { model: 'pc105', layout: m[1] },
    );
  }
  const keys = spec.sshAuthorizedKey
    ?.split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (spec.user) {
    const user: Record<string, unknown> = {
      name: spec.user.name,
      groups: 'users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo',
      shell: '/bin/bash',
      lock_passwd: false,
      passwd: sha512Crypt(spec.user.password, salt),
      sudo: 'ALL=(ALL) NOPASSWD:ALL',
    };
    if (keys?.length) user.ssh_authorized_keys = keys;
    doc.set('users', [user]);
  } else if (keys?.length) {
    doc.set('ssh_authorized_keys', keys);
  }
  if (spec.ssh === true || (keys?.length && spec.ssh !== false)) {
    doc.set('ssh_pwauth', Boolean(spec.user));
    doc.set('runcmd', [...runcmdOf(doc), ['systemctl', 'enable', '--now', 'ssh']]);
  }
  const body = doc.toString({ lineWidth: 0 });
  return body.startsWith('#cloud-config') ? body : `#cloud-config\n${body}`;
}

function runcmdOf(doc: ReturnType<typeof parseDocument>): unknown[] {
  const v = doc.get('runcmd');
  const js = v && typeof v === 'object' && 'toJSON' in v ? (v as { toJSON(): unknown }).toJSON() : v;
  return Array.isArray(js)
    ? js.filter((c) => JSON.stringify(c) !== JSON.stringify(['systemctl', 'enable', '--now', 'ssh']))
    : [];
}

/** cloud-init network-config (version 2) with the Wi-Fi network; the password is the derived PSK. */
export function cloudInitNetworkConfig(w: NonNullable<CustomiseSpec['wifi']>): string {
  return `# Written by Stacklab\n${stringify({
    version: 2,
    wifis: {
      renderer: 'NetworkManager',
      wlan0: {
        dhcp4: true,
        optional: true,
        'regulatory-domain': w.country,
        'access-points': { [w.ssid]: { password: wpaPsk(w.ssid, w.passphrase) } },
      },
    },
  })}`;
}

export interface RaspiosOptions {
  salt?: string;
  /** Where the boot partition is mounted on the running system (/boot/firmware from Bookworm). */
  bootDir: string;
  cloudInit: boolean;
}

export async function customiseRaspios(
  fat: FatFs,
  spec: CustomiseSpec,
  opts: RaspiosOptions,
): Promise<ApplyResult> {
  const changes: string[] = [];
  const notes: string[] = [];
  const cmdline = await fat.readText('/cmdline.txt');
  const extraCmdline: string[] = [];
  if (spec.wifi) extraCmdline.push(`cfg80211.ieee80211_regdom=${spec.wifi.country}`);

  if (opts.cloudInit) {
    const userData = cloudInitUserData(await fat.readText('/user-data'), spec, opts.salt);
    await fat.writeText('/user-data', userData);
    changes.push('user-data: cloud-config updated');
    if (spec.wifi) {
      await fat.writeText('/network-config', cloudInitNetworkConfig(spec.wifi));
      changes.push('network-config: Wi-Fi network added');
    }
  } else {
    if (!cmdline)
      throw new Error('the boot partition has no cmdline.txt, so first-boot settings cannot be hooked in');
    const hash = spec.user ? sha512Crypt(spec.user.password, opts.salt) : undefined;
    if (spec.user) {
      await fat.writeText('/userconf.txt', `${spec.user.name}:${hash}\n`);
      changes.push(`userconf.txt: user ${spec.user.name}`);
    }
    const sshOn = spec.ssh === true || (Boolean(spec.sshAuthorizedKey) && spec.ssh !== false);
    if (sshOn) {
      // The switch is the file's existence; fatfs cannot leave a file truly empty (see fat.ts).
      await fat.writeText('/ssh', '# SSH server on at first boot (Stacklab)\n');
      changes.push('ssh: SSH server on at first boot');
    } else if (spec.ssh === false && (await fat.exists('/ssh'))) {
      notes.push('the boot partition already has an "ssh" file, so SSH stays on (fatfs cannot delete files)');
    }
    if (spec.hostname || spec.sshAuthorizedKey || spec.wifi || spec.timezone || spec.keyboard || sshOn) {
      const script = `${opts.bootDir}/firstrun.sh`;
      await fat.writeText('/firstrun.sh', firstrunScript(spec, opts.bootDir, hash));
      extraCmdline.unshift(`systemd.run=${script}`, ...HOOK);
      changes.push(`firstrun.sh: run once at first boot (${script})`);
    }
  }
  if (extraCmdline.length) {
    if (!cmdline)
      notes.push('no cmdline.txt on the boot partition: the Wi-Fi regulatory domain was not set there');
    else {
      await fat.writeText('/cmdline.txt', hookCmdline(cmdline, extraCmdline));
      changes.push(`cmdline.txt: ${extraCmdline.join(' ')}`);
    }
  }
  return { changes, notes };
}
