// Workspace generation for Yocto builds: the conf text bitbake will read, the workspace on
// disk, layer cloning with real git, the environment and argv bitbake is started with, and
// finding what a build deployed. bitbake itself runs in test/integration/bitbake.test.ts.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bitbakeEnv, PASSTHROUGH_OE } from '../../electron/engine/build/buildenv.ts';
import { findBuiltImages } from '../../electron/engine/build/built-images.ts';
import { parseGitProgress } from '../../electron/engine/build/clone.ts';
import { buildThreads, localConf } from '../../electron/engine/build/conf.ts';
import { containerArgv } from '../../electron/engine/build/container.ts';
import { RELEASE_TABLE } from '../../electron/engine/build/releases.ts';
import { shellQuote, sshArgv } from '../../electron/engine/build/remote.ts';
import {
  checkDiskSpace,
  cloneLayers,
  confFiles,
  createWorkspace,
  loadWorkspace,
  planWorkspace,
  RECORD_FILE,
  sharedCacheDirs,
  type WorkspaceChoice,
} from '../../electron/engine/build/workspace.ts';
import { cacheHome } from '../../electron/engine/paths.ts';

const GB = 1024 ** 3;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-ws-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const host: WorkspaceChoice = { release: 'scarthgap', machine: 'qemuarm64', image: 'stacklab-host-image' };
const guest: WorkspaceChoice = { release: 'scarthgap', machine: 'qemux86-64', image: 'stacklab-guest-image' };
const rpi: WorkspaceChoice = {
  release: 'scarthgap',
  machine: 'raspberrypi4-64',
  image: 'stacklab-rpi-image',
};
const resources = { cores: 2, memBytes: 23 * GB };

function conf(choice: WorkspaceChoice, dir = '/ws') {
  return confFiles(planWorkspace(choice), dir, { resources });
}

/** The value of `NAME = "value"` in conf text, or undefined. */
function assigned(text: string, name: string): string | undefined {
  return new RegExp(`^${name} = "([^"]*)"$`, 'm').exec(text)?.[1];
}

