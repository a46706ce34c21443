// Which QEMU machine a nested guest boots on. runqemu's choice (q35 for qemux86-64) is kept
// unless a lighter one is known to work: inside a guest every firmware step, PCI probe and
// ACPI method is translated twice, so microvm (no PCI, no SeaBIOS, a few ACPI tables, virtio
// on MMIO) buys more there than anywhere else. See docs/ARCHITECTURE.md, "Nested boot time".
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ImageDescriptor } from '../image/descriptor.ts';
import { fileKey } from './nested-install.ts';

export type VirtioBus = 'pci' | 'mmio';

export interface NestedMachine {
  qemuArgs: string[];
  /** Kernel options this machine needs on top of the image's own. */
  append: string[];
  /** Where the agent puts virtio disk and network devices. */
  bus: VirtioBus;
  /** One line for the stack's log: which machine and why. */
  why: string;
}

/**
 * QEMU's TSC under TCG counts the host's tick counter; on hosts other than x86 that counter
 * is the nanosecond clock (QEMU's cpu_get_host_ticks fallback), so the nested TSC runs at
 * exactly 1 GHz. Saying so skips calibration, which on microvm has no HPET or PM timer to
 * calibrate against: without it the nested guest had not reached its login after 400 s.
 */
const TSC_KHZ_ON_NON_X86_HOST = 1_000_000;

/** microvm finds virtio-mmio devices through ACPI (LNRO0005), served by the virtio_mmio driver. */
const MMIO_ACPI_ID = Buffer.from('LNRO0005');
const MMIO_MODULE = Buffer.from('virtio_mmio.ko');

/**
 * Whether the guest can reach its disk on virtio-mmio: the driver built into the kernel (its
 * ACPI match table is then in the image), or shipped as a module in the initramfs.
 */
export function supportsVirtioMmio(kernel: string, initrd?: string): boolean {
  // Both stack.prepare and stack.up ask, and the kernel is tens of MB: read each version once.
  const key = `${fileKey(kernel)}|${initrd ? fileKey(initrd) : ''}`;
  let known = mmioSupport.get(key);
  if (known === undefined) {
    known = scanForVirtioMmio(kernel, initrd);
    mmioSupport.set(key, known);
  }
  return known;
}

const mmioSupport = new Map<string, boolean>();

function scanForVirtioMmio(kernel: string, initrd?: string): boolean {
  if (readFileSync(kernel).includes(MMIO_ACPI_ID)) return true;
  if (!initrd) return false;
  let bytes = readFileSync(initrd);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch {
      return false;
    }
  }
  return bytes.includes(MMIO_MODULE);
}

export function nestedMachine(o: {
  child: ImageDescriptor;
  parentArch: string;
  /** runqemu's -machine and -cpu pairs for the child. */
  planArgs: string[];
  pvhKernel?: string;
  initrd?: string;
}): NestedMachine {
  const runqemu: NestedMachine = {
    qemuArgs: o.planArgs,
    append: [],
    bus: 'pci',
    why: `${machineOf(o.planArgs) ?? 'the default machine'}, as runqemu would boot it`,
  };
  if (o.child.arch !== 'x86_64') return runqemu;
  if (!o.pvhKernel) return { ...runqemu, why: `${runqemu.why} (microvm needs a vmlinux with a PVH entry)` };
  // On an x86 parent the nested TSC follows the real one, whose rate the app cannot know here.
  if (o.parentArch === 'x86_64')
    return {
      ...runqemu,
      why: `${runqemu.why} (microvm needs a known TSC rate, which an x86 parent does not give)`,
    };
  if (!supportsVirtioMmio(o.pvhKernel, o.initrd))
    return { ...runqemu, why: `${runqemu.why} (the guest has no virtio-mmio driver, which microvm needs)` };
  const cpu = o.planArgs.indexOf('-cpu');
  return {
    // x-option-roms=off: the kernel is loaded directly (PVH), so no option ROM has anything to do.
    qemuArgs: ['-machine', 'microvm,x-option-roms=off', ...(cpu >= 0 ? o.planArgs.slice(cpu, cpu + 2) : [])],
    append: [`tsc_early_khz=${TSC_KHZ_ON_NON_X86_HOST}`],
    bus: 'mmio',
    why: 'microvm: a minimal firmware instead of SeaBIOS, no PCI to probe, virtio on MMIO',
  };
}

function machineOf(args: string[]): string | undefined {
  const i = args.indexOf('-machine');
  return i >= 0 ? args[i + 1]?.split(',')[0] : undefined;
}
