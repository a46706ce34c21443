// bitbake for macOS and Windows hosts (and Linux ones without the host tools): the same
// workspace, built inside a Yocto build container with docker or podman.
//
// The container is crops/poky: its entry point creates a user with the uid/gid owning
// --workdir and runs the command as that user, so bitbake never runs as root, and it
// carries the host tools and the en_US.UTF-8 locale bitbake wants. The workspace and the
// shared download/sstate dirs are mounted at the same paths inside, so the paths in
// conf/ and in stacklab-workspace.json mean the same thing on both sides.
//
// Not exercised by the tests: this machine has no docker/podman and cannot pull images.
// Known limits: bitbake needs a case-sensitive filesystem, which macOS bind mounts are
// not by default (put the workspace on a case-sensitive APFS volume); Windows paths need
// translating to the engine's mount syntax, which this does not do.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { bitbakeEnv } from './buildenv.ts';
import type { LaunchSpec, SessionOptions } from './runner.ts';
import { BitbakeRun, checkWorkspace } from './runner.ts';
import type { Workspace } from './workspace.ts';

export type ContainerEngine = 'docker' | 'podman';

export interface ContainerOptions extends SessionOptions {
  engine?: ContainerEngine;
  /** A Yocto build container image; crops/poky's entry point is assumed. */
  image?: string;
}

export const DEFAULT_BUILD_IMAGE = 'crops/poky:ubuntu-22.04';

/** The first of docker or podman that answers `--version`. */
export function findContainerEngine(): ContainerEngine | undefined {
  for (const engine of ['podman', 'docker'] as const) {
    try {
      execFileSync(engine, ['--version'], { stdio: 'ignore' });
      return engine;
    } catch {
      // not installed
    }
  }
  return undefined;
}

/** The container engine's argv for one bitbake run. Pure, for tests and for people. */
export function containerArgv(ws: Workspace, options: ContainerOptions & { name: string }): string[] {
  const env = bitbakeEnv({
    oeRoot: ws.oeRoot,
    bitbakeDir: ws.bitbakeDir,
    buildDir: ws.buildDir,
    base: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'en_US.UTF-8' },
  });
  const mounts = [ws.dir, ws.record.downloadsDir, ws.record.sstateDir].flatMap((d) => ['-v', `${d}:${d}`]);
  // -i and -t: the Ctrl-C the runner types to cancel reaches bitbake through the container's tty.
  return [
    'run',
    '--rm',
    '-i',
    '-t',
    '--name',
    options.name,
    ...mounts,
    '-w',
    ws.buildDir,
    options.image ?? DEFAULT_BUILD_IMAGE,
    // crops: run as the owner of this directory, starting in it.
    `--workdir=${ws.buildDir}`,
    // env(1) rather than -e: crops' entry point switches user with sudo, which would drop
    // the container's environment.
    'env',
    ...Object.entries(env)
      .filter(([k]) =>
        /^(PATH|BUILDDIR|BBPATH|PYTHONPATH|BB_ENV_PASSTHROUGH_ADDITIONS|OE_ADDED_PATHS|LANG)$/.test(k),
      )
      .map(([k, v]) => `${k}=${v}`),
    'bitbake',
    ...options.args,
  ];
}

/** Run bitbake for a workspace inside a build container, with the same events as runBitbake. */
export function runBitbakeInContainer(ws: Workspace, options: ContainerOptions): BitbakeRun {
  checkWorkspace(ws, options.args);
  const engine = options.engine ?? findContainerEngine();
  if (!engine)
    throw new Error(
      'neither podman nor docker is installed: install one to build Yocto images on this system',
    );
  const name = `stacklab-bitbake-${randomBytes(4).toString('hex')}`;
  const spec: LaunchSpec = {
    file: engine,
    args: containerArgv(ws, { ...options, name }),
    env: Object.fromEntries(
      Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
    ),
    cwd: ws.dir,
    lockKey: ws.buildDir,
    // Killing the client would leave the container running: stop the container itself.
    forceStop: () => {
      execFile(engine, ['kill', name], () => {});
    },
  };
  return new BitbakeRun(spec, options);
}