describe('bitbake configuration text', () => {
  it('sets MACHINE and shares DL_DIR and SSTATE_DIR under the cache home across workspaces', () => {
    const a = conf(host)['conf/local.conf']!;
    const b = conf(rpi)['conf/local.conf']!;
    expect(assigned(a, 'MACHINE')).toBe('qemuarm64');
    expect(assigned(b, 'MACHINE')).toBe('raspberrypi4-64');
    const { downloadsDir, sstateDir } = sharedCacheDirs();
    expect(downloadsDir).toBe(path.join(cacheHome(), 'yocto', 'downloads'));
    expect(sstateDir).toBe(path.join(cacheHome(), 'yocto', 'sstate-cache'));
    for (const text of [a, b]) {
      expect(assigned(text, 'DL_DIR')).toBe(downloadsDir);
      expect(assigned(text, 'SSTATE_DIR')).toBe(sstateDir);
      expect(assigned(text, 'CONF_VERSION')).toBe('2');
      expect(text).toContain(
        'EXTRA_IMAGE_FEATURES ?= "allow-empty-password empty-root-password allow-root-login"',
      );
      expect(text).not.toContain('debug-tweaks"');
    }
  });

  it('takes threads from cores, capped at one per 2 GB of RAM', () => {
    expect(buildThreads({ cores: 2, memBytes: 23 * GB })).toEqual({ bbThreads: 2, makeJobs: 2 });
    expect(buildThreads({ cores: 16, memBytes: 16 * GB })).toEqual({ bbThreads: 8, makeJobs: 8 });
    expect(buildThreads({ cores: 8, memBytes: 1 * GB })).toEqual({ bbThreads: 1, makeJobs: 1 });
    expect(buildThreads({ cores: 4, memBytes: 64 * GB })).toEqual({ bbThreads: 4, makeJobs: 4 });
    const text = localConf({
      image: 'stacklab-guest-image',
      machine: 'qemux86-64',
      downloadsDir: '/d',
      sstateDir: '/s',
      resources: { cores: 12, memBytes: 14 * GB },
    });
    expect(assigned(text, 'BB_NUMBER_THREADS')).toBe('7');
    expect(assigned(text, 'PARALLEL_MAKE')).toBe('-j 7');
  });

  it('enables the x86 multiconfig for the host image only, and writes its conf', () => {
    const files = conf(host);
    expect(assigned(files['conf/local.conf']!, 'BBMULTICONFIG')).toBe('x86');
    expect(assigned(files['conf/local.conf']!, 'QEMU_TARGETS:pn-qemu')).toBe('x86_64');
    const mc = files['conf/multiconfig/x86.conf']!;
    expect(assigned(mc, 'MACHINE')).toBe('qemux86-64');
    expect(mc).toContain(`TMPDIR .= "-\${BB_CURRENT_MC}"`);

    const g = conf(guest);
    expect(assigned(g['conf/local.conf']!, 'BBMULTICONFIG')).toBeUndefined();
    expect(Object.keys(g)).toEqual(['conf/local.conf', 'conf/bblayers.conf']);
  });

  it('adds meta-raspberrypi and ENABLE_UART for a Pi, and nothing Pi-specific otherwise', () => {
    const r = conf(rpi, '/w');
    expect(r['conf/bblayers.conf']).toContain('  /w/layers/meta-raspberrypi \\');
    expect(assigned(r['conf/local.conf']!, 'ENABLE_UART')).toBe('1');
    expect(planWorkspace(rpi).repos.map((x) => x.name)).toEqual(['poky', 'meta-raspberrypi']);
    // core-image-minimal on a Pi gets the BSP too, from the machine alone.
    expect(planWorkspace({ ...rpi, image: 'core-image-minimal' }).layers).toContain(
      'layers/meta-raspberrypi',
    );

    const h = conf(host, '/w');
    expect(h['conf/bblayers.conf']).not.toContain('meta-raspberrypi');
    expect(assigned(h['conf/local.conf']!, 'ENABLE_UART')).toBeUndefined();
  });

  it('lists the core layers, then extras, then meta-stacklab, with absolute paths', () => {
    const text = conf({ ...host, extraRepos: ['meta-openembedded'] }, '/w')['conf/bblayers.conf']!;
    const layers = [...text.matchAll(/^ {2}(\/\S+) \\$/gm)].map((m) => m[1]);
    expect(layers).toEqual([
      '/w/layers/poky/meta',
      '/w/layers/poky/meta-poky',
      '/w/layers/poky/meta-yocto-bsp',
      '/w/layers/meta-openembedded/meta-oe',
      '/w/layers/meta-stacklab',
    ]);
    expect(assigned(text, 'POKY_BBLAYERS_CONF_VERSION')).toBe('2');
  });

  it('uses the split bitbake/openembedded-core/meta-yocto repositories from whinlatter', () => {
    const plan = planWorkspace({ ...host, release: 'whinlatter' });
    expect(plan.repos.map((r) => [r.name, r.branch])).toEqual([
      ['openembedded-core', 'whinlatter'],
      ['bitbake', '2.16'],
      ['meta-yocto', 'whinlatter'],
    ]);
    expect(plan.oeRoot).toBe('layers/openembedded-core');
    expect(plan.bitbakeDir).toBe('layers/bitbake');
    expect(plan.layers.slice(0, 3)).toEqual([
      'layers/openembedded-core/meta',
      'layers/meta-yocto/meta-poky',
      'layers/meta-yocto/meta-yocto-bsp',
    ]);
    expect(planWorkspace({ ...host, release: 'walnascar' }).repos.map((r) => r.name)).toEqual(['poky']);
  });

  it('pins full commit ids, and takes local sources and revisions when given', () => {
    for (const info of Object.values(RELEASE_TABLE)) {
      for (const repo of info.repos) expect(repo.rev).toMatch(/^[0-9a-f]{40}$/);
    }
    const plan = planWorkspace(host, { sources: { poky: '/mirror/poky' }, revisions: { poky: 'scarthgap' } });
    expect(plan.repos[0]).toMatchObject({
      name: 'poky',
      source: '/mirror/poky',
      rev: 'scarthgap',
      dir: 'layers/poky',
    });
  });

  it('refuses choices that do not fit, in one line', () => {
    expect(() => planWorkspace({ ...host, machine: 'qemux86-64' })).toThrow(
      'stacklab-host-image is not built for qemux86-64 (choose qemuarm64)',
    );
    expect(() => planWorkspace({ ...host, image: 'my-image' })).toThrow(
      /^unknown image 'my-image' \(choose /,
    );
    expect(() => planWorkspace({ ...host, release: 'kirkstone' as never })).toThrow(
      "unknown Yocto release 'kirkstone' (choose scarthgap, walnascar, whinlatter)",
    );
    expect(() =>
      localConf({
        image: 'x',
        machine: 'qemuarm64',
        downloadsDir: '/a"b',
        sstateDir: '/s',
        resources,
      }),
    ).toThrow(/cannot put/);
  });

  it('can switch off the connectivity probe and the network', () => {
    const text = confFiles(planWorkspace(guest), '/w', {
      resources,
      connectivityCheck: false,
      offline: true,
    })['conf/local.conf']!;
    expect(assigned(text, 'CONNECTIVITY_CHECK_URIS')).toBe('');
    expect(assigned(text, 'BB_NO_NETWORK')).toBe('1');
    expect(assigned(conf(guest)['conf/local.conf']!, 'CONNECTIVITY_CHECK_URIS')).toBeUndefined();
  });
});

describe('workspace on disk', () => {
  it('creates the record, conf and meta-stacklab, keeps user conf, and loads back', () => {
    const dir = path.join(tmp, 'host');
    const caches = { downloadsDir: path.join(tmp, 'dl'), sstateDir: path.join(tmp, 'sstate') };
    const ws = createWorkspace(host, { dir, ...caches, resources });
    expect(ws.buildDir).toBe(path.join(dir, 'build'));
    expect(ws.oeRoot).toBe(path.join(dir, 'layers/poky'));
    expect(ws.bitbakeDir).toBe(path.join(dir, 'layers/poky/bitbake'));
    for (const f of ['local.conf', 'bblayers.conf', 'multiconfig/x86.conf', 'stacklab-user.conf']) {
      expect(existsSync(path.join(dir, 'build/conf', f))).toBe(true);
    }
    expect(readFileSync(path.join(dir, 'layers/meta-stacklab/conf/layer.conf'), 'utf8')).toContain(
      'LAYERSERIES_COMPAT_stacklab = "scarthgap styhead walnascar whinlatter"',
    );
    expect(existsSync(caches.downloadsDir) && existsSync(caches.sstateDir)).toBe(true);

    writeFileSync(path.join(dir, 'build/conf/stacklab-user.conf'), 'BB_NUMBER_THREADS = "1"\n');
    createWorkspace(host, { dir, ...caches, resources });
    expect(readFileSync(path.join(dir, 'build/conf/stacklab-user.conf'), 'utf8')).toBe(
      'BB_NUMBER_THREADS = "1"\n',
    );

    const loaded = loadWorkspace(dir);
    expect(loaded.record.choice).toEqual({ ...host, extraRepos: [] });
    expect(loaded.record.multiconfig).toEqual({ name: 'x86', machine: 'qemux86-64' });

    expect(() => createWorkspace({ ...host, release: 'walnascar' }, { dir, ...caches })).toThrow(
      `${dir} is a scarthgap workspace, not walnascar: pick another directory`,
    );
    writeFileSync(path.join(dir, RECORD_FILE), '{"version": 1}');
    expect(() => loadWorkspace(dir)).toThrow(/is not a Stacklab workspace record: choice/);
    expect(() => loadWorkspace(tmp)).toThrow(`${tmp} is not a Stacklab workspace (no ${RECORD_FILE})`);
  });

  it('checks free disk space with statfs and says how much is missing', () => {
    const ok = checkDiskSpace(path.join(tmp, 'not', 'yet', 'there'), 1);
    expect(ok.ok).toBe(true);
    expect(ok.path).toBe(tmp);
    expect(ok.freeBytes).toBeGreaterThan(0);
    const low = checkDiskSpace(tmp, ok.freeBytes * 10);
    expect(low.ok).toBe(false);
    expect(low.warning).toMatch(
      new RegExp(`^only \\d+ GB free on ${tmp}; a Yocto build needs about \\d+ GB`),
    );
  });
});

describe('cloning layers (real git, local repositories)', () => {
  function git(cwd: string, ...args: string[]) {
    return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
      cwd,
      encoding: 'utf8',
    }).trim();
  }

  it('clones the pinned branch, checks out the pinned commit and reports progress', async () => {
    const src = path.join(tmp, 'src-poky');
    mkdirSync(src);
    git(src, 'init', '-q', '-b', 'scarthgap');
    writeFileSync(path.join(src, 'README'), 'one\n');
    git(src, 'add', 'README');
    git(src, 'commit', '-q', '-m', 'one');
    const first = git(src, 'rev-parse', 'HEAD');
    writeFileSync(path.join(src, 'README'), 'two\n');
    git(src, 'commit', '-q', '-am', 'two');

    const dir = path.join(tmp, 'clone-ws');
    const ws = createWorkspace(guest, {
      dir,
      sources: { poky: src },
      revisions: { poky: first },
      downloadsDir: path.join(tmp, 'dl'),
      sstateDir: path.join(tmp, 'sstate'),
    });
    const events: string[] = [];
    await cloneLayers(ws, { onProgress: (p) => events.push(`${p.repo}:${p.phase}`) });
    expect(git(path.join(dir, 'layers/poky'), 'rev-parse', 'HEAD')).toBe(first);
    expect(readFileSync(path.join(dir, 'layers/poky/README'), 'utf8')).toBe('one\n');
    expect(events[0]).toBe('poky:cloning');
    expect(events.at(-1)).toBe('poky:ready');

    // Again: already there, nothing to do.
    const again: string[] = [];
    await cloneLayers(ws, { onProgress: (p) => again.push(p.phase) });
    expect(again).toEqual(['ready']);

    // Owned by someone else (root engine, workspace handed to the build user): still fine.
    if (process.getuid?.() === 0) {
      execFileSync('chown', ['-R', 'nobody', path.join(dir, 'layers/poky')]);
      const owned: string[] = [];
      await cloneLayers(ws, { onProgress: (p) => owned.push(p.phase) });
      expect(owned).toEqual(['ready']);
    }

    const bad = createWorkspace(guest, {
      dir: path.join(tmp, 'bad-ws'),
      sources: { poky: path.join(tmp, 'nowhere') },
      downloadsDir: path.join(tmp, 'dl'),
      sstateDir: path.join(tmp, 'sstate'),
    });
    await expect(cloneLayers(bad)).rejects.toThrow(/^cloning poky from .*nowhere failed: fatal: /);
  });

  it("reads git's percentage from its \\r-redrawn progress", () => {
    expect(parseGitProgress('Receiving objects:  45% (123/456)\rReceiving objects:  47% (130/456)')).toEqual({
      stage: 'Receiving objects',
      percent: 47,
    });
    expect(parseGitProgress('remote: Counting objects: 100% (9/9), done.')).toEqual({
      stage: 'Counting objects',
      percent: 100,
    });
    expect(parseGitProgress('Cloning into x...')).toBeUndefined();
  });
});

