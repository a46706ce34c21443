// Running a program inside a foreign root filesystem on the host kernel: QEMU translates its
// instructions, the host kernel serves its system calls, no guest kernel boots.
// Preferred: proot -q qemu-<arch>-static -r <rootfs>, which gives chroot semantics without
// root (absolute symlinks, /proc, exec of other guest programs all resolve inside the
// rootfs). Without proot: qemu-<arch>-static -L <rootfs> <program>, which only redirects
// the dynamic loader and file opens — absolute symlinks are resolved here first, /proc is
// the host's, and a program the guest execs runs only if binfmt_misc knows its arch.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archNames, normalizeArch, sameEmulator } from '../../common/arch.ts';
import { readElf } from './elf.ts';
import { findProot, findQemuUser, nativeArches } from './find.ts';
import { type PrepareOptions, prepareRootfs } from './rootfs.ts';

/** A process to start; structurally the terminal layer's HostShell, so node-pty can take it as is. */
export interface UsermodeSpawn {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** How the guest's programs are run. */
  engine: 'proot' | 'qemu';
  arch: string;
  /** The emulator, absent when the arch is the host's own and proot runs it natively. */
  qemu?: string;
  rootfs: string;
}

export interface UsermodeOptions {
  /** Expected architecture (any name); checked against the rootfs's own programs. */
  arch?: string;
  /** Host environment used to find tools (PATH) and pass TERM. */
  env?: NodeJS.ProcessEnv;
  engine?: 'auto' | 'proot' | 'qemu';
  /** proot -0: appear as root inside (uid 0), as a chroot would. Default true. */
  fakeRoot?: boolean;
}

const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_LINKS = 40;

/**
 * Resolves a path as the guest sees it (absolute links are relative to the rootfs, ".."
 * stops at its root) to the host path inside the rootfs; undefined when it does not exist.
 */
export function resolveInRootfs(rootfs: string, guestPath: string): string | undefined {
  const pending = guestPath.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = path.join(rootfs, ...done, part);
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(part);
  }
  return path.join(rootfs, ...done);
}

/** A command name or path → its guest path and host path, searched on the guest's PATH. */
function findGuestProgram(rootfs: string, cmd: string): { guest: string; host: string } | undefined {
  const candidates = cmd.includes('/')
    ? [cmd.startsWith('/') ? cmd : `/${cmd}`]
    : GUEST_PATH.split(':').map((d) => `${d}/${cmd}`);
  for (const guest of candidates) {
    const host = resolveInRootfs(rootfs, guest);
    if (host && lstatSync(host).isFile()) return { guest, host };
  }
  return undefined;
}

/** The architecture of a root filesystem, from the ELF header of its shell or init. */
export async function detectRootfsArch(rootfs: string): Promise<string | undefined> {
  for (const p of [
    '/bin/sh',
    '/bin/busybox',
    '/usr/bin/env',
    '/sbin/init',
    '/bin/bash',
    '/usr/bin/busybox',
  ]) {
    const host = resolveInRootfs(rootfs, p);
    if (!host) continue;
    const elf = await readElf(host).catch(() => undefined);
    if (elf?.arch) return elf.arch;
  }
  return undefined;
}

/** Settles which architecture to emulate: the rootfs's own, checked against what was asked. */
export async function rootfsArch(rootfs: string, asked?: string): Promise<string> {
  const wanted = asked === undefined ? undefined : normalizeArch(asked);
  const found = await detectRootfsArch(rootfs);
  if (found && wanted && !sameEmulator(found, wanted)) {
    throw new Error(
      `the root filesystem's programs are ${found} (${archNames(found).label}) but ${wanted} was asked for`,
    );
  }
  const arch = wanted ?? found;
  if (!arch)
    throw new Error(`cannot tell the architecture of ${rootfs} (no ELF /bin/sh or /sbin/init): pass --arch`);
  return arch;
}

