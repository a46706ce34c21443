import { describe, expect, it } from 'vitest';
import type { CatalogueItem } from '../../electron/common/contract.ts';
import { groupCatalogue, percentDone } from '../../renderer/src/lib/catalogue.ts';
import { dropOutcome, LAB_DROP_NOTE } from '../../renderer/src/lib/import-drop.ts';
import { nextSnapshotName, snapshotNameError } from '../../renderer/src/lib/snapshot-name.ts';

function entry(id: string, source: CatalogueItem['source'], release?: string): CatalogueItem {
  return {
    id,
    name: id,
    machine: 'qemuarm64',
    arch: 'aarch64',
    board: 'virt',
    release,
    source,
    catalogue: 'builtin',
    files: [],
    installed: false,
  };
}

describe('Get images', () => {
  it('groups by source then release, newest release first, names sorted', () => {
    const groups = groupCatalogue([
      entry('z-img', 'yocto', 'scarthgap'),
      entry('mine', 'user'),
      entry('a-img', 'yocto', 'scarthgap'),
      entry('old', 'yocto', 'kirkstone'),
      entry('demo', 'demo'),
    ]);
    expect(groups.map((g) => g.title)).toEqual([
      'Demo',
      'Yocto Project · scarthgap',
      'Yocto Project · kirkstone',
      'Your catalogues',
    ]);
    expect(groups[1]!.entries.map((e) => e.id)).toEqual(['a-img', 'z-img']);
  });

  it('gives a download percentage only when the size is known', () => {
    expect(percentDone({ done: 50, total: 200 })).toBe(25);
    expect(percentDone({ done: 50 })).toBeUndefined();
    expect(percentDone({ done: 500, total: 200 })).toBe(100);
  });
});

describe('import by drop', () => {
  it('uses the host path Electron puts on a File', () => {
    expect(dropOutcome([{ name: 'a.wic', path: '/home/me/a.wic' }])).toEqual({
      kind: 'paths',
      paths: ['/home/me/a.wic'],
    });
  });

  it('says lab mode imports by path when the browser gives no path', () => {
    expect(dropOutcome([{ name: 'a.wic' }])).toEqual({ kind: 'no-path', note: LAB_DROP_NOTE });
    expect(dropOutcome([{ name: 'a.wic', path: '' }]).kind).toBe('no-path');
    expect(dropOutcome([]).kind).toBe('nothing');
  });
});

describe('snapshot names', () => {
  it('accepts what the contract accepts and explains what it refuses', () => {
    expect(snapshotNameError('')).toBe('');
    expect(snapshotNameError('before-upgrade_2.1')).toBe('');
    expect(snapshotNameError('-x')).toMatch(/letters, digits and \._-/);
    expect(snapshotNameError('.hidden')).toMatch(/not starting with/);
    expect(snapshotNameError('with space')).not.toBe('');
    expect(snapshotNameError('a'.repeat(65))).not.toBe('');
  });

  it('suggests the first free snap-N', () => {
    expect(nextSnapshotName([])).toBe('snap-1');
    expect(nextSnapshotName(['snap-1', 'snap-3'])).toBe('snap-2');
  });
});
