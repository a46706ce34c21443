// The demo guests' initramfs: busybox, the few modules needed to reach the root disk, and an
// /init that loads them, waits (bounded) for root= and switches to it. Every byte here is
// decompressed by an emulated CPU at boot, so it holds nothing else.
import {
  chmodSync,
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { run } from './exec.ts';
import type { KernelModule } from './kernel.ts';
import { moduleBytes } from './kernel.ts';
import { tool } from './tools.ts';

// The applets /init uses; busybox runs any of them through these links.
const APPLETS = [
  'sh',
  'mount',
  'umount',
  'insmod',
  'switch_root',
  'sleep',
  'cat',
  'echo',
  'mkdir',
  'ls',
  'tr',
  'findfs',
];

/** Seconds /init waits for the root device before giving up. */
export const ROOT_WAIT_SECONDS = 20;

export async function buildInitramfs(
  stage: string,
  out: string,
  busybox: string,
  modules: readonly KernelModule[],
): Promise<void> {
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'lib/modules', 'etc']) {
    mkdirSync(path.join(stage, d), { recursive: true });
  }
  copyFileSync(busybox, path.join(stage, 'bin/busybox'));
  chmodSync(path.join(stage, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', path.join(stage, 'bin', a));
  for (const m of modules)
    writeFileSync(path.join(stage, 'lib/modules', `${m.name}.ko`), await moduleBytes(m.file));
  writeFileSync(path.join(stage, 'etc/modules'), modules.map((m) => `${m.name}\n`).join(''));
  writeFileSync(path.join(stage, 'init'), INIT, { mode: 0o755 });
  chmodSync(path.join(stage, 'init'), 0o755);

  // newc with every file owned by root, in a stable order; cpio reads the list from stdin.
  const list = listTree(stage).join('\n');
  const cpioFile = `${out}.cpio`;
  const fd = openSync(cpioFile, 'w');
  try {
    await run(tool('cpio'), ['--create', '--format=newc', '--owner=0:0', '--reproducible', '--quiet'], {
      cwd: stage,
      input: `${list}\n`,
      stdoutFd: fd,
    });
  } finally {
    closeSync(fd);
  }
  await gzipTo(cpioFile, out);
}

/** gzip -9 -n into `out`, removing the input. */
export async function gzipTo(input: string, out: string): Promise<void> {
  const fd = openSync(out, 'w');
  try {
    await run(tool('gzip'), ['-9', '-n', '-c', input], { stdoutFd: fd });
  } finally {
    closeSync(fd);
  }
  await run('rm', ['-f', input]);
}

function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

// Messages go to /dev/kmsg as well as the console: when the last console= on the command line
// is one without a getty (hvc0, ttyS1) the kernel log still reaches every serial port.
const INIT = `#!/bin/sh
# Stacklab demo initramfs: load the disk drivers, wait for root=, mount it, switch_root.
PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "stacklab-initramfs: $*" > /dev/kmsg; }
fail() {
  say "PANIC: $*"
  echo "stacklab-initramfs: PANIC: $*"
  exit 1
}
root=/dev/vda
fstype=ext4
mode=ro
init=/sbin/init
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
  case "$arg" in
    root=*) root=\${arg#root=} ;;
    rootfstype=*) fstype=\${arg#rootfstype=} ;;
    init=*) init=\${arg#init=} ;;
    rw) mode=rw ;;
    ro) mode=ro ;;
  esac
done
# A driver for a bus this machine does not have is a module load for nothing, and nested
# under two levels of emulation each load costs about a second: virtio-pci only with PCI
# devices, virtio-mmio only when the firmware describes MMIO transports (microvm's ACPI).
present() { for f in "$@"; do [ -e "$f" ] && return 0; done; return 1; }
while read -r m; do
  case "$m" in
    virtio_pci|virtio_pci_modern_dev|virtio_pci_legacy_dev) present /sys/bus/pci/devices/* || continue ;;
    virtio_mmio) present /sys/bus/acpi/devices/LNRO0005:* || continue ;;
  esac
  insmod /lib/modules/$m.ko || say "could not load module $m"
done < /etc/modules
# Disks appear asynchronously once their driver loads, so wait whether or not rootwait was given.
# The deadline is read from the clock (no fork per poll), so it stays ${ROOT_WAIT_SECONDS} s even when emulation is slow.
read -r up _ < /proc/uptime
deadline=$((\${up%.*} + ${ROOT_WAIT_SECONDS}))
while :; do
  case "$root" in
    UUID=*|LABEL=*) dev=$(findfs "$root" 2>/dev/null) ;;
    *) dev=$root ;;
  esac
  [ -n "$dev" ] && [ -b "$dev" ] && break
  read -r up _ < /proc/uptime
  [ "\${up%.*}" -ge "$deadline" ] && fail "root device $root did not appear within ${ROOT_WAIT_SECONDS} s (block devices: $(ls /sys/class/block | tr '\\n' ' '))"
  sleep 0.1
done
mount -t "$fstype" -o "$mode" "$dev" /newroot || fail "cannot mount $dev ($fstype) on /newroot"
[ -x "/newroot$init" ] || fail "$dev has no $init"
say "root $dev mounted $mode, switching to $init"
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot "$init"
`;
