// electron-builder.yml, loaded and schema-checked by electron-builder's own code, names every
// resource a package needs, and the place it puts the QEMU bundle is exactly where the app
// looks for it at run time (resourcesDir() + bundleRootFor()).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bundleRootFor } from '../../electron/engine/bundle/layout.ts';
import { resourcesDir } from '../../electron/engine/paths.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

// electron-builder's config loader and validator (app-builder-lib ships with electron-builder).
const requireFromBuilder = createRequire(createRequire(import.meta.url).resolve('electron-builder'));
const { getConfig, validateConfiguration } = requireFromBuilder(
  'app-builder-lib/out/util/config/config.js',
) as {
  getConfig(projectDir: string, configPath: string | null, fromOptions: unknown): Promise<BuilderConfig>;
  validateConfiguration(config: BuilderConfig, logger: unknown): Promise<void>;
};
const { DebugLogger } = requireFromBuilder('builder-util') as {
  DebugLogger: new (enabled: boolean) => unknown;
};

interface FileSet {
  from: string;
  to: string;
}
interface PlatformConfig {
  target?: unknown;
  icon?: string;
  extraResources?: FileSet[];
  entitlements?: string;
  entitlementsInherit?: string;
  hardenedRuntime?: boolean;
}
interface BuilderConfig {
  appId?: string;
  productName?: string;
  files?: Array<string | { filter?: string[] }>;
  asar?: boolean;
  asarUnpack?: string[];
  npmRebuild?: boolean;
  extraResources?: FileSet[];
  electronFuses?: Record<string, boolean>;
  directories?: { buildResources?: string };
  linux?: PlatformConfig;
  mac?: PlatformConfig;
  win?: PlatformConfig;
  nsis?: { installerIcon?: string };
}

// electron-builder's platform keys → Node's process.platform, which the app uses at run time.
const NODE_PLATFORM = { linux: 'linux', mac: 'darwin', win: 'win32' } as const;
const HOST_KEY = (Object.keys(NODE_PLATFORM) as Array<keyof typeof NODE_PLATFORM>).find(
  (k) => NODE_PLATFORM[k] === process.platform,
);

async function load(): Promise<BuilderConfig> {
  const config = await getConfig(ROOT, null, null);
  await validateConfiguration(config, new DebugLogger(false));
  return config;
}

