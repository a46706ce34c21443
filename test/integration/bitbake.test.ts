// Real bitbake on generated workspaces: parse, the task graph of every Stacklab image (the
// multiconfig host image included), a build that fails at do_fetch for lack of network,
// cancelling, and building again afterwards.
//
// Needs layer checkouts (or bare mirrors) with the scarthgap branch:
//   POKY_DIR=/path/to/poky  [META_RPI_DIR=/path/to/meta-raspberrypi]  [META_OE_DIR=/path/to/meta-openembedded]
//   [OE_CORE_DIR, BITBAKE_DIR, META_YOCTO_DIR: whinlatter's split repositories, optional]
// the host tools bitbake checks for (HOSTTOOLS), the en_US.UTF-8 locale, and, when the
// tests run as root, an unprivileged user for bitbake (STACKLAB_BUILD_USER, default
// stacklab-build): bitbake refuses to run as root. See docs/yocto.md, "CI".
// STACKLAB_TEST_WORKDIR keeps the workspaces (and their parse cache) between runs.
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
import pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildInfo } from '../../electron/common/contract.ts';
import { bitbakeEnv } from '../../electron/engine/build/buildenv.ts';
import type { RepoName, YoctoRelease } from '../../electron/engine/build/releases.ts';
import { type BuildResult, type RunOptions, runBitbake } from '../../electron/engine/build/runner.ts';
import {
  checkDiskSpace,
  cloneLayers,
  createWorkspace,
  type Workspace,
  type WorkspaceChoice,
} from '../../electron/engine/build/workspace.ts';
import { bitbakeSkipReason, isRoot, runAs } from '../helpers/bitbake-env.ts';
import { CLI, runCli } from '../helpers/cli.ts';

const env = process.env;
const POKY = env.POKY_DIR;
const META_RPI = env.META_RPI_DIR;
const META_OE = env.META_OE_DIR;
const SPLIT = env.OE_CORE_DIR && env.BITBAKE_DIR && env.META_YOCTO_DIR;
const MIN = 60_000;

const skip = bitbakeSkipReason(POKY);
if (skip) console.log(`[bitbake integration] skipped: ${skip}`);

const keep = env.STACKLAB_TEST_WORKDIR;
let work = '';
const timings: Record<string, number> = {};
const closing: Record<string, string[]> = {};

/** Hand the tree to the build user (when root): bitbake writes everywhere in it. */
function ownForBuild(dir: string): void {
  if (runAs) execFileSync('chown', ['-R', `${runAs}:`, dir]);
}

/** Run a command in the workspace's bitbake environment, as the build user when root. */
function asBuildUser(ws: Workspace, argv: string[]): string {
  const home = runAs
    ? execFileSync('getent', ['passwd', runAs], { encoding: 'utf8' }).split(':')[5]!
    : os.homedir();
  const e = bitbakeEnv({
    oeRoot: ws.oeRoot,
    bitbakeDir: ws.bitbakeDir,
    buildDir: ws.buildDir,
    base: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, LANG: 'en_US.UTF-8' },
  });
  const [file, ...args] = runAs
    ? ['setpriv', `--reuid=${runAs}`, `--regid=${runAs}`, '--init-groups', '--', ...argv]
    : argv;
  return execFileSync(file!, args, { cwd: ws.buildDir, env: e, encoding: 'utf8' });
}

function sources(): Partial<Record<RepoName, string>> {
  return {
    ...(POKY ? { poky: POKY } : {}),
    ...(META_RPI ? { 'meta-raspberrypi': META_RPI } : {}),
    ...(META_OE ? { 'meta-openembedded': META_OE } : {}),
    ...(env.OE_CORE_DIR ? { 'openembedded-core': env.OE_CORE_DIR } : {}),
    ...(env.BITBAKE_DIR ? { bitbake: env.BITBAKE_DIR } : {}),
    ...(env.META_YOCTO_DIR ? { 'meta-yocto': env.META_YOCTO_DIR } : {}),
  };
}

