import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ImageDescriptor } from '../../electron/engine/image/descriptor.ts';
import { nestedMachine, supportsVirtioMmio } from '../../electron/engine/stack/nested-machine.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-nested-machine-'));
const file = (name: string, bytes: Buffer | string) => {
  const p = path.join(dir, name);
  writeFileSync(p, bytes);
  return p;
};
// A kernel with virtio-mmio built in carries the driver's ACPI match table.
const builtIn = file(
  'vmlinux-builtin',
  Buffer.concat([Buffer.alloc(4096, 0x90), Buffer.from('LNRO0005\0'), Buffer.alloc(64)]),
);
const modular = file('vmlinux-modular', Buffer.alloc(8192, 0x90));
const cpio = (names: string[]) => Buffer.from(names.map((n) => `070701...${n}\0`).join(''));
const withModule = file(
  'initrd-mmio.gz',
  gzipSync(cpio(['lib/modules/virtio_blk.ko', 'lib/modules/virtio_mmio.ko'])),
);
const withoutModule = file(
  'initrd-pci.gz',
  gzipSync(cpio(['lib/modules/virtio_pci.ko', 'lib/modules/virtio_blk.ko'])),
);
const plainCpio = file('initrd-plain.cpio', cpio(['lib/modules/virtio_mmio.ko']));
const broken = file('initrd-broken.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));

const x86 = { arch: 'x86_64' } as ImageDescriptor;
const planArgs = ['-machine', 'q35,i8042=off', '-cpu', 'IvyBridge'];

describe('supportsVirtioMmio', () => {
  it('finds the driver built into the kernel or as a module in the initramfs', () => {
    expect(supportsVirtioMmio(builtIn)).toBe(true);
    expect(supportsVirtioMmio(modular, withModule)).toBe(true);
    expect(supportsVirtioMmio(modular, plainCpio)).toBe(true);
  });
  it('says no when neither has it, or the initramfs cannot be read', () => {
    expect(supportsVirtioMmio(modular)).toBe(false);
    expect(supportsVirtioMmio(modular, withoutModule)).toBe(false);
    expect(supportsVirtioMmio(modular, broken)).toBe(false);
  });
});

describe('nestedMachine', () => {
  it('boots an x86-64 guest inside an arm64 parent on microvm, keeping the CPU model', () => {
    const m = nestedMachine({
      child: x86,
      parentArch: 'aarch64',
      planArgs,
      pvhKernel: modular,
      initrd: withModule,
    });
    expect(m.qemuArgs).toEqual(['-machine', 'microvm,x-option-roms=off', '-cpu', 'IvyBridge']);
    expect(m.append).toEqual(['tsc_early_khz=1000000']);
    expect(m.bus).toBe('mmio');
    expect(m.why).toMatch(/^microvm/);
  });
  it('keeps runqemu’s machine, and says why, when microvm would not boot', () => {
    const cases = [
      [{ child: x86, parentArch: 'x86_64', planArgs, pvhKernel: builtIn }, /known TSC rate/],
      [{ child: x86, parentArch: 'aarch64', planArgs }, /PVH entry/],
      [
        { child: x86, parentArch: 'aarch64', planArgs, pvhKernel: modular, initrd: withoutModule },
        /no virtio-mmio driver/,
      ],
    ] as const;
    for (const [input, why] of cases) {
      const m = nestedMachine(input);
      expect(m.qemuArgs).toEqual(planArgs);
      expect(m.append).toEqual([]);
      expect(m.bus).toBe('pci');
      expect(m.why).toMatch(/^q35, as runqemu would boot it/);
      expect(m.why).toMatch(why);
    }
  });
  it('leaves other architectures as runqemu boots them', () => {
    const arm = { arch: 'aarch64' } as ImageDescriptor;
    const args = ['-machine', 'virt', '-cpu', 'cortex-a57'];
    const m = nestedMachine({ child: arm, parentArch: 'x86_64', planArgs: args, pvhKernel: builtIn });
    expect(m).toEqual({ qemuArgs: args, append: [], bus: 'pci', why: 'virt, as runqemu would boot it' });
  });
});
