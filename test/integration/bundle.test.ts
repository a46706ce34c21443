// The Linux QEMU bundle for real: the bundle script builds it into a temp dir, the bundle is
// copied somewhere else, and demo-qemuarm64 boots with the copy's qemu-system-aarch64 in an
// environment with no PATH and no LD_LIBRARY_PATH, to a root shell that says aarch64.
// Then verifyBundle must name exactly the file we damage.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectBundle } from '../../electron/engine/bundle/index.ts';
import {
  bundleDataDir,
  bundleExecutable,
  bundleQemuArgs,
  bundleRootFor,
} from '../../electron/engine/bundle/layout.ts';
import { type Manifest, readManifest } from '../../electron/engine/bundle/manifest.ts';
import {
  type BundleCheck,
  bundleProblemSummary,
  clearVerifyCache,
  verifyBundle,
} from '../../electron/engine/bundle/verify.ts';
import { isElf, readElf } from '../../scripts/bundle/elf.ts';
import { isGlibcCore } from '../../scripts/bundle/linux.ts';
import { demoGuests, NO_GUESTS, ROOT } from '../helpers/cli.ts';

const SCRIPT = path.join(ROOT, 'scripts', 'bundle', 'linux.ts');
const onLinux = process.platform === 'linux';
if (!onLinux) console.warn('skipping Linux bundle tests: not on Linux');

const guests = demoGuests();
if (onLinux && !guests) console.warn(`skipping the bundled-QEMU boot: ${NO_GUESTS}`);

// Made in beforeAll (not at import) so a skipped run leaves nothing behind.
let tmp = '';
let built = '';
// A different path, laid out as in a packaged app (<resources>/qemu/linux-<arch>): nothing may point at `built`.
let resources = '';
let copy = '';
let buildSeconds = 0;
let buildOutput = '';
let qemu: ChildProcess | null = null;

/** Runs the bundle script the way a developer does, through tsx, and returns what it printed. */
function runScript(args: string[]): string {
  return execFileSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
}

/** Only what the loader must not be influenced by is removed: no PATH to a system QEMU, no LD_LIBRARY_PATH. */
function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: '/nonexistent', HOME: tmp, LANG: 'C' };
}

beforeAll(() => {
  if (!onLinux) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bundle-'));
  built = path.join(tmp, 'built', `linux-${process.arch}`);
  resources = path.join(tmp, 'elsewhere', 'resources');
  copy = bundleRootFor(resources, 'linux', process.arch);
  const t0 = performance.now();
  buildOutput = runScript(['--out', built, '--force']);
  buildSeconds = (performance.now() - t0) / 1000;
  cpSync(built, copy, { recursive: true });
}, 240_000);

