// The demo x86-64 kernel's config fragment: that it parses, and that the check after kconfig
// names every setting kconfig dropped (a dependency it could not satisfy) instead of building
// a kernel that silently lacks a driver. Then the build cache, with real files: what its key
// depends on, and that only a complete build counts as cached.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildKernel, kernelKey, parseFragment, unmetSettings } from '../../scripts/guests/kernel-build.ts';

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

describe('kernel build cache', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-kernel-cache-'));
  const sourcePkg = { name: 'linux-source-6.1', arch: 'all', version: '6.1.192-2' };
  const fragment = path.join(dir, 'frag.config');
  writeFileSync(fragment, '# a comment\nCONFIG_64BIT=y\nCONFIG_MODULES=n\n');
  const kernelsDir = path.join(dir, 'kernels');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const opts = (work: string) => ({
    sourcePkg,
    // Never there: a build that tried to unpack it would fail, so a cache hit is proven.
    sourceDeb: path.join(dir, 'missing.deb'),
    fragment,
    kernelsDir,
    work,
    log: () => undefined,
  });

  it('keys by settings, not by comments', async () => {
    const before = await kernelKey({ sourcePkg, fragment });
    writeFileSync(fragment, '# reworded\n\nCONFIG_64BIT=y\nCONFIG_MODULES=n\n');
    expect(await kernelKey({ sourcePkg, fragment })).toBe(before);
    const other = path.join(dir, 'other.config');
    writeFileSync(other, 'CONFIG_64BIT=y\nCONFIG_MODULES=y\n');
    expect(await kernelKey({ sourcePkg, fragment: other })).not.toBe(before);
    expect(await kernelKey({ sourcePkg: { ...sourcePkg, version: '6.1.193-1' }, fragment })).not.toBe(before);
  });

  it('returns a complete cached build without touching the source package', async () => {
    const key = await kernelKey({ sourcePkg, fragment });
    const done = path.join(kernelsDir, key);
    mkdirSync(done, { recursive: true });
    writeFileSync(path.join(done, 'bzImage'), 'kernel bytes');
    writeFileSync(path.join(done, 'kernel.json'), JSON.stringify({ kver: '6.1.192-stacklab' }));
    const k = await buildKernel(opts(path.join(dir, 'work1')));
    expect(k).toMatchObject({ key, kver: '6.1.192-stacklab', bzImage: path.join(done, 'bzImage') });
  });

  it('does not take a build without its bzImage for a cached one', async () => {
    const key = await kernelKey({ sourcePkg, fragment });
    const done = path.join(kernelsDir, key);
    mkdirSync(done, { recursive: true });
    writeFileSync(path.join(done, 'kernel.json'), JSON.stringify({ kver: '6.1.192-stacklab' }));
    rmSync(path.join(done, 'bzImage'), { force: true });
    await expect(buildKernel(opts(path.join(dir, 'work2')))).rejects.toThrow(/dpkg-deb .*missing\.deb/);
  });
});