/** Check out what the given checkouts have (HEAD of the release branch), not the table's pins. */
function revisions(release: YoctoRelease): Partial<Record<RepoName, string>> {
  const branch: Partial<Record<RepoName, string>> =
    release === 'whinlatter'
      ? { bitbake: '2.16', 'openembedded-core': 'whinlatter', 'meta-yocto': 'whinlatter' }
      : { poky: release };
  const out: Partial<Record<RepoName, string>> = {};
  for (const [name, dir] of Object.entries(sources()) as [RepoName, string][]) {
    const ref = branch[name] ?? release;
    try {
      out[name] = execFileSync('git', ['-C', dir, 'rev-parse', `${ref}^{commit}`], {
        encoding: 'utf8',
      }).trim();
    } catch {
      // not a repository of this release: planWorkspace leaves it out anyway
    }
  }
  return out;
}

async function workspace(name: string, choice: WorkspaceChoice): Promise<Workspace> {
  const dir = path.join(work, name);
  const ws = createWorkspace(choice, {
    dir,
    sources: sources(),
    revisions: revisions(choice.release),
    downloadsDir: path.join(work, 'downloads'),
    sstateDir: path.join(work, 'sstate-cache'),
    // BB_NO_NETWORK = "1" in local.conf: no network is certain, even on a CI machine that
    // has one, and every step shares one configuration, hence one parse cache. (The same
    // variable in the environment would change the configuration and cost a full reparse.)
    offline: true,
  });
  await cloneLayers(ws);
  ownForBuild(work);
  return ws;
}

async function bitbake(
  ws: Workspace,
  label: string,
  args: string[],
  extra: Partial<RunOptions> = {},
): Promise<BuildResult> {
  const t0 = Date.now();
  const run = runBitbake(ws, { args, runAs, ...extra });
  const result = await run.done;
  timings[label] = Date.now() - t0;
  closing[label] = result.tail.slice(-4);
  console.log(
    `[bitbake integration] ${label}: ${result.message} in ${(timings[label]! / 1000).toFixed(1)} s`,
  );
  for (const l of closing[label]!) console.log(`  | ${l.slice(0, 200)}`);
  return result;
}

/** Task graph files bitbake -g wrote. */
function graph(ws: Workspace): { pns: string[]; tasks: string } {
  return {
    pns: readFileSync(path.join(ws.buildDir, 'pn-buildlist'), 'utf8').split('\n').filter(Boolean),
    tasks: readFileSync(path.join(ws.buildDir, 'task-depends.dot'), 'utf8'),
  };
}

beforeAll(() => {
  if (skip) return;
  work = keep ? path.resolve(keep) : mkdtempSync(path.join(os.tmpdir(), 'stacklab-bitbake-'));
  mkdirSync(work, { recursive: true });
});

