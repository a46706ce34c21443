// The stack diagram's model: nesting from parentId, and which terminal each layer opens.
import { describe, expect, it } from 'vitest';
import { VmSummary } from '../../electron/common/contract.ts';
import {
  buildStackTree,
  flatten,
  layerId,
  parseLayerId,
  targetKey,
  targetVmId,
  terminalTargetFor,
  vmPath,
} from '../../renderer/src/lib/stack-tree.ts';

function vm(id: string, startedAt: number, parentId?: string): VmSummary {
  // Parsed through the contract so the fixture has exactly the shape the engine sends.
  return VmSummary.parse({
    id,
    imageId: 'demo-qemuarm64',
    name: id,
    state: 'running',
    milestones: [],
    startedAt,
    binary: '/usr/bin/qemu-system-aarch64',
    board: 'virt',
    arch: 'aarch64',
    accel: 'tcg',
    accelWhy: 'KVM cannot run an aarch64 guest on x86-64',
    argv: ['qemu-system-aarch64'],
    commandLine: 'qemu-system-aarch64',
    consoles: [{ index: 0, name: 'ttyAMA0' }],
    parentId,
  });
}

describe('buildStackTree', () => {
  it('nests guests under their parents, three levels deep, oldest first', () => {
    const roots = buildStackTree([
      vm('inner', 30, 'middle'),
      vm('b-top', 20),
      vm('middle', 10, 'a-top'),
      vm('a-top', 5),
      vm('middle-2', 9, 'a-top'),
    ]);
    expect(roots.map((n) => n.vm.id)).toEqual(['a-top', 'b-top']);
    const a = roots[0]!;
    expect(a.depth).toBe(1);
    expect(a.children.map((n) => n.vm.id)).toEqual(['middle-2', 'middle']);
    const middle = a.children[1]!;
    expect(middle.depth).toBe(2);
    expect(middle.children.map((n) => [n.vm.id, n.depth])).toEqual([['inner', 3]]);
    expect(flatten(roots).map((n) => n.vm.id)).toEqual(['a-top', 'middle-2', 'middle', 'inner', 'b-top']);
  });

  it('draws a guest whose parent is gone at the top level, marked as an orphan', () => {
    const roots = buildStackTree([vm('child', 2, 'gone'), vm('top', 1)]);
    expect(roots.map((n) => [n.vm.id, n.orphan, n.depth])).toEqual([
      ['top', false, 1],
      ['child', true, 1],
    ]);
  });

  it('breaks a parent loop instead of losing the guests in it', () => {
    const roots = buildStackTree([vm('x', 1, 'y'), vm('y', 2, 'x'), vm('z', 3, 'x')]);
    const all = flatten(roots).map((n) => n.vm.id);
    expect(all.sort()).toEqual(['x', 'y', 'z']);
    // z's parent x is itself in a loop, so x becomes a root and z still hangs under it.
    const x = roots.find((n) => n.vm.id === 'x')!;
    expect(x.orphan).toBe(true);
    expect(x.children.map((n) => n.vm.id)).toEqual(['z']);
  });

  it('finds the path from the outermost guest to a nested one', () => {
    const roots = buildStackTree([vm('a', 1), vm('b', 2, 'a'), vm('c', 3, 'b')]);
    expect(vmPath(roots, 'c').map((n) => n.vm.id)).toEqual(['a', 'b', 'c']);
    expect(vmPath(roots, 'nope')).toEqual([]);
  });
});

describe('layers and their terminals', () => {
  it('round-trips layer ids and rejects malformed ones', () => {
    for (const ref of [
      { kind: 'pc' as const },
      { kind: 'host-kernel' as const },
      { kind: 'qemu' as const, vmId: 'vm-1' },
      { kind: 'guest-userspace' as const, vmId: 'a:b@c' },
    ]) {
      expect(parseLayerId(layerId(ref))).toEqual(ref);
    }
    expect(parseLayerId('qemu')).toBeNull();
    expect(parseLayerId('pc/vm1')).toBeNull();
    expect(parseLayerId('weird/vm1')).toBeNull();
    expect(parseLayerId('qemu/')).toBeNull();
  });

  it('maps PC layers to the host shell, QEMU to its monitor, the guest to serial 0', () => {
    expect(terminalTargetFor({ kind: 'pc' })).toEqual({ kind: 'host' });
    expect(terminalTargetFor({ kind: 'host-userspace' })).toEqual({ kind: 'host' });
    expect(terminalTargetFor({ kind: 'qemu', vmId: 'v' })).toEqual({ kind: 'monitor', vmId: 'v' });
    expect(terminalTargetFor({ kind: 'guest-kernel', vmId: 'v' })).toEqual({
      kind: 'serial',
      vmId: 'v',
      index: 0,
    });
    // Kernel and userspace of one guest share one console session (same key).
    expect(targetKey(terminalTargetFor({ kind: 'guest-kernel', vmId: 'v' }))).toBe(
      targetKey(terminalTargetFor({ kind: 'guest-userspace', vmId: 'v' })),
    );
    expect(targetKey({ kind: 'monitor', vmId: 'v' })).not.toBe(
      targetKey({ kind: 'serial', vmId: 'v', index: 0 }),
    );
    // A user-mode shell belongs to an image, not to a VM: removing a VM leaves it alone.
    expect(targetKey({ kind: 'usermode', imageId: 'demo' })).toBe('usermode/demo/');
    expect(targetVmId({ kind: 'usermode', imageId: 'demo' })).toBeUndefined();
    expect(targetVmId({ kind: 'serial', vmId: 'v', index: 1 })).toBe('v');
    expect(targetVmId({ kind: 'host' })).toBeUndefined();
  });
});
