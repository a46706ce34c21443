// The demo guests' userspace: busybox-static with its applet links and the handful of /etc
// files a Yocto debug-tweaks image has — busybox init, a getty per serial console, and root
// logging in without a password.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

export interface UserspaceOptions {
  busybox: string; // the static busybox binary for the guest's architecture
  applets: readonly string[]; // `busybox --list-full`: paths like usr/bin/awk
  hostname: string;
  consoles: ReadonlyArray<{ tty: string; baud: number }>;
  /** Kernel modules rcS loads at boot (they must be in /lib/modules). */
  loadModules?: readonly string[];
  extraDirs?: readonly string[];
  prettyName: string;
  debianSuite: string;
}

export function writeUserspace(root: string, o: UserspaceOptions): void {
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc/init.d',
    'dev',
    'proc',
    'sys',
    'run',
    'tmp',
    'root',
    'mnt',
    'var/log',
    'var/tmp',
    ...(o.extraDirs ?? []),
  ]) {
    mkdirSync(path.join(root, d), { recursive: true });
  }
  chmodSync(path.join(root, 'tmp'), 0o1777);
  chmodSync(path.join(root, 'var/tmp'), 0o1777);
  chmodSync(path.join(root, 'root'), 0o700);
  link(root, 'var/run', '../run');

  copyFileSync(o.busybox, path.join(root, 'bin/busybox'));
  chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const applet of o.applets) {
    // A file a Debian package already put there (the host guest's extra packages) wins.
    if (applet === 'bin/busybox' || exists(path.join(root, applet))) continue;
    link(root, applet, '/bin/busybox');
  }

  const files: Record<string, [string, number]> = {
    'etc/hostname': [`${o.hostname}\n`, 0o644],
    'etc/hosts': [`127.0.0.1\tlocalhost\n127.0.1.1\t${o.hostname}\n`, 0o644],
    // Root's password lives in /etc/shadow and is empty there, so login asks for none (like Yocto's
    // debug-tweaks images). An empty field in /etc/passwd itself would also work for login, but
    // busybox's own passwd parser then fails uid lookups (whoami, the prompt's \u and ~).
    'etc/passwd': [
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
      0o644,
    ],
    'etc/shadow': ['root::19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', 0o600],
    'etc/group': ['root:x:0:\ntty:x:5:\ndisk:x:6:\nkvm:x:104:\nnogroup:x:65534:\n', 0o644],
    'etc/shells': ['/bin/sh\n/bin/ash\n', 0o644],
    'etc/issue': [`${o.prettyName} \\n \\l\n\n`, 0o644],
    'etc/os-release': [osRelease(o), 0o644],
    'etc/fstab': [FSTAB, 0o644],
    'etc/inittab': [inittab(o.consoles), 0o644],
    'etc/profile': [PROFILE, 0o644],
    'etc/init.d/rcS': [RCS, 0o755],
    'sbin/start-getty': [START_GETTY, 0o755],
    'etc/modules': [(o.loadModules ?? []).map((m) => `${m}\n`).join(''), 0o644],
  };
  for (const [rel, [text, mode]] of Object.entries(files)) {
    const f = path.join(root, rel);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, text, { mode });
    chmodSync(f, mode);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function link(root: string, rel: string, target: string): void {
  const at = path.join(root, rel);
  mkdirSync(path.dirname(at), { recursive: true });
  if (!existsSync(at)) symlinkSync(target, at);
}

function osRelease(o: UserspaceOptions): string {
  return [
    'ID=stacklab-demo',
    'ID_LIKE=debian',
    'NAME="Stacklab demo guest"',
    `PRETTY_NAME="${o.prettyName}"`,
    'VERSION_ID=1',
    `VARIANT="busybox userspace and kernel built from Debian ${o.debianSuite} packages, laid out like a Yocto image"`,
    '',
  ].join('\n');
}

function inittab(consoles: UserspaceOptions['consoles']): string {
  return [
    '# busybox init: start-up script, one login prompt per serial console, clean shutdown.',
    '::sysinit:/etc/init.d/rcS',
    ...consoles.map((c) => `::respawn:/sbin/start-getty ${c.baud} ${c.tty}`),
    '::ctrlaltdel:/sbin/reboot',
    '::shutdown:/bin/umount -a -r',
    '::restart:/sbin/init',
    '',
  ].join('\n');
}

const FSTAB = `# The root file system is mounted by the initramfs or the kernel; rcS mounts proc, sysfs and /dev.
devpts  /dev/pts  devpts  mode=0620,ptmxmode=0666,gid=5  0 0
tmpfs   /run      tmpfs   mode=0755,nodev,nosuid          0 0
tmpfs   /tmp      tmpfs   mode=1777,nodev,nosuid          0 0
`;

const RCS = `#!/bin/sh
# Start-up for the Stacklab demo guest; busybox init runs it once before the login prompts.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
grep -q '^proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q '^sysfs ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -o remount,rw /
mount -a
hostname -F /etc/hostname
ifconfig lo 127.0.0.1 up
while read -r m; do
  case "$m" in ''|'#'*) ;; *) modprobe "$m" || echo "rcS: could not load module $m" ;; esac
done < /etc/modules
echo "Stacklab demo guest $(hostname) up: kernel $(uname -r) $(uname -m)"
`;

// Yocto's start_getty does the same check: a console named on the kernel command line may not
// exist on this board, and a getty that fails at once would be respawned by init forever.
const START_GETTY = `#!/bin/sh
# usage: start-getty BAUD TTY — a login prompt on /dev/TTY if that serial port works.
baud=$1
tty=$2
if ! stty -F "/dev/$tty" >/dev/null 2>&1; then
  while :; do sleep 86400; done
fi
started=$(date +%s)
/sbin/getty -L "$baud" "$tty" vt100
# A getty that dies straight away must not spin: wait before init starts another.
[ $(($(date +%s) - started)) -ge 2 ] || sleep 10
`;

const PROFILE = `# Login shells on the Stacklab demo guest.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=\${HOME:-/root}
TERM=\${TERM:-vt100}
PS1='\\u@\\h:\\w\\$ '
export PATH HOME TERM PS1
alias ll='ls -l'
`;
