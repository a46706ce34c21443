// The demo x86-64 kernel's config fragment: that it parses, and that the check after kconfig
// names every setting kconfig dropped (a dependency it could not satisfy) instead of building
// a kernel that silently lacks a driver.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseFragment, unmetSettings } from '../../scripts/guests/kernel-build.ts';

const FRAGMENT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../scripts/guests/kernel/qemux86-64.config',
);

describe('kernel config fragment', () => {
  it('parses the qemux86-64 fragment: root disk drivers built in, modules off', () => {
    const f = parseFragment(readFileSync(FRAGMENT, 'utf8'));
    for (const k of ['CONFIG_VIRTIO_BLK', 'CONFIG_VIRTIO_MMIO', 'CONFIG_EXT4_FS', 'CONFIG_PVH'])
      expect(f.get(k), k).toBe('y');
    expect(f.get('CONFIG_MODULES')).toBe('n');
    expect(f.get('CONFIG_LOCALVERSION')).toBe('"-stacklab"');
  });

  it('rejects a line that is not CONFIG_NAME=value, naming it', () => {
    expect(() => parseFragment('# ok\nCONFIG_A=y\nVIRTIO=y\n')).toThrow(
      'config fragment line 3 is not CONFIG_NAME=value: VIRTIO=y',
    );
  });

  it('lists settings the resolved .config does not hold', () => {
    const f = parseFragment('CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=n\nCONFIG_D="x"\nCONFIG_E=n\n');
    const dot = [
      'CONFIG_A=y',
      '# CONFIG_B is not set',
      'CONFIG_C=y',
      'CONFIG_D="x"',
      '# CONFIG_E is not set',
    ].join('\n');
    expect(unmetSettings(f, dot)).toEqual(['CONFIG_B=y (got not set)', 'CONFIG_C=n (got y)']);
    expect(unmetSettings(f, 'CONFIG_A=y\nCONFIG_B=y\nCONFIG_D="x"\n')).toEqual([]);
  });
});
