// The build requests through the engine's real dispatcher, without bitbake: choosing a
// target, every refusal as one line (root without a build user, a workspace folder that is
// a file, a folder full of other things), a build whose layer clone fails (real git) ending
// as a failed build with events, a record and a log terminal, and a deployed image going
// into the library as a bitbake build leaves it, then booting from there in real QEMU.
// bitbake itself runs in bitbake.test.ts (needs POKY_DIR).
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildInfo, BuildTargets } from '../../electron/common/contract.ts';
import { ROOT_REFUSAL } from '../../electron/engine/build/build-user.ts';
import { importBuiltImage } from '../../electron/engine/build/import-built.ts';
import { createWorkspace } from '../../electron/engine/build/workspace.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import { buildUser, isRoot, userExists } from '../helpers/bitbake-env.ts';
import { demoGuests, NO_GUESTS, runCli } from '../helpers/cli.ts';

const canBuild = !isRoot || userExists(buildUser);

const base = mkdtempSync(path.join(os.tmpdir(), 'stacklab-build-engine-'));
const engines: Engine[] = [];

async function engineWith(extra: NodeJS.ProcessEnv): Promise<Engine> {
  const home = mkdtempSync(path.join(base, 'home-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STACKLAB_HOME: home,
    STACKLAB_CACHE: path.join(home, 'cache'),
  };
  for (const k of ['STACKLAB_BUILD_USER', 'POKY_DIR', 'META_OE_DIR', 'META_RPI_DIR']) delete env[k];
  const e = await createEngine({ env: { ...env, ...extra } });
  engines.push(e);
  return e;
}

function call<T>(e: Engine, method: string, params: unknown): Promise<T> {
  return e.dispatcher.dispatch(method, params) as Promise<T>;
}

afterAll(async () => {
  for (const e of engines) await e.dispose();
  rmSync(base, { recursive: true, force: true });
});

describe('build requests through the engine', () => {
  it('lists what can be built: releases, and images with their machines and one-line summaries', async () => {
    const e = await engineWith({ STACKLAB_BUILD_USER: buildUser });
    const targets = await call<BuildTargets>(e, 'build.targets', {});
    expect(targets.releases.map((r) => r.name)).toEqual(['scarthgap', 'walnascar', 'whinlatter']);
    expect(targets.defaults.release).toBe('scarthgap');
    const host = targets.images.find((i) => i.image === 'stacklab-host-image');
    expect(host?.machines).toEqual(['qemuarm64']);
    expect(host?.summary).toMatch(/seed stack/);
    expect(targets.images.find((i) => i.image === 'stacklab-rpi-image')?.machines).toContain(
      'raspberrypi3-64',
    );
    expect(targets.blocked).toBe(canBuild ? undefined : expect.any(String));
  });

  it.skipIf(!isRoot)(
    'as root without a build user: refused up front, with the reason, and nothing recorded',
    async () => {
      const e = await engineWith({});
      const t = await call<{ blocked?: string }>(e, 'build.targets', {});
      expect(t.blocked).toBe(ROOT_REFUSAL);
      await expect(
        call(e, 'build.start', {
          image: 'stacklab-guest-image',
          machine: 'qemux86-64',
          release: 'scarthgap',
        }),
      ).rejects.toThrow(/^bitbake refuses to run as root .*STACKLAB_BUILD_USER$/);
      expect(await call<BuildInfo[]>(e, 'build.list', {})).toEqual([]);
      await expect(
        (await engineWith({ STACKLAB_BUILD_USER: 'no-such-user-here' })).dispatcher.dispatch('build.start', {
          image: 'stacklab-guest-image',
          machine: 'qemux86-64',
          release: 'scarthgap',
        }),
      ).rejects.toThrow("STACKLAB_BUILD_USER names 'no-such-user-here', but there is no such user");
    },
  );

  it.skipIf(!canBuild)('bad choices and bad folders are one clear line each', async () => {
    const e = await engineWith(isRoot ? { STACKLAB_BUILD_USER: buildUser } : {});
    const start = (p: Record<string, unknown>) =>
      call(e, 'build.start', {
        image: 'stacklab-guest-image',
        machine: 'qemux86-64',
        release: 'scarthgap',
        ...p,
      });
    await expect(start({ image: 'nope-image' })).rejects.toThrow(
      /^unknown image 'nope-image' \(choose stacklab-guest-image, /,
    );
    await expect(start({ machine: 'raspberrypi3-64' })).rejects.toThrow(
      'stacklab-guest-image is not built for raspberrypi3-64 (choose qemux86-64, qemuarm64)',
    );
    await expect(start({ release: 'kirkstone' })).rejects.toThrow(/^unknown Yocto release 'kirkstone'/);
    const file = path.join(base, 'a-file');
    writeFileSync(file, 'not a folder');
    await expect(start({ dir: file })).rejects.toThrow(
      `${file} is a file, not a folder: choose a folder for the build workspace`,
    );
    await expect(start({ dir: 'relative/dir' })).rejects.toThrow(
      "the workspace folder must be an absolute path, not 'relative/dir'",
    );
    const full = mkdtempSync(path.join(base, 'full-'));
    writeFileSync(path.join(full, 'notes.txt'), 'mine');
    await expect(start({ dir: full })).rejects.toThrow(
      `${full} holds other files and is not a Stacklab workspace: choose an empty or new folder`,
    );
    // Nothing was written into the folder that was refused.
    expect(readdirSync(full)).toEqual(['notes.txt']);
    expect(await call<BuildInfo[]>(e, 'build.list', {})).toEqual([]);
  });

  it.skipIf(!canBuild)(
    'a build whose layers cannot be cloned fails with the reason: events, status, record, log terminal',
    async () => {
      const missing = path.join(base, 'no-poky-here');
      const e = await engineWith({
        ...(isRoot ? { STACKLAB_BUILD_USER: buildUser } : {}),
        POKY_DIR: missing,
      });
      const seen: BuildInfo[] = [];
      e.hub.on('build.changed', (b) => seen.push(b));
      const dir = path.join(base, 'ws-clone-fails');
      const started = await call<BuildInfo>(e, 'build.start', {
        image: 'stacklab-guest-image',
        machine: 'qemux86-64',
        release: 'scarthgap',
        dir,
      });
      expect(started.state).toBe('preparing');
      expect(started.dir).toBe(dir);
      expect(started.id).toMatch(/^stacklab-guest-image-qemux86-64-[0-9a-f]{6}$/);
      // The workspace was written before the clone: the record and the generated conf.
      expect(readFileSync(path.join(dir, 'build/conf/local.conf'), 'utf8')).toContain(
        'MACHINE = "qemux86-64"',
      );
      const final = await e.builds.wait(started.id);
      expect(final.state).toBe('failed');
      expect(final.message).toMatch(new RegExp(`^cloning poky from ${missing} failed: `));
      expect(final.endedAt).toBeGreaterThanOrEqual(final.startedAt);
      expect(seen.map((b) => b.state)).toEqual(expect.arrayContaining(['preparing', 'failed']));
      expect(seen.at(-1)?.state).toBe('failed');

      const status = await call<BuildInfo>(e, 'build.status', { buildId: started.id });
      expect(status).toEqual(final);
      // Another engine (another Stacklab process) reads it from the record.
      const other = await engineWith({ STACKLAB_HOME: path.dirname(e.builds.records.dir) });
      const listed = await call<BuildInfo[]>(other, 'build.list', {});
      expect(listed.map((b) => [b.id, b.state])).toEqual([[started.id, 'failed']]);
      await expect(call(other, 'build.cancel', { buildId: started.id })).rejects.toThrow(
        `build ${started.id} is not running (failed)`,
      );

      // The log terminal replays what the build said and ends.
      const text: string[] = [];
      let exited = false;
      e.hub.on('term.data', (d) => text.push(d.data));
      e.hub.on('term.exit', () => {
        exited = true;
      });
      const term = await call<{ termId: string; title: string }>(e, 'term.open', {
        target: { kind: 'build', buildId: started.id },
        cols: 100,
        rows: 30,
      });
      expect(term.title).toBe('bitbake stacklab-guest-image (qemux86-64, scarthgap)');
      await expect.poll(() => exited, { timeout: 5000 }).toBe(true);
      const log = text.join('');
      expect(log).toContain(`[stacklab] cloning poky (scarthgap) from ${missing}`);
      expect(log).toContain(`[stacklab] failed: cloning poky from ${missing} failed`);
      await expect(
        call(e, 'term.open', { target: { kind: 'build', buildId: 'no-such-build' }, cols: 80, rows: 24 }),
      ).rejects.toThrow('no build no-such-build');
    },
  );
});

describe('stacklab build refusals from the CLI', () => {
  const cliEnv = (extra: Record<string, string> = {}) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    delete env.STACKLAB_BUILD_USER;
    return { ...env, STACKLAB_HOME: mkdtempSync(path.join(base, 'cli-')), ...extra };
  };

  it('a mistyped image or machine is a usage error (exit status 2) naming the choices', async () => {
    const r = await runCli(['build', 'stacklab-guest-imag'], { env: cliEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^stacklab: unknown image 'stacklab-guest-imag' \(choose stacklab-guest-image, /,
    );
    const m = await runCli(['build', 'stacklab-rpi-image', '--machine', 'qemuarm64'], { env: cliEnv() });
    expect(m.code).toBe(2);
    expect(m.stderr.trim()).toBe(
      'stacklab: stacklab-rpi-image is not built for qemuarm64 (choose raspberrypi3-64, raspberrypi4-64)',
    );
  });

  it.skipIf(!isRoot)('as root without STACKLAB_BUILD_USER: one line saying why, exit status 1', async () => {
    const r = await runCli(['build', 'stacklab-guest-image'], { env: cliEnv() });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`stacklab: ${ROOT_REFUSAL}`);
    const s = await runCli(['build', 'status'], { env: cliEnv() });
    expect(s.stdout.trim()).toBe('no builds yet: stacklab build <image> starts one');
  });
});

const guests = demoGuests();
const demo = guests?.find((g) => g.name === 'demo-qemuarm64');
if (!demo) console.warn(`skipping the built-image import test: ${NO_GUESTS}`);

describe.skipIf(!demo)('a deployed image goes into the library, ready to boot', () => {
  let e: Engine;
  beforeAll(async () => {
    e = await engineWith({});
  });

  it('imports the image a build deployed (not the multiconfig guest beside it) and boots it', async () => {
    const ws = createWorkspace(
      { release: 'scarthgap', machine: 'qemuarm64', image: 'stacklab-host-image' },
      {
        dir: path.join(base, 'ws-deployed'),
        downloadsDir: path.join(base, 'dl'),
        sstateDir: path.join(base, 'ss'),
      },
    );
    // What bitbake leaves in tmp/deploy/images/<machine>/: timestamped files and the
    // stable link names. The bytes are the demo guest's (a real kernel and ext4); the
    // names are the ones scarthgap gives stacklab-host-image.
    const deploy = path.join(ws.buildDir, 'tmp/deploy/images/qemuarm64');
    mkdirSync(deploy, { recursive: true });
    const src = demo!.deployDir;
    const confName = readdirSync(src).find((n) => n.endsWith('.rootfs.qemuboot.conf'))!;
    const stem = confName.replace(/\.rootfs\.qemuboot\.conf$/, '');
    for (const n of readdirSync(src)) {
      if (n.startsWith(stem)) continue;
      copyFileSync(path.join(src, n), path.join(deploy, n)); // kernel, initramfs
    }
    const link = 'stacklab-host-image-qemuarm64.rootfs';
    const stamped = `${link.replace('.rootfs', '')}.rootfs-20260101000000`;
    copyFileSync(path.join(src, `${stem}.rootfs.ext4`), path.join(deploy, `${stamped}.ext4`));
    symlinkSync(`${stamped}.ext4`, path.join(deploy, `${link}.ext4`));
    const conf = readFileSync(path.join(src, confName), 'utf8')
      .replaceAll(`${stem}.rootfs`, link)
      .replace(/^image_name = .*$/m, `image_name = ${stamped}`);
    writeFileSync(path.join(deploy, `${stamped}.qemuboot.conf`), conf);
    symlinkSync(`${stamped}.qemuboot.conf`, path.join(deploy, `${link}.qemuboot.conf`));
    // The x86 guest the multiconfig built stays out of the library.
    const mc = path.join(ws.buildDir, 'tmp-x86/deploy/images/qemux86-64');
    mkdirSync(mc, { recursive: true });
    writeFileSync(path.join(mc, 'stacklab-guest-image-qemux86-64.rootfs.qemuboot.conf'), '[config_bsp]\n');

    const record = await importBuiltImage(ws, {
      store: await e.library.openStore(),
      description: 'built here',
    });
    expect(record.id).toBe('stacklab-host-image-qemuarm64');
    expect(record.source).toBe('build');
    const list = await call<
      { id: string; source: string; bootable: boolean; arch: string; description?: string }[]
    >(e, 'images.list', {});
    const img = list.find((i) => i.id === record.id);
    expect(img).toMatchObject({
      source: 'build',
      bootable: true,
      arch: 'aarch64',
      description: 'built here',
    });
    expect(list.some((i) => i.id.startsWith('stacklab-guest-image'))).toBe(false);

    // Ready to boot: the kernel starts from the library's copy.
    const vm = await call<{ id: string }>(e, 'vm.boot', { imageId: record.id });
    try {
      await expect
        .poll(
          async () =>
            (await call<{ id: string; milestones: { name: string }[] }[]>(e, 'vm.list', {}))
              .find((v) => v.id === vm.id)
              ?.milestones.map((m) => m.name) ?? [],
          { timeout: 120_000, interval: 500 },
        )
        .toContain('kernel');
    } finally {
      await call(e, 'vm.stop', { vmId: vm.id, force: true });
    }
  });
});