afterAll(() => {
  if (!skip) {
    console.log(
      `[bitbake integration] timings (s): ${Object.entries(timings)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`)
        .join(', ')}`,
    );
  }
  if (work && !keep) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!!skip)('bitbake on a stacklab-host-image workspace (qemuarm64 + x86 multiconfig)', () => {
  let ws: Workspace;

  it(
    'refuses to run bitbake as root, saying why',
    async () => {
      ws = await workspace('host', {
        release: 'scarthgap',
        machine: 'qemuarm64',
        image: 'stacklab-host-image',
      });
      if (isRoot) {
        expect(() => runBitbake(ws, { args: ['-p'] })).toThrow(/^bitbake refuses to run as root/);
        expect(() => runBitbake(ws, { args: ['-p'], runAs: 'root' })).toThrow(
          "'root' is root: bitbake refuses to run as root",
        );
      } else {
        expect(() => runBitbake(ws, { args: ['-p'], runAs: 'nobody' })).toThrow(/^runAs needs root/);
      }
    },
    5 * MIN,
  );

  it(
    'parses every recipe of both configurations with no errors',
    async () => {
      const r = await bitbake(ws, 'host -p', ['-p']);
      expect(r.ok, r.message).toBe(true);
      expect(r.summary.parse).toBeDefined();
      expect(r.summary.parse!.errors).toBe(0);
      // Two configurations: every recipe file is parsed (or loaded) once per config.
      expect(r.summary.parse!.files % 2).toBe(0);
      expect(r.summary.errors).toEqual([]);
      expect(r.progress.phase).toBe('done');
    },
    30 * MIN,
  );

  it(
    'builds the task graph of the host image, with the x86 guest through mcdepends',
    async () => {
      const r = await bitbake(ws, 'host -g stacklab-host-image', ['-g', 'stacklab-host-image']);
      expect(r.ok, r.message).toBe(true);
      const g = graph(ws);
      expect(g.pns).toEqual(
        expect.arrayContaining(['stacklab-host-image', 'stacklab-agent', 'qemu', 'stress-ng']),
      );
      expect(g.tasks).toContain(
        '"stacklab-host-image.do_rootfs" -> "mc:x86:stacklab-guest-image.do_image_complete"',
      );
      expect(g.tasks).toContain('"stacklab-host-image.do_rootfs" -> "mc:x86:linux-yocto.do_deploy"');
    },
    15 * MIN,
  );

  it(
    'builds the task graph of the builder image',
    async () => {
      const r = await bitbake(ws, 'host -g stacklab-builder-image', ['-g', 'stacklab-builder-image']);
      expect(r.ok, r.message).toBe(true);
      expect(graph(ws).pns).toEqual(
        expect.arrayContaining([
          'stacklab-builder-image',
          'python3',
          'git',
          'gcc',
          'chrpath',
          'diffstat',
          'glibc-locale',
        ]),
      );
    },
    15 * MIN,
  );

  it(
    'builds the task graph of the guest image in the x86 multiconfig',
    async () => {
      const r = await bitbake(ws, 'host -g mc:x86:stacklab-guest-image', [
        '-g',
        'mc:x86:stacklab-guest-image',
      ]);
      expect(r.ok, r.message).toBe(true);
      const g = graph(ws);
      expect(g.tasks).toContain('"mc:x86:stacklab-guest-image.do_image_complete"');
      // vm-guest-image's ext4.qcow2: oe-core hangs conversion tools on do_rootfs.
      expect(g.tasks).toContain(
        '"mc:x86:stacklab-guest-image.do_rootfs" -> "mc:x86:qemu-system-native.do_populate_sysroot"',
      );
    },
    15 * MIN,
  );

  it(
    'installs a nested guest as the host image does, and stacklab-agent reads what it wrote',
    async () => {
      // Runs the class's real install step (stacklab_install_guests) with bitbake's own
      // datastore for stacklab-host-image, through tinfoil. The x86 deploy dir it reads is
      // made up here: building the real guest image takes hours. Its qemuboot.conf holds
      // what scarthgap's qemuboot-x86.inc writes for qemux86-64.
      const t = path.join(work, 'install-guests');
      rmSync(t, { recursive: true, force: true });
      const deploy = path.join(t, 'tmp-x86', 'deploy', 'images', 'qemux86-64');
      const rootfs = path.join(t, 'rootfs');
      mkdirSync(deploy, { recursive: true });
      mkdirSync(rootfs);
      const disk = 'stacklab-guest-image-qemux86-64.rootfs-20260101000000.ext4.qcow2';
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(deploy, disk), '64M']);
      symlinkSync(disk, path.join(deploy, 'stacklab-guest-image-qemux86-64.rootfs.ext4.qcow2'));
      const kernel = env.STACKLAB_TEST_X86_KERNEL;
      writeFileSync(
        path.join(deploy, 'bzImage-qemux86-64.bin'),
        kernel ? readFileSync(kernel) : 'not a kernel',
      );
      symlinkSync('bzImage-qemux86-64.bin', path.join(deploy, 'bzImage'));
      writeFileSync(
        path.join(deploy, 'stacklab-guest-image-qemux86-64.rootfs.qemuboot.conf'),
        [
          '[config_bsp]',
          'kernel_imagetype = bzImage',
          'machine = qemux86-64',
          'qb_cpu = -cpu IvyBridge -machine q35,i8042=off',
          'qb_default_kernel = bzImage',
          'qb_kernel_cmdline_append = oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1',
          'qb_mem = -m 256',
          'qb_smp = -smp 4',
          'qb_system_name = qemu-system-x86_64',
          'serial_consoles = 115200;ttyS0 115200;ttyS1',
          '',
        ].join('\n'),
      );
      const script = path.join(t, 'install-guests.py');
      writeFileSync(
        script,
        [
          'import os, sys',
          'import bb.build, bb.tinfoil',
          'with bb.tinfoil.Tinfoil() as tinfoil:',
          '    tinfoil.prepare(config_only=False, quiet=2)',
          "    d = tinfoil.parse_recipe('stacklab-host-image')",
          "    print('mcdepends=' + d.getVarFlag('do_rootfs', 'mcdepends'))",
          "    d.setVar('IMAGE_ROOTFS', sys.argv[1])",
          "    d.setVar('TMPDIR', sys.argv[2])",
          "    bb.build.exec_func('stacklab_install_guests', d)",
          '',
        ].join('\n'),
      );
      ownForBuild(t);
      const out = asBuildUser(ws, ['python3', script, rootfs, path.join(t, 'tmp')]);
      expect(out).toContain(
        'mcdepends= mc::x86:stacklab-guest-image:do_image_complete mc::x86:virtual/kernel:do_deploy',
      );

      const images = path.join(rootfs, 'var/lib/virt/images');
      expect(readFileSync(path.join(images, 'x86-guest.qcow2'))).toEqual(
        readFileSync(path.join(deploy, disk)),
      );
      expect(readFileSync(path.join(images, 'x86-guest.kernel'))).toEqual(
        readFileSync(path.join(deploy, 'bzImage-qemux86-64.bin')),
      );
      const manifest = JSON.parse(readFileSync(path.join(images, 'x86-guest.json'), 'utf8'));
      expect(manifest).toEqual({
        name: 'x86-guest',
        recipe: 'stacklab-guest-image',
        arch: 'x86_64',
        machine: 'qemux86-64',
        qemu: 'qemu-system-x86_64',
        kernel: '/var/lib/virt/images/x86-guest.kernel',
        disk: '/var/lib/virt/images/x86-guest.qcow2',
        diskFormat: 'qcow2',
        memory: 256,
        smp: 1,
        append:
          'root=/dev/vda rw console=ttyS0,115200 oprofile.timer=1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1',
        qemuArgs: ['-cpu', 'IvyBridge', '-machine', 'q35,i8042=off'],
        console: 'stacklab.nested0',
      });

      // The agent, under busybox ash as in the guest, on the directory the class filled.
      const agent = path.join(
        import.meta.dirname,
        '../../resources/yocto/meta-stacklab/recipes-stacklab/stacklab-agent/files/stacklab-agent',
      );
      const shell = existsSync('/usr/bin/busybox') ? ['busybox', 'ash'] : ['sh'];
      const agentEnv = {
        ...process.env,
        STACKLAB_IMAGES_DIR: images,
        STACKLAB_STATE_DIR: path.join(t, 'overlays'),
        STACKLAB_RUN_DIR: path.join(t, 'run'),
        STACKLAB_PORTS_DIR: path.join(t, 'ports'),
      };
      const sh = (...args: string[]) =>
        execFileSync(shell[0]!, [...shell.slice(1), agent, ...args], {
          env: agentEnv,
          encoding: 'utf8',
        }).trim();
      expect(sh('list')).toBe('x86-guest x86_64 qemux86-64 /var/lib/virt/images/x86-guest.qcow2');
      expect(sh('status')).toBe('x86-guest stopped -');
      if (!kernel) {
        console.log(
          '[bitbake integration] nested boot skipped: STACKLAB_TEST_X86_KERNEL (an x86-64 bzImage) is not set',
        );
        return;
      }
      // Boot it. The parent's virtio-serial port is a character device that carries bytes
      // both ways without echoing them back; a pty's slave stands in for it (a FIFO would
      // hand QEMU its own output), and its master is where the console text arrives.
      mkdirSync(path.join(t, 'ports'));
      const port = path.join(t, 'ports', 'stacklab.nested0');
      const holder = pty.spawn('sh', ['-c', 'tty; exec sleep 600'], { cols: 200, rows: 50 });
      let consoleText = '';
      holder.onData((d) => {
        consoleText += d;
      });
      while (!consoleText.includes('\n')) await new Promise((r) => setTimeout(r, 50));
      symlinkSync(consoleText.split(/\r?\n/)[0]!.trim(), port);
      consoleText = '';
      try {
        const started = sh('start', 'x86-guest').split('\n');
        expect(started[0]).toMatch(new RegExp(`^x86-guest running \\d+ console ${port}$`));
        // The agent also echoes the QEMU command line it used.
        expect(started[1]).toMatch(
          /^cmdline qemu-system-x86_64 -cpu IvyBridge -machine q35,i8042=off -m 256 -smp 1 /,
        );
        const deadline = Date.now() + 60_000;
        while (!consoleText.includes('Linux version') && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 500));
        }
        expect(consoleText).toContain('Command line: root=/dev/vda rw console=ttyS0,115200');
        expect(sh('status')).toMatch(/^x86-guest running \d+$/);
      } finally {
        expect(sh('stop', 'x86-guest')).toBe('x86-guest stopped -');
        holder.kill();
      }
    },
    10 * MIN,
  );

  it(
    'fails at do_fetch without network and names the task and its log',
    async () => {
      const r = await bitbake(ws, 'host -c fetch quilt-native', ['-c', 'fetch', 'quilt-native']);
      expect(r.ok).toBe(false);
      expect(r.exitCode).not.toBe(0);
      expect(r.failure).toBeDefined();
      const f = r.failure!;
      expect(f.task).toBe('do_fetch');
      expect(f.recipe).toMatch(/^quilt-native-/);
      expect(f.recipeFile).toMatch(/\/quilt-native_[^/]+\.bb$/);
      expect(f.logPath).toMatch(/\/temp\/log\.do_fetch\.\d+$/);
      expect(existsSync(f.logPath!)).toBe(true);
      expect(readFileSync(f.logPath!, 'utf8')).toMatch(/NetworkAccess|Fetcher failure/);
      expect(r.message).toBe(`${f.recipe} do_fetch failed (log: ${f.logPath})`);
      expect(r.progress.phase).toBe('failed');
    },
    15 * MIN,
  );

  it(
    'runs again in the same workspace after the failure, and cancels on request',
    async () => {
      const again = await bitbake(ws, 'host -c fetch quilt-native (again)', ['-c', 'fetch', 'quilt-native']);
      expect(again.failure?.task).toBe('do_fetch');

      // Cancel: the first progress event is enough to know bitbake is up.
      const t0 = Date.now();
      const run = runBitbake(ws, {
        args: ['-c', 'fetch', 'quilt-native'],
        runAs,
        cancelGraceMs: 60_000,
        killAfterMs: 15_000,
      });
      await new Promise<void>((resolve) => run.once('progress', () => resolve()));
      const cancelled = await run.cancel();
      timings.cancel = Date.now() - t0;
      expect(cancelled.cancelled).toBe(true);
      expect(cancelled.ok).toBe(false);
      expect(cancelled.message).toBe('build cancelled');

      // And the workspace still parses cleanly, from the cache.
      const p = await bitbake(ws, 'host -p (cached)', ['-p']);
      expect(p.ok, p.message).toBe(true);
      expect(p.summary.parse?.errors ?? 0).toBe(0);
    },
    20 * MIN,
  );
});

describe.skipIf(!!skip || !META_RPI)('bitbake on a stacklab-rpi-image workspace (raspberrypi3-64)', () => {
  if (!skip && !META_RPI) console.log('[bitbake integration] Pi workspace skipped: META_RPI_DIR is not set');

  it(
    'builds the task graph of the Pi image through meta-raspberrypi',
    async () => {
      const ws = await workspace('rpi', {
        release: 'scarthgap',
        machine: 'raspberrypi3-64',
        image: 'stacklab-rpi-image',
        extraRepos: META_OE ? ['meta-openembedded'] : [],
      });
      const r = await bitbake(ws, 'rpi -g stacklab-rpi-image', ['-g', 'stacklab-rpi-image']);
      expect(r.ok, r.message).toBe(true);
      expect(graph(ws).pns).toEqual(
        expect.arrayContaining(['stacklab-rpi-image', 'rpi-config', 'rpi-cmdline', 'linux-raspberrypi']),
      );
      // ENABLE_UART came from local.conf: the image's check stayed quiet.
      expect(r.tail.join('\n')).not.toContain('ENABLE_UART is not "1"');
      expect(r.summary.warnings).toBe(0);
    },
    30 * MIN,
  );
});

describe.skipIf(!!skip || !SPLIT)('bitbake on whinlatter (bitbake + openembedded-core + meta-yocto)', () => {
  if (!skip && !SPLIT)
    console.log('[bitbake integration] whinlatter skipped: OE_CORE_DIR, BITBAKE_DIR, META_YOCTO_DIR not set');

  it(
    'builds the task graph of the guest image',
    async () => {
      const ws = await workspace('whinlatter-guest', {
        release: 'whinlatter',
        machine: 'qemux86-64',
        image: 'stacklab-guest-image',
      });
      const r = await bitbake(ws, 'whinlatter -g stacklab-guest-image', ['-g', 'stacklab-guest-image']);
      expect(r.ok, r.message).toBe(true);
      expect(graph(ws).tasks).toContain(
        '"stacklab-guest-image.do_rootfs" -> "qemu-system-native.do_populate_sysroot"',
      );
    },
    30 * MIN,
  );
});

describe.skipIf(!!skip)('stacklab build (the CLI) on real bitbake, with no network', () => {
  // stacklab-guest-image for qemux86-64: one configuration (~925 recipes), the smallest
  // parse; --offline (BB_NO_NETWORK) so the first do_fetch fails at once instead of after
  // wget's timeouts. The engine clones poky from POKY_DIR and runs bitbake as the build user.
  const args = () => [
    'build',
    'stacklab-guest-image',
    '--machine',
    'qemux86-64',
    '--dir',
    path.join(work, 'cli-guest'),
    '--offline',
  ];
  const cliEnv = (): Record<string, string> => {
    const e: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) e[k] = v;
    Object.assign(e, {
      STACKLAB_HOME: path.join(work, 'cli-home'),
      STACKLAB_CACHE: path.join(work, 'cli-cache'),
      POKY_DIR: POKY!,
    });
    if (runAs) e.STACKLAB_BUILD_USER = runAs;
    else delete e.STACKLAB_BUILD_USER;
    return e;
  };
  const say = (label: string, out: string) => {
    console.log(`[bitbake integration] ${label}:`);
    for (const l of out.trim().split('\n').slice(-8)) console.log(`  | ${l.slice(0, 220)}`);
  };

  beforeAll(() => {
    // The build user has to reach the workspace through the test's folder.
    if (runAs && work) execFileSync('chown', [`${runAs}:`, work]);
  });

  it(
    'fails at do_fetch and ends with the summary on stderr and exit status 1',
    async () => {
      const t0 = Date.now();
      const r = await runCli(args(), { env: cliEnv(), timeoutMs: 25 * MIN });
      timings['stacklab build (1)'] = Date.now() - t0;
      say('stacklab build stacklab-guest-image (1) stdout', r.stdout);
      say('stacklab build stacklab-guest-image (1) stderr', r.stderr);
      expect(r.code, r.stderr).toBe(1);
      // What bitbake printed, line by line (no terminal: plain lines, footer left out). A
      // workspace kept from an earlier run (STACKLAB_TEST_WORKDIR) loads its whole cache.
      expect(r.stdout).toMatch(
        /^(Parsing of \d+ \.bb files complete \(\d+ cached, \d+ parsed\)\. \d+ targets, \d+ skipped, 0 masked, 0 errors\.|Loaded \d+ entries from dependency cache\.)$/m,
      );
      expect(r.stdout).toMatch(
        /^\[build stacklab-guest-image-qemux86-64-[0-9a-f]{6}\] \d+% (Loading cache|Parsing recipes)$/m,
      );
      expect(r.stdout).toMatch(/^\[build \S+\] \d+% Running tasks \d+\/\d+$/m);
      expect(r.stdout).not.toMatch(/^(Currently\s+\d+ running tasks|Setscene tasks: )/m);
      const disk = checkDiskSpace(path.join(work, 'cli-guest'));
      if (!disk.ok) {
        expect(r.stdout).toMatch(/^warning: only \d+ GB free on .+; a Yocto build needs about 100 GB/m);
      }
      // The summary: headline, failed task, its log, the line that matters, the workspace.
      expect(r.stderr).toMatch(/^build failed: \S+ do_fetch failed$/m);
      expect(r.stderr).toMatch(/^ {2}failed task: \S+ do_fetch( \(the first of \d+ failed tasks\))?$/m);
      const log = /^ {2}log: +(\S+)$/m.exec(r.stderr)?.[1];
      expect(log).toMatch(/\/temp\/log\.do_fetch\.\d+$/);
      expect(readFileSync(log!, 'utf8')).toMatch(/NetworkAccess/);
      expect(r.stderr).toMatch(
        /^ {2}error: +network access is off \(BB_NO_NETWORK\) and \S+ is not in the download cache$/m,
      );
      expect(r.stderr).toContain(
        `workspace:   ${path.join(work, 'cli-guest')} (run the same command again to retry)`,
      );
    },
    30 * MIN,
  );

  it(
    'runs again in the same workspace from the parse cache, and build status lists both',
    async () => {
      const t0 = Date.now();
      const r = await runCli(args(), { env: cliEnv(), timeoutMs: 15 * MIN });
      timings['stacklab build (again)'] = Date.now() - t0;
      say('stacklab build stacklab-guest-image (again) stderr', r.stderr);
      expect(r.code, r.stderr).toBe(1);
      // From the first run's parse cache: all of it loaded, or all but a few recipes.
      const cached =
        /^Loaded (\d+) entries from dependency cache\.$/m.exec(r.stdout)?.[1] ??
        /Parsing of \d+ \.bb files complete \((\d+) cached/.exec(r.stdout)?.[1];
      expect(Number(cached ?? 0), r.stdout.slice(-2000)).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/^build failed: \S+ do_fetch failed/m);

      const status = await runCli(['build', 'status', '--json'], { env: cliEnv() });
      expect(status.code).toBe(0);
      const list = JSON.parse(status.stdout) as BuildInfo[];
      const mine = list.filter((b) => b.dir === path.join(work, 'cli-guest'));
      expect(mine.length).toBeGreaterThanOrEqual(2);
      expect(mine.slice(0, 2).map((b) => [b.state, b.failure?.task])).toEqual([
        ['failed', 'do_fetch'],
        ['failed', 'do_fetch'],
      ]);
      expect(mine[0]!.startedAt).toBeGreaterThan(mine[1]!.startedAt);
      const human = await runCli(['build', 'status'], { env: cliEnv() });
      expect(human.stdout).toMatch(
        new RegExp(`^${mine[0]!.id} +failed +stacklab-guest-image qemux86-64 scarthgap`, 'm'),
      );
      expect(human.stdout).toMatch(/^ {4}network access is off/m);
    },
    20 * MIN,
  );

  it(
    'on a terminal draws one progress line in place, and Ctrl-C cancels the build (exit status 130)',
    async () => {
      const term = pty.spawn(process.execPath, [CLI, ...args()], {
        cols: 100,
        rows: 30,
        env: cliEnv(),
      });
      let out = '';
      let sent = false;
      const code = await new Promise<number>((resolve) => {
        term.onData((d) => {
          out += d;
          // Once bitbake itself is running (its progress is on the bar), interrupt it.
          if (
            !sent &&
            /\r\x1b\[2K\[[#.]{20}\] +\d+% (Loading cache|Parsing recipes|Initialising tasks|Running tasks)/.test(
              out,
            )
          ) {
            sent = true;
            term.write('\x03');
          }
        });
        term.onExit(({ exitCode }) => resolve(exitCode));
      });
      say('stacklab build on a tty, Ctrl-C', out.replace(/\r\x1b\[2K/g, '\n'));
      expect(sent, out.slice(-2000)).toBe(true);
      expect(code).toBe(130);
      expect(out).toContain('cancelling: bitbake lets running tasks finish (Ctrl-C again to stop them now)');
      // One Ctrl-C is one cancel (not taken for the second, forced one), and bitbake heard it.
      expect(out).not.toContain('stopping the running tasks now');
      expect(out).toContain('Keyboard Interrupt, closing down...');
      expect(out).toMatch(
        /build stacklab-guest-image-qemux86-64-[0-9a-f]{6} cancelled; run the same command again/,
      );
      // A terminal gets the redrawn bar, not a progress line per step.
      expect(out).not.toMatch(/^\[build \S+\] \d+%/m);
      const status = JSON.parse(
        (await runCli(['build', 'status', '--json'], { env: cliEnv() })).stdout,
      ) as BuildInfo[];
      expect(status[0]?.state).toBe('cancelled');
    },
    15 * MIN,
  );
});
