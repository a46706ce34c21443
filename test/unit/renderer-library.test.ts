// Library ordering, labels and the early-output buffer used by terminals.
import { describe, expect, it } from 'vitest';
import type { ImageSummary } from '../../electron/common/contract.ts';
import { EarlyBuffer } from '../../renderer/src/lib/early-buffer.ts';
import { formatBytes, formatMiB, formatSeconds } from '../../renderer/src/lib/format.ts';
import { archLabel, sortImages } from '../../renderer/src/lib/images.ts';

function image(id: string, source: ImageSummary['source'], bootable = true): ImageSummary {
  return {
    id,
    name: id,
    source,
    machine: 'm',
    arch: 'aarch64',
    board: 'virt',
    path: '/p',
    sizeBytes: 1,
    bootable,
  };
}

describe('library order', () => {
  it('puts demo guests first, then bootable images, then by name', () => {
    const sorted = sortImages([
      image('z-import', 'import'),
      image('b-yocto-broken', 'yocto', false),
      image('demo-x86', 'demo'),
      image('a-yocto', 'yocto'),
      image('demo-arm', 'demo'),
    ]);
    expect(sorted.map((i) => i.id)).toEqual([
      'demo-arm',
      'demo-x86',
      'a-yocto',
      'b-yocto-broken',
      'z-import',
    ]);
  });

  it('names architectures the way hobbyists know them', () => {
    expect(archLabel('x64')).toBe('x86-64');
    expect(archLabel('x86_64')).toBe('x86-64');
    expect(archLabel('aarch64')).toBe('Arm64');
    expect(archLabel('riscv64')).toBe('riscv64');
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(24_000_000)).toBe('24.0 MB');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatMiB(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatMiB(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatSeconds(1234)).toBe('1.2 s');
    expect(formatSeconds(125_000)).toBe('2 min 5 s');
  });
});

describe('EarlyBuffer', () => {
  it('holds output for a terminal id until it is claimed, once', () => {
    const b = new EarlyBuffer();
    b.hold('t1', 'boot ');
    b.hold('t1', 'log');
    b.hold('t2', 'other');
    expect(b.claim('t1')).toEqual(['boot ', 'log']);
    expect(b.claim('t1')).toEqual([]);
    expect(b.size).toBe(1);
  });

  it('keeps the newest output when a replay is larger than the bound', () => {
    const b = new EarlyBuffer(10);
    b.hold('t', 'aaaaaa');
    b.hold('t', 'bbbbbb');
    b.hold('t', 'cc');
    expect(b.claim('t')).toEqual(['bbbbbb', 'cc']);
  });

  it('forgets output nobody claimed in time', () => {
    let now = 0;
    const b = new EarlyBuffer(1000, 100, () => now);
    b.hold('stale', 'x');
    now = 500;
    b.hold('fresh', 'y');
    expect(b.claim('stale')).toEqual([]);
    expect(b.claim('fresh')).toEqual(['y']);
  });
});