describe('what bitbake is started with', () => {
  it('computes the oe-init-build-env environment without a shell', () => {
    const env = bitbakeEnv({
      oeRoot: '/w/layers/poky',
      bitbakeDir: '/w/layers/poky/bitbake',
      buildDir: '/w/build',
      base: {
        PATH: '/usr/bin:/bin',
        BB_ENV_PASSTHROUGH_ADDITIONS: 'MY_VAR MACHINE',
        BBSERVER: 'x',
        LANG: 'C',
      },
    });
    expect(env.PATH).toBe('/w/layers/poky/scripts:/w/layers/poky/bitbake/bin:/usr/bin:/bin');
    expect(env.BUILDDIR).toBe('/w/build');
    expect(env.BBPATH).toBe('/w/build');
    expect(env.PYTHONPATH).toBe('/w/layers/poky/bitbake/lib');
    expect(env.BBSERVER).toBeUndefined();
    expect(env.LANG).toBe('en_US.UTF-8');
    const pass = env.BB_ENV_PASSTHROUGH_ADDITIONS!.split(' ');
    expect(pass).toEqual([...new Set(['MY_VAR', ...PASSTHROUGH_OE])].sort());

    // Sourcing twice does not stack the paths: neither does computing from its own output.
    const again = bitbakeEnv({
      oeRoot: '/w/layers/poky',
      bitbakeDir: '/w/layers/poky/bitbake',
      buildDir: '/w/build',
      base: env,
    });
    expect(again.PATH).toBe(env.PATH);
  });

  it('builds a container argv that mounts the workspace at the same path', () => {
    const ws = loadWorkspace(
      createWorkspace(guest, {
        dir: path.join(tmp, 'c-ws'),
        downloadsDir: '/cache/dl',
        sstateDir: '/cache/ss',
      }).dir,
    );
    const argv = containerArgv(ws, {
      args: ['stacklab-guest-image'],
      name: 'n1',
      image: 'crops/poky:ubuntu-22.04',
    });
    expect(argv.slice(0, 6)).toEqual(['run', '--rm', '-i', '-t', '--name', 'n1']);
    expect(argv).toContain(`${ws.dir}:${ws.dir}`);
    expect(argv).toContain('/cache/dl:/cache/dl');
    const image = argv.indexOf('crops/poky:ubuntu-22.04');
    expect(argv[image + 1]).toBe(`--workdir=${ws.buildDir}`);
    expect(argv.slice(-2)).toEqual(['bitbake', 'stacklab-guest-image']);
    expect(argv).toContain(`BBPATH=${ws.buildDir}`);
  });

  it('quotes every word of the remote command for the remote shell', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const record = planWorkspace(guest);
    const argv = sshArgv({ host: 'builder.lan', user: 'me', port: 2222, remoteDir: '/srv/ws', record }, [
      '-c',
      'fetch',
      "evil'; rm -rf ~",
    ]);
    expect(argv.slice(0, 6)).toEqual(['-tt', '-o', 'BatchMode=yes', '-p', '2222', '--']);
    expect(argv[6]).toBe('me@builder.lan');
    const command = argv[7]!;
    expect(command.startsWith("'cd' '/srv/ws/build' && 'exec' 'env' ")).toBe(true);
    expect(command.endsWith(`'bitbake' '-c' 'fetch' 'evil'\\''; rm -rf ~'`)).toBe(true);
    expect(() => sshArgv({ host: '-oProxyCommand=x', remoteDir: '/w', record }, [])).toThrow(
      /is not a host name/,
    );
  });
});

