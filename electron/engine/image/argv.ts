// The QEMU command line for an image, built the way Yocto's runqemu builds it (oe-core
// scripts/runqemu: setup_network → setup_rootfs → setup_final → start_qemu, in its order)
// but without running runqemu or a shell, and headless: serial consoles, the HMP monitor and
// QMP each get their own Unix socket instead of runqemu's `-serial mon:stdio`. Arguments
// are split from the qemuboot.conf values first and placeholders replaced inside them, so
// paths with spaces, quotes or commas go through intact.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { join as shJoin, split } from 'shlex';
import type { AccelName } from '../qemu/accel.ts';
import { hostTarget } from '../qemu/accel.ts';
import { targetOf } from '../qemu/discovery.ts';
import { profileForBoard } from './boards.ts';
import type { ImageDescriptor } from './descriptor.ts';
import { escapeOptValue, qbTokens, substitute, where } from './qb-tokens.ts';

export interface BootOptions {
  /** The disk QEMU writes to (the supervisor's qcow2 overlay over the untouched rootfs). */
  disk: { path: string; format: 'raw' | 'qcow2' };
  accel: AccelName | string;
  qmpSocket: string;
  monitorSocket: string;
  /** One per entry of desc.serialConsoles, same order; QEMU listens on each (server=on,wait=off). */
  serialSockets: string[];
  /** QEMU -name. */
  name: string;
  pidFile?: string;
  memMiB?: number;
  smp?: number;
  /** Added where runqemu adds `qemuparams=`: after the machine options. */
  extraArgs?: string[];
  /** 'user' (default): slirp with ssh forwarded from 127.0.0.1; 'none': no network. */
  network?: 'user' | 'none';
  /** First host port to try for ssh (default 2222, bumped while busy, as runqemu does). */
  sshPort?: number;
  /** Defaults to a stable locally administered MAC derived from `name`. */
  mac?: string;
  /** Extra kernel arguments, appended last (runqemu's bootparams=). */
  bootparams?: string;
  /** Host CPU architecture as qemu names it; defaults to this machine's (tests set it). */
  hostArch?: string;
}

export interface ConsolePlan {
  /** Index into desc.serialConsoles. */
  index: number;
  /** The guest's tty: ttyAMA0, ttyS0, hvc0. */
  name: string;
  socket: string;
}

export interface BootPlan {
  /** qemu-system binary name (look the path up in QemuInstall.systems). */
  binary: string;
  argv: string[];
  kernelCmdline: string;
  /** Host port on 127.0.0.1 forwarded to the guest's port 22. */
  sshPort?: number;
  consoles: ConsolePlan[];
  /** Environment entries to add to the QEMU process's environment. */
  env?: Record<string, string>;
  /** The accelerator the command line really uses (a board without qb_cpu_kvm falls back to TCG). */
  accel: string;
  notes: string[];
}

const DEFAULT_RNG = '-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0';
// runqemu's own default when qb_network_device is missing.
const DEFAULT_NET_DEVICE = '-device e1000,netdev=net0,mac=@MAC@';

/** A stable locally administered unicast MAC for a VM: 52:54:00 (QEMU's usual prefix) + a hash. */
export function macFor(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  return ['52', '54', '00', ...[0, 1, 2].map((i) => (h[i] ?? 0).toString(16).padStart(2, '0'))].join(':');
}

// Ports handed out recently in this process: QEMU binds them only when it starts, so two
// plans made back to back must not get the same one.
const recentlyGiven = new Map<number, number>();
const HOLD_MS = 60_000;

function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The first port from `start` up that nothing listens on at 127.0.0.1 (runqemu bumps the same way). */
export async function findFreePort(start: number, host = '127.0.0.1'): Promise<number> {
  const now = Date.now();
  for (const [p, until] of recentlyGiven) if (until < now) recentlyGiven.delete(p);
  for (let port = start; port < Math.min(start + 200, 65536); port++) {
    if (recentlyGiven.has(port)) continue;
    if (await portIsFree(port, host)) {
      recentlyGiven.set(port, now + HOLD_MS);
      return port;
    }
  }
  throw new Error(`no free port on ${host} between ${start} and ${start + 199} for ssh forwarding`);
}