function guestEnv(host: NodeJS.ProcessEnv, fakeRoot: boolean): NodeJS.ProcessEnv {
  let user = 'root';
  if (!fakeRoot) {
    try {
      user = os.userInfo().username;
    } catch {
      user = 'user'; // no passwd entry for our uid (some containers)
    }
  }
  return {
    PATH: GUEST_PATH,
    HOME: fakeRoot ? '/root' : '/',
    USER: user,
    LOGNAME: user,
    SHELL: '/bin/sh',
    TERM: host.TERM && host.TERM !== 'dumb' ? host.TERM : 'xterm-256color',
    // proot's own scratch files (host side), wherever the host keeps temporary files.
    PROOT_TMP_DIR: os.tmpdir(),
  };
}

/** The process that runs `argv` (or an interactive login shell when empty) inside a prepared rootfs directory. */
export async function usermodeCommand(
  rootfs: string,
  argv: string[],
  opts: UsermodeOptions = {},
): Promise<UsermodeSpawn> {
  const hostEnv = opts.env ?? process.env;
  const arch = await rootfsArch(rootfs, opts.arch);
  const native = nativeArches().includes(arch);
  const fakeRoot = opts.fakeRoot ?? true;
  const cmd = argv.length > 0 ? argv : ['/bin/sh', '-l'];
  const program = findGuestProgram(rootfs, cmd[0]!);
  if (!program) throw new Error(`${cmd[0]} is not in the root filesystem (looked on ${GUEST_PATH})`);
  const env = guestEnv(hostEnv, fakeRoot);
  const proot = opts.engine === 'qemu' ? undefined : findProot(hostEnv);
  if (opts.engine === 'proot' && !proot)
    throw new Error('proot is not installed (on Debian/Ubuntu: apt-get install proot)');
  const qemu = native && proot ? undefined : await findQemuUser(arch, { env: hostEnv });

  if (proot) {
    const home = fakeRoot && existsSync(path.join(rootfs, 'root')) ? '/root' : '/';
    const args = [
      ...(fakeRoot ? ['-0'] : []),
      ...(qemu ? ['-q', qemu.path] : []),
      '-r',
      rootfs,
      '-w',
      home,
      // The host's devices, processes and sysfs, as a container would see them.
      '-b',
      '/dev',
      '-b',
      '/proc',
      '-b',
      '/sys',
      program.guest,
      ...cmd.slice(1),
    ];
    return { file: proot, args, env, cwd: rootfs, engine: 'proot', arch, qemu: qemu?.path, rootfs };
  }
  // -0 keeps argv[0] as the guest would see it: busybox picks its applet by that name.
  const args = ['-L', rootfs, '-0', cmd[0]!, program.host, ...cmd.slice(1)];
  return {
    file: qemu!.path,
    args,
    env: { ...env, QEMU_LD_PREFIX: rootfs },
    cwd: rootfs,
    engine: 'qemu',
    arch,
    qemu: qemu!.path,
    rootfs,
  };
}

/** Prepares `rootfs` (directory, tarball or ext4), then gives the process for `argv` or a shell. */
export async function openUsermode(
  rootfs: string,
  argv: string[],
  opts: UsermodeOptions & Pick<PrepareOptions, 'onNote'> = {},
): Promise<UsermodeSpawn> {
  const prepared = await prepareRootfs(rootfs, { env: opts.env, onNote: opts.onNote });
  return usermodeCommand(prepared.dir, argv, opts);
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts a prepared process, feeds it `input`, and collects its output. */
export function runSpawn(
  spec: UsermodeSpawn,
  opts: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(spec.file, spec.args, {
      env: spec.env,
      cwd: spec.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`could not start ${spec.file}: ${e.message}`));
    });
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        status,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command in a root filesystem (directory, tarball or ext4) under user-mode emulation and collects its output. */
export async function runInRootfs(
  rootfs: string,
  arch: string | undefined,
  argv: string[],
  opts: UsermodeOptions & {
    input?: string | Buffer;
    timeoutMs?: number;
    onNote?: (line: string) => void;
  } = {},
): Promise<RunResult> {
  if (argv.length === 0) throw new Error('no command given to run in the root filesystem');
  const spec = await openUsermode(rootfs, argv, { ...opts, arch: arch ?? opts.arch });
  return runSpawn(spec, opts);
}