afterAll(() => {
  // Only the QEMU this file started, by its pid, and only if it is still running.
  if (qemu?.pid && qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!onLinux)('Linux QEMU bundle', () => {
  it('the script builds a bundle with a valid manifest, and a second run leaves it alone', async () => {
    const m = await readManifest(built);
    expect(m.platform).toBe('linux');
    expect(m.arch).toBe(process.arch);
    expect(m.qemuVersion).toMatch(/^7\.2\.\d+$/);
    expect(m.systemTargets).toEqual(['aarch64', 'arm', 'x86_64']);
    expect(m.source.packages['qemu-system-arm']).toMatch(/^1:7\.2/);
    expect(m.minGlibc).toMatch(/^2\.\d+$/);
    const paths = m.files.map((f) => f.path);
    for (const p of [
      'bin/qemu-system-aarch64',
      'bin/qemu-system-arm',
      'bin/qemu-system-x86_64',
      'bin/qemu-img',
      'bin/qemu-aarch64-static',
      'bin/qemu-arm-static',
      'bin/qemu-x86_64-static',
      'share/qemu/bios-256k.bin',
      'share/qemu/efi-virtio.rom',
      'share/qemu/kvmvapic.bin',
      'share/qemu/linuxboot_dma.bin',
      'share/qemu/vgabios-stdvga.bin',
      'share/qemu/keymaps/en-us',
      'lib/libglib-2.0.so.0',
    ]) {
      expect(paths, p).toContain(p);
    }
    expect(paths.filter((p) => p.startsWith('lib/') && isGlibcCore(path.basename(p)))).toEqual([]);

    const t0 = performance.now();
    const again = runScript(['--out', built]);
    const againSeconds = (performance.now() - t0) / 1000;
    expect(again).toMatch(/up to date/);
    expect((await readManifest(built)).createdAt).toBe(m.createdAt);

    const bytes = m.files.reduce((n, f) => n + f.size, 0);
    console.log(
      `bundle: ${m.files.length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB, built in ${buildSeconds.toFixed(1)} s; ` +
        `up-to-date check ${againSeconds.toFixed(1)} s; ${buildOutput.trim().split('\n').pop()}`,
    );
  });

  it('is deterministic: the same Debian packages give the same files as resources/qemu', async (ctx) => {
    const repoBundle = bundleRootFor(path.join(ROOT, 'resources'), 'linux', process.arch);
    if (!existsSync(path.join(repoBundle, 'manifest.json'))) {
      console.warn('skipping determinism check: resources/qemu bundle not built (npm run bundle:qemu)');
      ctx.skip();
    }
    const a = await readManifest(built);
    const b = await readManifest(repoBundle);
    if (JSON.stringify(a.source.packages) !== JSON.stringify(b.source.packages)) {
      console.warn('skipping determinism check: resources/qemu was cut from other package versions');
      ctx.skip();
    }
    const strip = (m: Manifest) => m.files.map((f) => `${f.path} ${f.sha256} ${f.mode.toString(8)}`);
    expect(strip(a)).toEqual(strip(b));
  });

  it('the copy verifies, and every bundled ELF resolves all but glibc inside the bundle', async () => {
    const t0 = performance.now();
    const status = await inspectBundle(resources, 'linux', process.arch);
    const check = status.check as BundleCheck;
    expect(status).toMatchObject({ root: copy, present: true });
    const cold = performance.now() - t0;
    const t1 = performance.now();
    const warm = await verifyBundle(copy);
    const warmMs = performance.now() - t1;
    expect(check).toMatchObject({ ok: true, problems: [] });
    expect(warm.ok).toBe(true);
    expect(check.version).toMatch(/^7\.2\./);
    console.log(`verifyBundle: ${cold.toFixed(0)} ms cold (hashing), ${warmMs.toFixed(0)} ms warm (cached)`);

    const m = await readManifest(copy);
    let dynamic = 0;
    for (const f of m.files) {
      const abs = path.join(copy, f.path);
      if (!isElf(abs)) continue;
      const info = readElf(abs);
      if (info.needed.length === 0) continue; // static user-mode emulators
      dynamic++;
      expect(info.rpath, `${f.path} rpath`).toMatch(/^\$ORIGIN\/(\.\.\/)+lib$/);
      // ldd runs the real loader: what it resolves is what QEMU gets.
      const ldd = execFileSync('ldd', [abs], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      for (const line of ldd.split('\n')) {
        const m2 = /^\s*(\S+) => (.*?) \(0x/.exec(line);
        if (line.includes('not found')) throw new Error(`${f.path}: ${line.trim()}`);
        if (!m2) continue;
        const soname = m2[1] as string;
        const where = m2[2] as string;
        if (isGlibcCore(soname)) continue;
        expect(path.resolve(where).startsWith(`${copy}/`), `${f.path} loads ${soname} from ${where}`).toBe(
          true,
        );
      }
    }
    expect(dynamic).toBeGreaterThan(40);
  });

  it.skipIf(!guests)(
    'demo-qemuarm64 boots with the copied qemu-system-aarch64, no PATH, no LD_LIBRARY_PATH',
    async () => {
      const g = guests?.find((x) => x.name === 'demo-qemuarm64');
      expect(g, 'demo-qemuarm64 missing from guests.json').toBeDefined();
      const deploy = (g as { deployDir: string }).deployDir;
      const conf = parseQemuboot(deploy);
      const rootfs = rootfsOf(deploy, conf);

      const overlay = path.join(tmp, 'overlay.qcow2');
      execFileSync(
        bundleExecutable(copy, 'qemu-img'),
        ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', rootfs, overlay],
        { env: cleanEnv() },
      );
      const argv = qemuArgv(conf, deploy, overlay);
      expect(argv).toContain(bundleDataDir(copy));

      const bin = bundleExecutable(copy, conf.qb_system_name as string);
      const t0 = performance.now();
      const child = spawn(bin, argv, { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
      qemu = child;
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString('latin1');
      });
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString();
      });
      const waitFor = (re: RegExp, from: number, ms: number) =>
        new Promise<number>((resolve, reject) => {
          const started = Date.now();
          const tick = setInterval(() => {
            const m = re.exec(out.slice(from));
            if (m) {
              clearInterval(tick);
              resolve(from + m.index + m[0].length);
            } else if (child.exitCode !== null || Date.now() - started > ms) {
              clearInterval(tick);
              reject(
                new Error(
                  `no ${re} (exit ${child.exitCode}); stderr: ${err.slice(-400)}; console: ${out.slice(-600)}`,
                ),
              );
            }
          }, 100);
        });

      let at = await waitFor(/login: $/m, 0, 180_000);
      const loginSeconds = (performance.now() - t0) / 1000;
      child.stdin.write('root\n');
      // debug-tweaks images have no root password; answer an empty one if asked.
      // (busybox ash follows its prompt with a cursor-position query, so no end anchor.)
      at = await waitFor(/Password: |[#$] /, at, 30_000);
      if (out.slice(0, at).endsWith('Password: ')) {
        child.stdin.write('\n');
        at = await waitFor(/[#$] /, at, 30_000);
      }
      child.stdin.write('echo ARCH=$(uname -m)\n');
      await waitFor(/ARCH=aarch64/, at, 30_000);
      console.log(`bundled qemu-system-aarch64: login prompt after ${loginSeconds.toFixed(1)} s`);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    },
  );

  it('x86_64 from the copy: the TCG module and SeaBIOS/option ROMs load from the bundle', () => {
    // Debian's x86 TCG is a loadable module and the PC firmware lives in three system dirs;
    // a paused q35 machine has loaded both (or QEMU exits: "could not load PC BIOS").
    const kernel = guests?.find((g) => g.name === 'demo-qemux86-64');
    const args = [
      ...bundleQemuArgs(copy),
      ...['-machine', 'q35', '-cpu', 'IvyBridge', '-accel', 'tcg', '-display', 'none', '-S'],
      ...['-monitor', 'stdio', '-serial', 'none', '-nic', 'user,model=virtio-net-pci'],
      ...(kernel ? ['-kernel', path.join(kernel.deployDir, 'bzImage-qemux86-64.bin')] : []),
    ];
    const out = execFileSync(bundleExecutable(copy, 'qemu-system-x86_64'), args, {
      env: cleanEnv(),
      input: 'info roms\nquit\n',
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out).toMatch(/name="bios-256k\.bin"/);
    expect(out).toMatch(/name="kvmvapic\.bin"/);
    if (kernel) expect(out).toMatch(/name="linuxboot_dma\.bin"/);
  });

  const appBuilt = existsSync(path.join(ROOT, 'out', 'main', 'main.mjs'));
  if (onLinux && !appBuilt) console.warn('skipping the electron-builder run: app not built (npm run build)');
  it.skipIf(!appBuilt)(
    'electron-builder --linux dir puts the bundle where the app looks, and it still verifies there',
    async () => {
      // The real Electron binary cannot be downloaded here, so unless one is installed a stand-in
      // `electron` file plays it (mock of the download only). Fuses are flipped inside that
      // binary, so they are left out with a stand-in; everything else is electron-builder.yml.
      const realDist = path.join(ROOT, 'node_modules', 'electron', 'dist');
      const haveElectron = existsSync(path.join(realDist, 'electron'));
      const dist = haveElectron ? realDist : path.join(tmp, 'electron-stand-in');
      if (!haveElectron) {
        mkdirSync(path.join(dist, 'resources'), { recursive: true });
        writeFileSync(path.join(dist, 'electron'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      }
      const require = createRequire(import.meta.url);
      const { getConfig } = createRequire(require.resolve('electron-builder'))(
        'app-builder-lib/out/util/config/config.js',
      ) as { getConfig(dir: string, file: string | null, opts: unknown): Promise<Record<string, unknown>> };
      const config = await getConfig(ROOT, null, null);
      if (!haveElectron) delete config.electronFuses;
      const outDir = path.join(tmp, 'dist');
      const configFile = path.join(tmp, 'electron-builder.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          ...config,
          electronDist: dist,
          electronVersion: JSON.parse(readFileSync(require.resolve('electron/package.json'), 'utf8')).version,
          directories: { ...(config.directories as object), output: outDir },
        }),
      );
      const t0 = performance.now();
      const builder = spawnSync(
        process.execPath,
        [
          require.resolve('electron-builder/cli.js'),
          '--linux',
          'dir',
          `--${process.arch}`,
          '--config',
          configFile,
          '--publish',
          'never',
        ],
        { cwd: ROOT, encoding: 'utf8', timeout: 240_000 },
      );
      const said = `${builder.stdout}${builder.stderr}`.trim().split('\n').slice(-8).join('\n');
      expect(builder.status, `electron-builder failed:\n${said}`).toBe(0);
      const seconds = (performance.now() - t0) / 1000;
      const unpacked = readdirSync(outDir).find((n) => n.startsWith('linux') && n.endsWith('unpacked'));
      const packagedResources = path.join(outDir, unpacked as string, 'resources');
      const status = await inspectBundle(packagedResources, 'linux', process.arch);
      expect(status.present).toBe(true);
      expect(status.check).toMatchObject({ ok: true, problems: [] });
      expect(existsSync(path.join(packagedResources, 'yocto', 'meta-stacklab'))).toBe(true);
      expect(existsSync(path.join(packagedResources, 'app.asar'))).toBe(true);
      // node-pty's addon must be a real file beside the archive, not inside it.
      const unpackedNodes = execFileSync(
        'find',
        [path.join(packagedResources, 'app.asar.unpacked'), '-name', '*.node'],
        {
          encoding: 'utf8',
        },
      );
      expect(unpackedNodes).toMatch(/node-pty\/.*\.node/);
      console.log(
        `electron-builder --linux dir: ${seconds.toFixed(1)} s (${haveElectron ? 'real' : 'stand-in'} Electron)`,
      );
    },
  );

  it('verifyBundle names exactly the damaged file, then a missing one and an added executable', async () => {
    const victim = 'bin/qemu-img';
    const abs = path.join(copy, victim);
    const size = statSync(abs).size;
    const fd = openSync(abs, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, Math.floor(size / 2));
    one[0] = (one[0] as number) ^ 0xff;
    writeSync(fd, one, 0, 1, Math.floor(size / 2));
    closeSync(fd);
    expect(statSync(abs).size).toBe(size);

    // No clearVerifyCache(): the cache must notice the change by itself (mtime moved).
    const damaged = await verifyBundle(copy);
    expect(damaged.ok).toBe(false);
    expect(damaged.problems).toEqual([
      `${victim}: sha256 differs from the manifest (file changed or damaged)`,
    ]);

    rmSync(path.join(copy, 'share', 'qemu', 'efi-virtio.rom'));
    writeFileSync(path.join(copy, 'bin', 'qemu-evil'), '#!/bin/sh\n');
    chmodSync(path.join(copy, 'bin', 'qemu-evil'), 0o755);
    clearVerifyCache();
    const worse = await verifyBundle(copy);
    expect(worse.problems.sort()).toEqual(
      [
        `${victim}: sha256 differs from the manifest (file changed or damaged)`,
        'share/qemu/efi-virtio.rom: missing',
        'bin/qemu-evil: not in the manifest (extra file)',
      ].sort(),
    );
    expect(bundleProblemSummary(worse)).toMatch(
      /^bundled QEMU is damaged \(3 problems\): .* — reinstall Stacklab$/,
    );
    expect(await inspectBundle(resources, 'win32', 'x64')).toEqual({
      root: bundleRootFor(resources, 'win32', 'x64'),
      present: false,
      check: null,
    });

    const other = await verifyBundle(copy, { platform: 'darwin', arch: 'arm64' });
    expect(other.problems[0]).toBe(
      `manifest.json: bundle is for linux-${process.arch}, this host is darwin-arm64`,
    );

    // A manifest that tries to reach outside the bundle is refused, not followed.
    const manifestFile = path.join(copy, 'manifest.json');
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    m.files[0].path = '../../etc/passwd';
    writeFileSync(manifestFile, JSON.stringify(m));
    const tampered = await verifyBundle(copy);
    expect(tampered.problems).toEqual([
      'manifest.json: files.0.path: file paths must be relative, use / and stay inside the bundle',
    ]);
    writeFileSync(manifestFile, '{"schema": 1,');
    expect((await verifyBundle(copy)).problems).toEqual(['manifest.json: not valid JSON (file damaged)']);
  });
});

type Qemuboot = Record<string, string>;

/** The `[config_bsp]` keys of the deploy dir's *.qemuboot.conf (one per deploy dir). */
function parseQemuboot(deploy: string): Qemuboot {
  const name = readdirSync(deploy).find((n) => n.endsWith('.qemuboot.conf'));
  if (!name) throw new Error(`${deploy}: no *.qemuboot.conf`);
  const conf: Qemuboot = {};
  for (const line of readFileSync(path.join(deploy, name), 'utf8').split('\n')) {
    const m = /^\s*([a-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) conf[m[1] as string] = m[2] as string;
  }
  return conf;
}

function rootfsOf(deploy: string, conf: Qemuboot): string {
  const byLink = path.join(deploy, `${conf.image_link_name}.${conf.qb_default_fstype}`);
  if (conf.image_link_name && existsSync(byLink)) return byLink;
  const f = readdirSync(deploy).find((n) => /\.rootfs\.(ext4|wic)$/.test(n));
  if (!f) throw new Error(`${deploy}: no rootfs`);
  return path.join(deploy, f);
}

/** What runqemu would run (serial on stdio, slirp network, TCG), with the bundle's -L in front. */
function qemuArgv(conf: Qemuboot, deploy: string, overlay: string): string[] {
  const words = (s: string | undefined) => (s ? s.split(/\s+/).filter(Boolean) : []);
  const sub = (s: string) =>
    s
      .replaceAll('@DEPLOY_DIR_IMAGE@', deploy)
      .replaceAll('@ROOTFS@', overlay)
      .replaceAll('@MAC@', '52:54:00:12:34:02');
  const console0 = (conf.serial_consoles ?? '115200;ttyAMA0').split(/\s+/)[0]?.split(';')[1] ?? 'ttyAMA0';
  const rootfsOpt = conf.qb_rootfs_opt ?? `-drive file=@ROOTFS@,if=virtio,format=raw`;
  const cmdline = [
    `root=${conf.qb_kernel_root ?? '/dev/vda'}`,
    'rw',
    `console=${console0}`,
    ...words(conf.qb_kernel_cmdline_append),
  ].join(' ');
  return [
    ...bundleQemuArgs(copy),
    ...words(conf.qb_machine),
    ...words(conf.qb_cpu),
    ...words(conf.qb_smp),
    ...words(conf.qb_mem),
    '-accel',
    'tcg',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-kernel',
    path.join(deploy, conf.qb_default_kernel as string),
    ...words(sub(rootfsOpt)).map((w) => w.replace('format=raw', 'format=qcow2')),
    '-netdev',
    'user,id=net0',
    ...words(sub(conf.qb_network_device ?? '')),
    ...words(conf.qb_serial_opt),
    ...words(conf.qb_rng),
    ...words(sub(conf.qb_opt_append ?? '')),
    '-append',
    cmdline,
  ];
}