/** The command line quoted for a POSIX shell, for people to read or copy. */
export function formatCommandLine(binary: string, argv: string[]): string {
  return shJoin([binary, ...argv]);
}

/** Memory in MiB from a qb_mem value ("-m 256", "256M", "-m 1G"). */
export function parseMemMiB(value: string): number | undefined {
  const m = /^(?:-m\s+)?(?:size=)?(\d+)\s*([MmGg])?$/.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * (m[2] && /g/i.test(m[2]) ? 1024 : 1);
}

// MTTCG runs each vCPU in its own host thread. It is only correct when the host orders
// memory at least as strongly as the guest expects: an x86 host (TSO) can run any guest
// that way; an Arm host only weakly ordered guests (QEMU warns, and guests misbehave, for
// x86 on Arm). It must also be a target QEMU implements MTTCG for, or QEMU refuses to start.
// Everywhere else QEMU's own default is left alone.
const MTTCG_TARGETS = ['aarch64', 'arm', 'x86_64', 'i386', 'riscv64', 'riscv32'];
function mttcgSafe(guest: string, host: string): boolean {
  if (!MTTCG_TARGETS.includes(guest)) return false;
  if (host === 'x86_64' || host === 'i386') return true;
  if (host === 'aarch64' || host === 'arm') return !['x86_64', 'i386'].includes(guest);
  return false;
}

/** Which QEMU serial port (-serial number) a guest tty is on, for this board. */
export function uartIndex(board: string, tty: string): number | undefined {
  const m = /^tty([A-Za-z]*)(\d+)$/.exec(tty);
  if (!m) return undefined;
  // On the Pi boards QEMU's second serial port is the mini UART, which Linux calls ttyS0/ttyS1.
  if (board.startsWith('raspi') && m[1] === 'S') return 1;
  return Number(m[2]);
}

function socketChardev(id: string, socket: string): string {
  return `socket,id=${id},path=${escapeOptValue(socket)},server=on,wait=off`;
}

function specId(spec: string): string | undefined {
  return /(?:^|,)id=([^,]+)/.exec(spec)?.[1];
}