/** What electron-builder's ${arch} becomes for this Node arch (x64 and arm64 are spelled alike). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: electron-builder's macro, not a JS template
const expandArch = (s: string, arch: string) => s.replaceAll('${arch}', arch);

function pngSize(file: string): { w: number; h: number } {
  const b = readFileSync(file);
  expect(b.readUInt32BE(0), `${file} is a PNG`).toBe(0x89504e47);
  return { w: b.readUInt32BE(16), h: b.readUInt32BE(20) };
}

function plistKeys(file: string): Record<string, boolean> {
  const xml = readFileSync(file, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  const out: Record<string, boolean> = {};
  for (const m of xml.matchAll(/<key>([^<]+)<\/key>\s*<(true|false)\/>/g))
    out[m[1] as string] = m[2] === 'true';
  return out;
}

describe('electron-builder configuration', () => {
  afterEach(() => {
    delete (process as { resourcesPath?: string }).resourcesPath;
  });

  it('loads through electron-builder and passes its schema (and a misspelt key would not)', async () => {
    const c = await load();
    expect(c.productName).toBe('Stacklab');
    expect(c.appId).toMatch(/^[a-z]+(\.[a-z0-9-]+)+$/);
    const bad = await getConfig(ROOT, null, { extraResource: [] });
    await expect(validateConfiguration(bad, new DebugLogger(false))).rejects.toThrow(/extraResource/);
    // The configuration lives in electron-builder.yml, never under "build" in package.json.
    expect(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).build).toBeUndefined();
  });

  it('packs only the built app into app.asar and keeps native code out of it', async () => {
    const c = await load();
    // electron-builder's validator normalises `files` into [{ filter: [...] }].
    const files = (c.files ?? []).flatMap((f) => (typeof f === 'string' ? [f] : (f.filter ?? [])));
    expect(files).toEqual(expect.arrayContaining(['out/**/*', 'package.json']));
    expect(files).toContain('!**/*.{ts,tsx,map,md}'); // sources and source maps stay out
    expect(c.asar).toBe(true);
    expect(c.asarUnpack).toContain('**/*.node');
    expect(c.asarUnpack?.some((p) => p.includes('spawn-helper'))).toBe(true);
    expect(c.npmRebuild).toBe(false);
  });

  it('sets the Electron fuses', async () => {
    const c = await load();
    expect(c.electronFuses).toEqual({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
    });
  });

  it('names targets per OS: AppImage+deb, dmg with hardened runtime, nsis', async () => {
    const c = await load();
    expect(c.linux?.target).toEqual(['AppImage', 'deb']);
    expect(JSON.stringify(c.mac?.target)).toContain('dmg');
    expect(c.mac?.hardenedRuntime).toBe(true);
    expect(JSON.stringify(c.win?.target)).toContain('nsis');
  });

  for (const key of Object.keys(NODE_PLATFORM) as Array<keyof typeof NODE_PLATFORM>) {
    it(`${key}: ships resources/qemu/${NODE_PLATFORM[key]}-<arch> where the app looks for it`, async () => {
      const c = await load();
      const platform = NODE_PLATFORM[key];
      const qemu = c[key]?.extraResources?.find((r) => r.from.startsWith('resources/qemu/'));
      expect(qemu).toEqual({ from: `resources/qemu/${platform}-\${arch}`, to: `qemu/${platform}-\${arch}` });
      // A packaged app: resourcesDir() is process.resourcesPath, and the bundle must be exactly
      // where extraResources put it, for every arch we ship.
      const packaged = path.join(path.sep, 'opt', 'Stacklab', 'resources');
      (process as { resourcesPath?: string }).resourcesPath = packaged;
      expect(resourcesDir()).toBe(packaged);
      for (const arch of ['x64', 'arm64']) {
        const placed = path.join(packaged, expandArch((qemu as FileSet).to, arch));
        expect(bundleRootFor(resourcesDir(), platform, arch)).toBe(placed);
        expect(expandArch((qemu as FileSet).from, arch)).toBe(
          path.relative(ROOT, bundleRootFor(path.join(ROOT, 'resources'), platform, arch)),
        );
      }
    });
  }

  const hostBundle = bundleRootFor(path.join(ROOT, 'resources'));
  const bundleBuilt = existsSync(path.join(hostBundle, 'manifest.json'));
  if (!bundleBuilt)
    console.warn('skipping the host bundle path check: QEMU bundle not built (npm run bundle:qemu)');
  it.skipIf(!HOST_KEY || !bundleBuilt)(
    'this host: the QEMU bundle it names exists after the bundle script',
    async () => {
      const c = await load();
      const qemu = c[HOST_KEY as keyof typeof NODE_PLATFORM]?.extraResources?.find((r) =>
        r.from.startsWith('resources/qemu/'),
      ) as FileSet;
      const from = path.join(ROOT, expandArch(qemu.from, process.arch));
      expect(from).toBe(hostBundle);
      expect(
        existsSync(path.join(from, 'bin', process.platform === 'win32' ? 'qemu-img.exe' : 'qemu-img')),
      ).toBe(true);
    },
  );

  const layer = path.join(ROOT, 'resources', 'yocto', 'meta-stacklab');
  if (!existsSync(layer))
    console.warn('skipping the Yocto layer path check: resources/yocto/meta-stacklab not written yet');
  it('ships the Yocto layer from resources/yocto/meta-stacklab', async () => {
    const c = await load();
    expect(c.extraResources).toContainEqual({
      from: 'resources/yocto/meta-stacklab',
      to: 'yocto/meta-stacklab',
    });
  });
  it.skipIf(!existsSync(layer))('the Yocto layer folder exists', () => {
    expect(readdirSync(layer).length).toBeGreaterThan(0);
  });

  it('macOS entitlements: QEMU (entitlementsInherit) has hypervisor and allow-jit; the app has allow-jit', async () => {
    const c = await load();
    const inherit = path.join(ROOT, c.mac?.entitlementsInherit as string);
    const main = path.join(ROOT, c.mac?.entitlements as string);
    expect(plistKeys(inherit)).toEqual({
      'com.apple.security.hypervisor': true,
      'com.apple.security.cs.allow-jit': true,
      'com.apple.security.cs.disable-library-validation': true,
    });
    expect(plistKeys(main)['com.apple.security.cs.allow-jit']).toBe(true);
  });

  it('every icon it names exists at the sizes packaging needs', async () => {
    const c = await load();
    const res = path.join(ROOT, c.directories?.buildResources ?? 'build');
    expect(pngSize(path.join(res, 'icon.png'))).toEqual({ w: 1024, h: 1024 });
    const linuxIcons = path.join(ROOT, c.linux?.icon as string);
    const sizes = readdirSync(linuxIcons).map((n) => {
      const m = /^(\d+)x\1\.png$/.exec(n);
      expect(m, `${n} is named NxN.png`).not.toBeNull();
      expect(pngSize(path.join(linuxIcons, n))).toEqual({ w: Number(m?.[1]), h: Number(m?.[1]) });
      return Number(m?.[1]);
    });
    expect(sizes).toEqual(expect.arrayContaining([16, 32, 48, 64, 128, 256, 512]));

    const icns = readFileSync(path.join(ROOT, c.mac?.icon as string));
    expect(icns.toString('latin1', 0, 4)).toBe('icns');
    expect(icns.readUInt32BE(4)).toBe(icns.length);
    expect(icns.includes(Buffer.from('ic10'))).toBe(true); // 1024 px (512@2x)

    for (const ico of [c.win?.icon, c.nsis?.installerIcon]) {
      const b = readFileSync(path.join(ROOT, ico as string));
      expect(b.readUInt16LE(2)).toBe(1);
      const count = b.readUInt16LE(4);
      const widths = Array.from({ length: count }, (_, i) => b[6 + 16 * i] || 256);
      expect(widths).toEqual(expect.arrayContaining([16, 32, 48, 256]));
    }
  });
});
