import { describe, expect, it } from 'vitest';
import type { StackPreset, VmSummary } from '../../electron/common/contract.ts';
import { addStep, layerNesting, stackStatus, stackVmId } from '../../renderer/src/lib/stacks.ts';

const seed: StackPreset = {
  name: 'seed',
  title: 'Seed stack',
  description: 'x86 in arm64',
  layers: [
    { name: 'arm64', image: 'demo-qemuarm64-host', depth: 1 },
    { name: 'x86', image: 'demo-qemux86-64', depth: 2 },
  ],
};

function vm(id: string, state: VmSummary['state']): VmSummary {
  return {
    id,
    imageId: 'img',
    name: id,
    state,
    milestones: [],
    startedAt: 0,
    binary: 'qemu-system-aarch64',
    board: 'virt',
    arch: 'aarch64',
    accel: 'tcg',
    accelWhy: '',
    argv: [],
    commandLine: '',
    consoles: [],
    depth: 1,
  };
}

describe('stack presets in the Library', () => {
  it('rebuilds the nesting from the pre-order layer list', () => {
    const tree = layerNesting([
      { name: 'a', image: 'A', depth: 1 },
      { name: 'b', image: 'B', depth: 2 },
      { name: 'c', image: 'C', depth: 3 },
      { name: 'd', image: 'D', depth: 2 },
      { name: 'e', image: 'E', depth: 1 },
    ]);
    const names = (l: typeof tree): unknown => l.map((b) => [b.name, names(b.children)]);
    expect(names(tree)).toEqual([
      [
        'a',
        [
          ['b', [['c', []]]],
          ['d', []],
        ],
      ],
      ['e', []],
    ]);
  });

  it('tells down, partial and up from the VMs the engine lists', () => {
    expect(stackVmId('seed', 'x86')).toBe('seed-x86');
    expect(stackStatus(seed, {})).toBe('down');
    expect(stackStatus(seed, { 'seed-arm64': vm('seed-arm64', 'booting') })).toBe('partial');
    expect(
      stackStatus(seed, {
        'seed-arm64': vm('seed-arm64', 'running'),
        'seed-x86': vm('seed-x86', 'starting'),
      }),
    ).toBe('up');
    expect(
      stackStatus(seed, {
        'seed-arm64': vm('seed-arm64', 'stopped'),
        'seed-x86': vm('seed-x86', 'crashed'),
      }),
    ).toBe('down');
  });

  it('keeps step messages in order without repeats', () => {
    const p = (message?: string) =>
      ({
        taskId: 'stack-seed',
        label: 'Stack seed',
        state: 'running',
        done: 0,
        unit: 'items',
        message,
      }) as const;
    let steps: string[] = [];
    steps = addStep(steps, p('installing x86'));
    steps = addStep(steps, p('installing x86'));
    steps = addStep(steps, p());
    steps = addStep(steps, p('booting arm64'));
    expect(steps).toEqual(['installing x86', 'booting arm64']);
  });
});