export async function buildBootPlan(desc: ImageDescriptor, opts: BootOptions): Promise<BootPlan> {
  const conf = desc.conf;
  const notes: string[] = [];
  const target = targetOf(desc.systemBinary);
  const profile = profileForBoard(desc.board);

  // Accelerator: hardware ones need the board's KVM CPU settings (runqemu refuses without them).
  let accel = String(opts.accel || 'tcg');
  if (accel !== 'tcg' && !conf.qb_cpu_kvm?.trim()) {
    notes.push(
      `${desc.board} has no qb_cpu_kvm (hardware-accelerated CPU settings), so it runs under TCG instead of ${accel}`,
    );
    accel = 'tcg';
  }
  const hardware = accel !== 'tcg';
  const host = opts.hostArch ?? hostTarget();
  const accelSpec = hardware ? accel : mttcgSafe(target, host) ? 'tcg,thread=multi' : 'tcg';

  // Memory: the supervisor's choice, else qb_mem, else runqemu's 256; some boards are fixed.
  let memMiB = opts.memMiB ?? (conf.qb_mem ? parseMemMiB(conf.qb_mem) : 256);
  if (memMiB === undefined)
    throw new Error(`${where(conf, 'qb_mem')}: qb_mem "${conf.qb_mem}" is not a size like "-m 256"`);
  if (profile?.fixedMemMiB && memMiB !== profile.fixedMemMiB) {
    notes.push(
      `${desc.board} always has ${profile.fixedMemMiB} MiB of RAM; ${memMiB} MiB is not possible on it`,
    );
    memMiB = profile.fixedMemMiB;
  }
  let smpArgs = qbTokens(conf, 'qb_smp');
  if (opts.smp !== undefined) {
    if (profile?.fixedSmp && opts.smp !== profile.fixedSmp) {
      notes.push(`${desc.board} always has ${profile.fixedSmp} CPUs; ignoring smp=${opts.smp}`);
    } else {
      smpArgs = ['-smp', String(opts.smp)];
    }
  }

  const cmdline: string[] = [];
  // -name is an option list whose first value is the guest name; '=' would start a key.
  const argv: string[] = [
    '-name',
    opts.name.includes('=') ? `guest=${escapeOptValue(opts.name)}` : escapeOptValue(opts.name),
  ];
  if (opts.pidFile) argv.push('-pidfile', opts.pidFile);

  // Network (runqemu setup_network / setup_slirp).
  let sshPort: number | undefined;
  if (opts.network === 'none' || conf.qb_net?.trim() === 'none') {
    argv.push('-nic', 'none');
  } else {
    const mac = opts.mac ?? macFor(opts.name);
    const device = conf.qb_network_device?.trim()
      ? qbTokens(conf, 'qb_network_device')
      : split(DEFAULT_NET_DEVICE);
    argv.push(...device.map((t) => substitute(t, '@MAC@', mac)));
    if (conf.qb_slirp_opt?.trim()) {
      const slirp = qbTokens(conf, 'qb_slirp_opt');
      for (let i = 0; i < slirp.length; i++) {
        const rewritten = await rewriteHostfwd(slirp[i] ?? '', opts.sshPort);
        slirp[i] = rewritten.arg;
        sshPort ??= rewritten.sshPort;
      }
      argv.push(...slirp);
    } else {
      sshPort = await findFreePort(opts.sshPort ?? 2222);
      argv.push('-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`);
    }
    cmdline.push(conf.qb_cmdline_ip_slirp?.trim() || 'ip=dhcp');
  }

  // Entropy: qb_rng as written (an empty value means none); when absent, virtio-rng on boards
  // that have PCI for it (the Pi boards and microvm do not).
  if (conf.qb_rng !== undefined) argv.push(...qbTokens(conf, 'qb_rng'));
  else if (!/^(raspi|microvm)/.test(desc.board)) argv.push(...split(DEFAULT_RNG));

  // Root filesystem (runqemu setup_rootfs).
  let root: string;
  if (desc.rootfsKind === 'initramfs') {
    argv.push('-initrd', desc.rootfs);
    root = 'root=/dev/ram0 rw debugshell';
  } else {
    argv.push(...rootfsArgs(desc, opts.disk));
    let kernelRoot = conf.qb_kernel_root?.trim() || '/dev/vda';
    const words = kernelRoot.split(/\s+/);
    if (!words.includes('ro') && !words.includes('rw')) kernelRoot += ' rw';
    root = `root=${kernelRoot}`;
  }

  argv.push(
    ...qbTokens(conf, 'qb_opt_append').map((t) => substitute(t, '@DEPLOY_DIR_IMAGE@', desc.deployDir)),
  );

  // Machine, CPU, SMP, accelerator, memory (runqemu check_kvm / check_mem).
  argv.push(
    ...qbTokens(conf, 'qb_machine'),
    ...qbTokens(conf, hardware ? 'qb_cpu_kvm' : 'qb_cpu'),
    ...smpArgs,
  );
  argv.push('-accel', accelSpec, '-m', String(memMiB));
  // runqemu leaves mem= out for x86, MIPS and LoongArch, and (since late 2025) whenever a
  // device tree is passed, because the Pi boards fail to boot with it.
  const machine = desc.machine;
  const noMemArg =
    /^(qemumips|qemux86|qemuloongarch64)/.test(machine) ||
    (!machine.startsWith('qemu') && /^(x86_64|i386)$/.test(target)) ||
    !!desc.dtb;
  if (!noMemArg) cmdline.unshift(`mem=${memMiB}M`);

  argv.push(...(opts.extraArgs ?? []));

  // Control channels: QMP for the supervisor, the human monitor for the UI's monitor tab.
  argv.push('-chardev', socketChardev('qmp0', opts.qmpSocket), '-mon', 'chardev=qmp0,mode=control');
  argv.push('-chardev', socketChardev('mon0', opts.monitorSocket), '-mon', 'chardev=mon0,mode=readline');

  const consoles = serialArgs(desc, opts.serialSockets, argv, notes);
  for (const c of desc.serialConsoles) cmdline.push(`console=${c.tty}`);

  // Headless: no window, but the board keeps the display devices runqemu gives it.
  argv.push('-display', 'none', ...qbTokens(conf, 'qb_graphics'));

  if (desc.bios) argv.push('-bios', desc.bios);

  let kernelCmdline = '';
  if (desc.kernel) {
    const append =
      conf.qb_kernel_cmdline?.trim() === 'none'
        ? []
        : [root, ...cmdline, conf.qb_kernel_cmdline_append ?? ''];
    // Parts are trimmed, not re-split, so quoted kernel arguments keep their spacing.
    kernelCmdline = [...append, opts.bootparams ?? '']
      .map((p) => p.trim())
      .filter((p) => p.length > 0)
      .join(' ');
    argv.push('-kernel', desc.kernel);
    if (kernelCmdline) argv.push('-append', kernelCmdline);
    if (desc.dtb) argv.push('-dtb', desc.dtb);
  }

  return {
    binary: desc.systemBinary,
    argv,
    kernelCmdline,
    ...(sshPort !== undefined ? { sshPort } : {}),
    consoles,
    // As runqemu: no audio backend unless asked for.
    env: { QEMU_AUDIO_DRV: 'none' },
    accel,
    notes,
  };
}

/** -drive arguments for the disk, from qb_rootfs_opt, qb_drive_type or runqemu's default. */
function rootfsArgs(desc: ImageDescriptor, disk: BootOptions['disk']): string[] {
  const conf = desc.conf;
  const file = escapeOptValue(disk.path);
  const fmt = disk.format;
  if (!desc.kernel && isVmImage(desc)) {
    // Whole-disk images with their own boot loader (runqemu's vmtypes).
    let extra = conf.qb_rootfs_extra_opt?.trim() ?? '';
    if (extra && !extra.startsWith(',')) extra = `,${extra}`;
    const drive = conf.qb_drive_type?.trim() ?? '';
    if (desc.fstype === 'iso') return ['-drive', `file=${file},if=virtio,media=cdrom`];
    if (drive.startsWith('/dev/sd')) {
      return [
        '-drive',
        `if=none,id=hd,file=${file},format=${fmt}`,
        '-device',
        'virtio-scsi-pci,id=scsi',
        '-device',
        `scsi-hd,drive=hd${extra}`,
      ];
    }
    if (drive.startsWith('/dev/hd')) return ['-drive', `file=${file},format=${fmt}`];
    if (drive.startsWith('/dev/mmcblk')) {
      return [
        '-drive',
        `id=sdcard0,if=none,file=${file},format=${fmt}`,
        '-device',
        'sdhci-pci',
        '-device',
        'sd-card,drive=sdcard0',
      ];
    }
    if (drive.startsWith('/dev/vdb')) {
      return [
        '-drive',
        `id=disk0,file=${file},if=none,format=${fmt}`,
        '-device',
        `virtio-blk-device,drive=disk0${extra}`,
      ];
    }
    return ['-drive', `if=virtio,file=${file},format=${fmt}`];
  }
  if (conf.qb_rootfs_opt?.trim()) {
    return qbTokens(conf, 'qb_rootfs_opt').map((t) => {
      if (!t.includes('@ROOTFS@')) return t;
      const s = substitute(t, '@ROOTFS@', disk.path);
      if (!s.includes('=')) return s;
      // The overlay is qcow2 while Yocto wrote format=raw for its image.
      return /(^|,)format=[^,]*/.test(s)
        ? s.replace(/(^|,)format=[^,]*/, `$1format=${fmt}`)
        : `${s},format=${fmt}`;
    });
  }
  return ['-drive', `file=${file},if=virtio,format=${fmt}`];
}

function isVmImage(desc: ImageDescriptor): boolean {
  const wic = /^wic(\.|$)/.test(desc.fstype);
  const noKernelInFs = /(^|\s)wic:no-kernel-in-fs(\s|$)/.test(desc.conf.qb_fsinfo ?? '');
  return desc.fstype === 'iso' || desc.fstype === 'hddimg' || (wic && !noKernelInFs);
}

/** Socket chardevs for every serial console: UARTs by -serial number, hvc via virtconsole. */
function serialArgs(
  desc: ImageDescriptor,
  sockets: string[],
  argv: string[],
  notes: string[],
): ConsolePlan[] {
  const cons = desc.serialConsoles;
  if (sockets.length < cons.length) {
    throw new Error(
      `the image has ${cons.length} serial consoles (${cons.map((c) => c.tty).join(', ')}) but ${sockets.length} sockets were given`,
    );
  }
  const consoles: ConsolePlan[] = [];
  const uarts: string[] = [];
  const hvcs: Array<{ n: number; i: number; socket: string }> = [];
  cons.forEach((c, i) => {
    const socket = sockets[i] as string;
    const hvc = /^hvc(\d+)$/.exec(c.tty);
    if (hvc) {
      hvcs.push({ n: Number(hvc[1]), i, socket });
      consoles.push({ index: i, name: c.tty, socket });
      return;
    }
    const at = uartIndex(desc.board, c.tty);
    if (at === undefined || uarts[at]) {
      notes.push(`serial console ${c.tty} cannot be connected on ${desc.board}`);
      return;
    }
    const id = `serial${i}`;
    argv.push('-chardev', socketChardev(id, socket));
    uarts[at] = id;
    consoles.push({ index: i, name: c.tty, socket });
  });
  // Like runqemu, at least two serial ports, so a getty on ttyS1 does not respawn forever.
  const count = Math.max(uarts.length, 2);
  for (let k = 0; k < count; k++) argv.push('-serial', uarts[k] ? `chardev:${uarts[k]}` : 'null');

  if (hvcs.length > 0) {
    // qb_serial_opt declares the virtio console (with a null chardev); keep its devices, drop
    // its stdio -serial entries, and put the sockets behind its virtconsole ports.
    const src = qbTokens(desc.conf, 'qb_serial_opt');
    const kept: string[] = [];
    const chardevAt = new Map<string, number>();
    const ports: string[] = [];
    for (let i = 0; i < src.length; i++) {
      const t = src[i] as string;
      const next = src[i + 1];
      if ((t === '-serial' || t === '-monitor' || t === '-mon') && next !== undefined) {
        i++;
        continue;
      }
      if (t === '-chardev' && next !== undefined) {
        const id = specId(next);
        kept.push(t, next);
        if (id) chardevAt.set(id, kept.length - 1);
        i++;
        continue;
      }
      if (t === '-device' && next !== undefined) {
        const port = /^virtconsole,(?:.*,)?chardev=([^,]+)/.exec(next)?.[1];
        if (port) ports.push(port);
        kept.push(t, next);
        i++;
        continue;
      }
      kept.push(t);
    }
    hvcs.sort((a, b) => a.n - b.n);
    hvcs.forEach((h, j) => {
      const port = ports[j];
      if (port) {
        const at = chardevAt.get(port);
        if (at !== undefined) kept[at] = socketChardev(port, h.socket);
        else kept.push('-chardev', socketChardev(port, h.socket));
        return;
      }
      if (!kept.some((t) => /^virtio-serial/.test(t))) kept.push('-device', 'virtio-serial-pci');
      const id = `hvc${h.n}`;
      kept.push('-chardev', socketChardev(id, h.socket), '-device', `virtconsole,chardev=${id}`);
    });
    argv.push(...kept);
  }
  return consoles.sort((a, b) => a.index - b.index);
}

/** Points hostfwd rules of a qb_slirp_opt argument at 127.0.0.1 and free ports. */
async function rewriteHostfwd(arg: string, preferSsh?: number): Promise<{ arg: string; sshPort?: number }> {
  const re = /hostfwd=(tcp|udp)?:([^:,]*):(\d+)-([^:,]*):(\d+)/g;
  let out = '';
  let last = 0;
  let sshPort: number | undefined;
  for (const m of arg.matchAll(re)) {
    const guestPort = Number(m[5]);
    const wanted = guestPort === 22 && preferSsh ? preferSsh : Number(m[3]);
    const port = await findFreePort(wanted);
    if (guestPort === 22) sshPort ??= port;
    out += `${arg.slice(last, m.index)}hostfwd=${m[1] ?? ''}:127.0.0.1:${port}-${m[4] ?? ''}:${guestPort}`;
    last = (m.index ?? 0) + m[0].length;
  }
  return { arg: out + arg.slice(last), sshPort };
}
