// Plain-language notes on what each layer of the stack does, for hobbyists who know
// their board but not necessarily how emulation works.
import type { HostInfo, VmSummary } from '../../../electron/common/contract.ts';
import { archLabel } from './images.ts';
import type { LayerKind } from './stack-tree.ts';

export interface LayerText {
  title: string;
  subtitle: string;
  about: string[];
  /** What the terminal for this layer is. */
  terminal: string;
}

function isTcg(vm: VmSummary): boolean {
  return vm.accel.toLowerCase().includes('tcg');
}

function firstConsole(vm: VmSummary): string {
  return vm.consoles[0]?.name ?? 'the first serial port';
}

export function hostArchLabel(host: HostInfo | null): string {
  return host ? archLabel(host.arch) : 'this computer';
}

export function layerText(
  kind: LayerKind,
  host: HostInfo | null,
  vm?: VmSummary,
  parent?: VmSummary,
): LayerText {
  const hostArch = hostArchLabel(host);
  switch (kind) {
    case 'pc':
      return {
        title: `PC ${hostArch}`,
        subtitle: host ? `${host.cpuModel} · ${host.cpus} CPUs` : 'This computer',
        about: [
          'This is your computer: its real processor, memory and disks. Every other layer in the picture is software running on it, each one wrapped inside the one around it.',
          'Nothing here is emulated. When a guest below is busy, this is the hardware doing the work.',
        ],
        terminal: 'A shell on this computer, as if you opened a terminal window.',
      };
    case 'host-kernel':
      return {
        title: 'Kernel',
        subtitle: host ? `${host.os === 'linux' ? 'Linux' : host.os} ${host.kernel}` : 'Host kernel',
        about: [
          "The host's operating-system kernel shares the real CPU and memory among all programs, QEMU included.",
          'To this kernel a whole emulated computer is just one more process using CPU time and memory: it has no idea a second operating system lives inside it.',
        ],
        terminal: 'A shell on this computer.',
      };
    case 'host-userspace':
      return {
        title: 'Userspace',
        subtitle: host ? `${host.osRelease} · ${host.userShell}` : 'Host programs',
        about: [
          'Your everyday programs run here: the desktop, your shell, Stacklab itself, and one QEMU process for each guest you boot.',
          'Each QEMU is an ordinary program from the host’s point of view: you can see it in top or the task manager, with the process id shown in its box.',
          'A user-mode shell (the Shell button in the Library) also lives here: qemu-user translates an image’s programs one system call at a time onto this kernel, with no guest kernel and no boot at all.',
        ],
        terminal: 'A shell on this computer.',
      };
    case 'qemu': {
      const v = vm!;
      const inner = parent
        ? ` This QEMU itself runs inside the guest “${parent.imageId}”, so each instruction of its guest is translated twice: once by this QEMU into ${parent.arch} code, then again by the QEMU around it.`
        : '';
      const how = isTcg(v)
        ? `With TCG, the Tiny Code Generator, QEMU reads the guest's ${v.arch} machine code a block at a time, translates each block into instructions this processor understands and keeps the translations in a cache. That is why an emulated board runs slower than the real one.`
        : `With ${v.accel.toUpperCase()}, the guest's instructions run directly on the real processor and QEMU only steps in for devices, so it runs close to native speed.`;
      return {
        title: `QEMU ${archLabel(v.arch)}`,
        subtitle: `${baseNameOf(v.binary)} · ${v.board} board · ${v.accel.toUpperCase()}`,
        about: [
          `QEMU pretends to be a complete ${v.board} computer with an ${v.arch} processor: memory, a serial port, a disk and a network card, all made of software.`,
          how + inner,
          'Its terminal here is the QEMU monitor (HMP): commands such as “info status”, “info registers” or “help” look at the virtual machine from outside, without the guest noticing.',
        ],
        terminal: 'The QEMU monitor (HMP) of this virtual machine.',
      };
    }
    case 'guest-kernel': {
      const v = vm!;
      return {
        title: 'Kernel',
        subtitle: v.kernelVersion ? `Linux ${v.kernelVersion}` : 'Guest kernel',
        about: [
          `The guest's own Linux kernel. It believes it runs on a real ${v.board} board and drives QEMU's pretend devices exactly as it would drive physical ones.`,
          `Its boot messages go to ${firstConsole(v)}, the guest's first serial port, which is the console you see here. Everything it does is ${v.arch} code passing through QEMU.`,
        ],
        terminal: `The guest's serial console (${firstConsole(v)}).`,
      };
    }
    case 'guest-userspace': {
      const v = vm!;
      return {
        title: 'Userspace',
        subtitle: v.imageId,
        about: [
          `The guest's programs: init, the login prompt and the shell. To them this is an ordinary ${v.arch} Linux system; they have no way to tell it is emulated.`,
          'Demo and Yocto images with debug-tweaks let you log in as root with no password. Type commands on the serial console as you would on the board’s UART.',
        ],
        terminal: `The guest's serial console (${firstConsole(v)}).`,
      };
    }
  }
}

function baseNameOf(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}