describe('finding built images', () => {
  it('lists link-named images of every deploy dir, multiconfig ones included, newest first', () => {
    const dir = path.join(tmp, 'built');
    const ws = loadWorkspace(
      createWorkspace(host, { dir, downloadsDir: path.join(tmp, 'dl'), sstateDir: path.join(tmp, 'sstate') })
        .dir,
    );
    // A deploy dir as bitbake leaves it: timestamped files, link names pointing at them.
    const deploy = (tmpName: string, machine: string, files: Record<string, string>) => {
      const d = path.join(ws.buildDir, tmpName, 'deploy', 'images', machine);
      mkdirSync(d, { recursive: true });
      for (const [name, content] of Object.entries(files)) writeFileSync(path.join(d, name), content);
      return d;
    };
    const arm = deploy('tmp', 'qemuarm64', {
      'stacklab-host-image-qemuarm64.rootfs-20260101000000.ext4': 'x'.repeat(4096),
      'stacklab-host-image-qemuarm64.rootfs-20260101000000.qemuboot.conf':
        '[config_bsp]\nqb_default_kernel = Image\nqb_mem = -m 1024\n',
      'Image-qemuarm64.bin': 'k',
      'stacklab-host-image-qemuarm64.rootfs-20260101000000.tar.bz2': 't',
    });
    symlinkSync('Image-qemuarm64.bin', path.join(arm, 'Image'));
    for (const t of ['ext4', 'qemuboot.conf', 'tar.bz2']) {
      symlinkSync(
        `stacklab-host-image-qemuarm64.rootfs-20260101000000.${t}`,
        path.join(arm, `stacklab-host-image-qemuarm64.rootfs.${t}`),
      );
    }
    const x86 = deploy('tmp-x86', 'qemux86-64', {
      'stacklab-guest-image-qemux86-64.rootfs-1.ext4.qcow2': 'q',
      'stacklab-guest-image-qemux86-64.rootfs-1.ext4': 'e',
      'stacklab-guest-image-qemux86-64.rootfs-1.qemuboot.conf': '[config_bsp]\nqb_default_kernel = bzImage\n',
    });
    for (const t of ['ext4.qcow2', 'ext4', 'qemuboot.conf']) {
      symlinkSync(
        `stacklab-guest-image-qemux86-64.rootfs-1.${t}`,
        path.join(x86, `stacklab-guest-image-qemux86-64.rootfs.${t}`),
      );
    }
    // A cleaned build leaves dangling links: not an image any more.
    symlinkSync('gone.ext4', path.join(x86, 'core-image-minimal-qemux86-64.rootfs.ext4'));

    const found = findBuiltImages(ws);
    expect(found.map((f) => [f.image, f.machine, f.kind, f.multiconfig])).toEqual(
      expect.arrayContaining([
        ['stacklab-host-image', 'qemuarm64', 'qemu', undefined],
        ['stacklab-guest-image', 'qemux86-64', 'qemu', 'x86'],
      ]),
    );
    expect(found).toHaveLength(2);
    const hostImage = found.find((f) => f.image === 'stacklab-host-image')!;
    expect(hostImage.files.rootfs).toBe(path.join(arm, 'stacklab-host-image-qemuarm64.rootfs.ext4'));
    expect(hostImage.files.kernel).toBe(path.join(arm, 'Image'));
    expect(hostImage.sizeBytes).toBe(4096);
    const guestImage = found.find((f) => f.image === 'stacklab-guest-image')!;
    expect(guestImage.files.qcow2).toBe(path.join(x86, 'stacklab-guest-image-qemux86-64.rootfs.ext4.qcow2'));
    expect(guestImage.files.kernel).toBeUndefined(); // no bzImage deployed in this fake

    const pi = deploy('tmp', 'raspberrypi4-64', {
      'stacklab-rpi-image-raspberrypi4-64.rootfs-2.wic.bz2': 'w'.repeat(100),
      'stacklab-rpi-image-raspberrypi4-64.rootfs-2.wic.bmap': '<bmap/>',
      'Image-raspberrypi4-64.bin': 'k',
      'bcm2711-rpi-4-b.dtb': 'd',
    });
    symlinkSync('Image-raspberrypi4-64.bin', path.join(pi, 'Image'));
    for (const t of ['wic.bz2', 'wic.bmap']) {
      symlinkSync(
        `stacklab-rpi-image-raspberrypi4-64.rootfs-2.${t}`,
        path.join(pi, `stacklab-rpi-image-raspberrypi4-64.rootfs.${t}`),
      );
    }
    const card = findBuiltImages(ws).find((f) => f.machine === 'raspberrypi4-64')!;
    expect(card.kind).toBe('sdcard');
    expect(card.files.wic).toBe(path.join(pi, 'stacklab-rpi-image-raspberrypi4-64.rootfs.wic.bz2'));
    expect(card.files.bmap).toBe(path.join(pi, 'stacklab-rpi-image-raspberrypi4-64.rootfs.wic.bmap'));
    expect(card.files.dtbs).toEqual([path.join(pi, 'bcm2711-rpi-4-b.dtb')]);
    expect(card.sizeBytes).toBe(100);
  });
});
