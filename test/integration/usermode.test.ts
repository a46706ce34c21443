// User-mode emulation end to end with real tools: root filesystems unpacked from every
// supported container (compared file by file with the tree they were made from), hostile
// archives kept inside the cache, and the demo arm64 guest's own busybox answering
// `uname -m` with aarch64 under QEMU user mode — run as an unprivileged user (nobody),
// from the tarball and from the ext4 image, through proot and through plain qemu-user.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestsDir } from '../../electron/engine/paths.ts';
import { findQemuUser } from '../../electron/engine/usermode/find.ts';
import { prepareRootfs, removeTree } from '../../electron/engine/usermode/rootfs.ts';
import { runInRootfs, usermodeCommand } from '../../electron/engine/usermode/run.ts';
import { CLI, demoGuests, NO_GUESTS, ROOT } from '../helpers/cli.ts';

const temps: string[] = [];
function temp(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(d, 0o755);
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const t of temps) await removeTree(t);
});

const has = (tool: string, arg = '--version') => spawnSync(tool, [arg]).status === 0;
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

// ---------------------------------------------------------------------------------------
// Unpacking: a tree with everything a root filesystem holds, packed by the system's tar and
// mke2fs, must come back identical.

interface Node {
  type: 'dir' | 'file' | 'link';
  mode: number;
  sha?: string;
  target?: string;
}

function describeTree(root: string): Record<string, Node> {
  const out: Record<string, Node> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      if (rel === '' && name === 'lost+found') continue; // mke2fs adds it
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(root, r));
      if (st.isSymbolicLink()) out[r] = { type: 'link', mode: 0, target: readlinkSync(path.join(root, r)) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode: st.mode & 0o7777 };
        walk(r);
      } else if (st.isFile())
        out[r] = { type: 'file', mode: st.mode & 0o7777, sha: sha256(path.join(root, r)) };
    }
  };
  walk('');
  return out;
}

function makeTree(root: string): void {
  const w = (rel: string, data: string | Buffer, mode = 0o644) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), data);
    chmodSync(path.join(root, rel), mode);
  };
  w('usr/bin/busybox', 'not really busybox\n', 0o755);
  w('usr/bin/su', 'setuid program\n', 0o4755);
  w('usr/lib/x86_64/ld.so', 'loader\n', 0o755);
  w(
    'usr/share/big.bin',
    Buffer.from(createHash('sha512').update('seed').digest().toString('hex').repeat(20000)),
  );
  w('etc/empty', '');
  w('etc/shadow', 'root::19000:0:99999:7:::\n', 0o600);
  w('etc/name with spaces and ünïcode', 'ok\n');
  // Merged /usr and absolute links, as Debian and Yocto lay them out.
  symlinkSync('usr/bin', path.join(root, 'bin'));
  symlinkSync('usr/lib', path.join(root, 'lib'));
  mkdirSync(path.join(root, 'lib64'));
  symlinkSync('/lib/x86_64/ld.so', path.join(root, 'lib64', 'ld.so')); // absolute, through the lib link
  symlinkSync('/bin/busybox', path.join(root, 'usr', 'bin', 'sh'));
  symlinkSync('../../etc/shadow', path.join(root, 'usr', 'share', 'shadow-rel'));
  symlinkSync('/does/not/exist', path.join(root, 'etc', 'dangling'));
  linkSync(path.join(root, 'usr/bin/busybox'), path.join(root, 'usr/bin/busybox.hard'));
  mkdirSync(path.join(root, 'tmp'));
  chmodSync(path.join(root, 'tmp'), 0o1777);
  mkdirSync(path.join(root, 'ro'));
  writeFileSync(path.join(root, 'ro', 'inside'), 'in a read-only directory\n');
  chmodSync(path.join(root, 'ro'), 0o555);
}

const isRoot = process.getuid?.() === 0;
const tarTools = has('tar') && has('bzip2') && has('xz') && has('zstd');
const mke2fs =
  spawnSync('mke2fs', ['-V']).status === 0 || existsSync('/usr/sbin/mke2fs') || existsSync('/sbin/mke2fs');
if (!tarTools)
  console.warn('skipping tarball unpacking tests: tar, bzip2, xz and zstd are needed to make the archives');
if (!mke2fs) console.warn('skipping ext4 unpacking tests: mke2fs (e2fsprogs) is needed to make the image');

describe('unpacking root filesystems', () => {
  let work: string;
  let src: string;
  let expected: Record<string, Node>;
  const env = () => ({ ...process.env, STACKLAB_CACHE: path.join(work, 'cache') });

  beforeAll(() => {
    work = temp('stacklab-um-unpack-');
    src = path.join(work, 'src');
    mkdirSync(src);
    makeTree(src);
    expected = describeTree(src);
  });

  const compare = (dir: string, opts: { hardlinks: boolean; modes: boolean }) => {
    const got = describeTree(dir);
    const strip = (t: Record<string, Node>) =>
      Object.fromEntries(Object.entries(t).map(([k, v]) => [k, opts.modes ? v : { ...v, mode: 0 }]));
    expect(strip(got)).toEqual(strip(expected));
    if (opts.hardlinks) {
      expect(lstatSync(path.join(dir, 'usr/bin/busybox')).ino).toBe(
        lstatSync(path.join(dir, 'usr/bin/busybox.hard')).ino,
      );
    }
  };

  for (const [ext, compressor, decoder] of [
    ['tar', null, 'auto'],
    ['tar.gz', 'gzip', 'auto'],
    ['tar.bz2', 'bzip2', 'auto'],
    ['tar.xz', 'xz', 'auto'],
    ['tar.zst', 'zstd', 'auto'],
    ['tar.bz2', 'bzip2', 'js'],
    ['tar.xz', 'xz', 'js'],
    ['tar.zst', 'zstd', 'js'],
  ] as const) {
    it.skipIf(!tarTools)(
      `.${ext} (${decoder === 'js' ? 'JavaScript decoder' : 'system decoder'}) comes back identical`,
      async () => {
        const file = path.join(work, `rootfs-${decoder}.${ext}`);
        const tarArgs = [
          '--numeric-owner',
          '-cf',
          file,
          ...(compressor ? ['-I', compressor] : []),
          '-C',
          src,
          '.',
        ];
        execFileSync('tar', tarArgs);
        const p = await prepareRootfs(file, { env: env(), decoder });
        expect(p.kind).toBe('tar');
        expect(p.cached).toBe(false);
        if (decoder === 'js' && compressor) expect(p.via).toMatch(/JavaScript/);
        expect(p.skipped).toEqual([]);
        compare(p.dir, { hardlinks: true, modes: isRoot });
        // Second time: the same directory, not unpacked again.
        const again = await prepareRootfs(file, { env: env() });
        expect(again).toMatchObject({ dir: p.dir, cached: true });
      },
    );
  }

  for (const reader of ['ext2fs', 'debugfs'] as const) {
    it.skipIf(!mke2fs)(`.ext4 read with ${reader} comes back identical, image untouched`, async () => {
      const img = path.join(work, `rootfs-${reader}.ext4`);
      execFileSync(existsSync('/usr/sbin/mke2fs') ? '/usr/sbin/mke2fs' : 'mke2fs', [
        '-q',
        '-F',
        '-t',
        'ext4',
        '-d',
        src,
        img,
        '32M',
      ]);
      const before = sha256(img);
      const p = await prepareRootfs(img, { env: env(), ext4Reader: reader });
      expect(p).toMatchObject({ kind: 'ext4', via: reader });
      // debugfs rdump copies hard links and drops the sticky bit: contents and links must still match.
      compare(p.dir, { hardlinks: reader === 'ext2fs', modes: isRoot && reader === 'ext2fs' });
      expect(sha256(img)).toBe(before);
    });
  }

  it.skipIf(!tarTools)('a hostile tarball cannot write outside the cache', async () => {
    const outside = path.join(work, 'outside');
    const d1 = path.join(work, 'evil1');
    const d2 = path.join(work, 'evil2');
    mkdirSync(outside);
    mkdirSync(path.join(d1), { recursive: true });
    mkdirSync(path.join(d2, 'link'), { recursive: true });
    symlinkSync(outside, path.join(d1, 'link'));
    writeFileSync(path.join(d2, 'link', 'pwned'), 'x');
    writeFileSync(path.join(d2, 'note'), 'x');
    const evil = path.join(work, 'evil.tar');
    // A link to a host directory, then a file "through" it, then a ../ path and an absolute one.
    execFileSync('tar', ['-cf', evil, '-C', d1, 'link']);
    execFileSync('tar', ['-rf', evil, '-C', d2, 'link/pwned']);
    execFileSync('tar', ['-rf', evil, '-P', '--transform=s,^,../,', '-C', d2, 'note']);
    execFileSync('tar', ['-rf', evil, '-P', `--transform=s,^,${outside}/abs-,`, '-C', d2, 'note']);
    const p = await prepareRootfs(evil, { env: env() });
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(path.join(work, 'note'))).toBe(false);
    expect(p.skipped.join('\n')).toMatch(
      /link\/pwned: refused: it would be written through the symlink link/,
    );
    expect(p.skipped.join('\n')).toMatch(/\.\.\/note: refused: the path leaves the root filesystem/);
    // The absolute member lands inside, as tar itself would put it.
    expect(existsSync(path.join(p.dir, outside.slice(1), 'abs-note'))).toBe(true);
    expect(readlinkSync(path.join(p.dir, 'link'))).toBe(outside);
  });

  it('refuses what is not a root filesystem, in one line', async () => {
    const junk = path.join(work, 'junk.tar.bz2');
    writeFileSync(junk, 'definitely not bzip2');
    await expect(prepareRootfs(junk, { env: env() })).rejects.toThrow(
      /^junk\.tar\.bz2 is not a root filesystem: give a directory, a \.tar\(\.gz\|\.bz2\|\.xz\|\.zst\) or an \.ext4 image$/,
    );
    await expect(prepareRootfs(path.join(work, 'nope.ext4'), { env: env() })).rejects.toThrow(
      /nope\.ext4 does not exist$/,
    );
    const truncated = path.join(work, 'truncated.tar.bz2');
    execFileSync('tar', ['-cjf', truncated, '-C', src, '.']);
    const whole = readFileSync(truncated);
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    await expect(prepareRootfs(truncated, { env: env() })).rejects.toThrow(/^truncated\.tar\.bz2: /);
    // Nothing half-unpacked is left to be mistaken for a finished one.
    expect(readdirSync(path.join(work, 'cache', 'usermode')).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// The demo arm64 guest's root filesystem under QEMU user mode.

const guests = demoGuests();
const arm64 = guests?.find((g) => g.name === 'demo-qemuarm64');
const rootfsFile = (re: RegExp) =>
  arm64 && existsSync(arm64.deployDir) ? readdirSync(arm64.deployDir).find((n) => re.test(n)) : undefined;
const tarName = rootfsFile(/\.rootfs\.tar\.bz2$/);
const ext4Name = rootfsFile(/\.rootfs\.ext4$/);
const haveGuest = Boolean(tarName && ext4Name);
if (!haveGuest) console.warn(`skipping user-mode runs of the demo guest: ${NO_GUESTS}`);
const canDrop = isRoot && has('setpriv');
if (haveGuest && !canDrop)
  console.warn('skipping the unprivileged user-mode runs: they drop from root to nobody with setpriv');
const proot = has('proot', '--version');
if (haveGuest && !proot) console.warn('skipping the proot runs: proot is not installed');

// The CLI's usermode commands, dispatched as bin/stacklab does (main.ts), for as long as the
// lead has not merged them into the real command table; afterwards the real CLI is used.
const merged = readFileSync(path.join(ROOT, 'electron', 'cli', 'commands.ts'), 'utf8').includes(
  'usermodeCommands',
);
const RUNNER = `
import { parseArgs } from 'node:util';
import { usermodeCommands } from ${JSON.stringify(path.join(ROOT, 'electron', 'cli', 'usermode-commands.ts'))};
const [name, ...rest] = process.argv.slice(2);
let cmd = usermodeCommands[\`\${name} \${rest[0]}\`];
let args = rest.slice(1);
if (!cmd) { cmd = usermodeCommands[name]; args = rest; }
try {
  const p = parseArgs({ args, options: { ...cmd.options, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  process.exitCode = await cmd.run(p.values, p.positionals);
} catch (e) {
  process.stderr.write(\`stacklab: \${(e as Error).message.split('\\n')[0]}\\n\`);
  process.exitCode = 1;
}
`;

describe.skipIf(!haveGuest)('demo-qemuarm64 under QEMU user mode', () => {
  let base: string;
  let tarball: string;
  let ext4: string;
  let runner: string;
  const sums: Record<string, string> = {};

  beforeAll(() => {
    base = temp('stacklab-um-run-');
    // nobody cannot enter root's cache: the images are linked (or copied) into a readable place.
    const images = path.join(base, 'images');
    mkdirSync(images, { mode: 0o755 });
    for (const name of [tarName!, ext4Name!]) {
      const from = path.join(arm64!.deployDir, name);
      const to = path.join(images, name);
      try {
        linkSync(from, to);
      } catch {
        copyFileSync(from, to);
      }
      sums[name] = sha256(to);
    }
    tarball = path.join(images, tarName!);
    ext4 = path.join(images, ext4Name!);
    runner = path.join(base, 'runner.mts');
    writeFileSync(runner, RUNNER, { mode: 0o644 });
    for (const d of ['home', 'cache']) {
      mkdirSync(path.join(base, d), { mode: 0o755 });
      if (canDrop) chownSync(path.join(base, d), 65534, 65534);
    }
  });

  afterAll(() => {
    // The base images must not have been written.
    for (const [name, sum] of Object.entries(sums))
      expect(sha256(path.join(arm64!.deployDir, name)), name).toBe(sum);
  });

  /** `stacklab <args>` as uid 65534 with a home and a cache it owns. */
  function stacklabAsNobody(args: string[]) {
    const entry = merged ? [CLI] : ['--import', 'tsx', runner];
    const t = Date.now();
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, ...entry, ...args],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 200_000,
        env: {
          PATH: '/usr/local/bin:/usr/bin:/bin',
          HOME: path.join(base, 'home'),
          STACKLAB_HOME: path.join(base, 'home', 'stacklab'),
          STACKLAB_CACHE: path.join(base, 'cache'),
          LANG: 'C.UTF-8',
        },
      },
    );
    console.log(`stacklab ${args.join(' ')} as nobody: ${Date.now() - t} ms`);
    return r;
  }

  it.skipIf(!canDrop || !proot)('uname -m from the tarball says aarch64, run by nobody through proot', () => {
    const r = stacklabAsNobody(['run', '--arch', 'aarch64', tarball, '--', 'uname', '-m']);
    expect(r.stderr).toMatch(/unpacking .*\.rootfs\.tar\.bz2 into /);
    expect(r.stdout).toBe('aarch64\n');
    expect(r.status).toBe(0);
    // Unpacked into nobody's own cache, owned by nobody.
    const cached = readdirSync(path.join(base, 'cache', 'usermode')).filter((n) => !n.endsWith('.json'));
    expect(cached).toHaveLength(1);
    expect(lstatSync(path.join(base, 'cache', 'usermode', cached[0]!)).uid).toBe(65534);
  });

  it.skipIf(!canDrop || !proot)(
    'uname -m from the ext4 image says aarch64, run by nobody, with --json',
    () => {
      const r = stacklabAsNobody([
        'run',
        '--json',
        ext4,
        '--',
        'sh',
        '-c',
        'uname -m; id -u; test -w /etc/passwd && echo w',
      ]);
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout) as { arch: string; engine: string; status: number; stdout: string };
      // The arch was detected from the image's own /bin/sh; inside, proot presents root.
      expect(out).toMatchObject({ arch: 'aarch64', engine: 'proot', status: 0, stdout: 'aarch64\n0\nw\n' });
    },
  );

  it.skipIf(!canDrop)('uname -m through plain qemu-user (-L), the fallback without proot', () => {
    const r = stacklabAsNobody(['run', '--engine', 'qemu', '--arch', 'arm64', tarball, '--', 'uname', '-m']);
    expect(r.stdout).toBe('aarch64\n');
    expect(r.status).toBe(0);
  });

  it.skipIf(!canDrop)('a wrong --arch or a missing command is one line and a failure', () => {
    const wrong = stacklabAsNobody(['run', '--arch', 'riscv64', tarball, '--', 'uname', '-m']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr.trim().split('\n').pop()).toBe(
      "stacklab: the root filesystem's programs are aarch64 (64-bit Arm) but riscv64 was asked for",
    );
    const missing = stacklabAsNobody(['run', tarball, '--', 'no-such-program']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/stacklab: no-such-program is not in the root filesystem/);
  });

  it.skipIf(!proot)('an interactive shell in a pty (the terminal layer’s path)', async () => {
    const cache = temp('stacklab-um-pty-');
    const prepared = await prepareRootfs(tarball, { env: { ...process.env, STACKLAB_CACHE: cache } });
    const spec = await usermodeCommand(prepared.dir, [], { arch: 'aarch64' });
    expect(spec).toMatchObject({ engine: 'proot', arch: 'aarch64' });
    const p = pty.spawn(spec.file, spec.args, {
      cols: 100,
      rows: 30,
      cwd: spec.cwd,
      env: spec.env as Record<string, string>,
    });
    let screen = '';
    p.onData((d) => {
      screen += d;
    });
    const waitFor = (re: RegExp, ms = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const t0 = Date.now();
        const tick = setInterval(() => {
          if (re.test(screen)) {
            clearInterval(tick);
            resolve();
          } else if (Date.now() - t0 > ms) {
            clearInterval(tick);
            reject(new Error(`timed out waiting for ${re}; screen: ${screen.slice(-400)}`));
          }
        }, 50);
      });
    const exited = new Promise<number>((resolve) => p.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      p.write('echo "arch=$(uname -m) sum=$((6*7))"\r');
      await waitFor(/arch=aarch64 sum=42/);
      p.write('exit 3\r');
      expect(await exited).toBe(3);
    } finally {
      p.kill('SIGKILL'); // only if it is still there after a failure
    }
  });

  it('an image id from the library resolves to its root filesystem', async () => {
    // As the current user: the library reads guests.json where the demo guests were built
    // (named explicitly, since a fresh cache would otherwise move where it looks).
    const env = { ...process.env, STACKLAB_GUESTS: guestsDir(), STACKLAB_CACHE: temp('stacklab-um-id-') };
    const entry = merged ? [CLI] : ['--import', 'tsx', runner];
    const r = spawnSync(process.execPath, [...entry, 'run', 'demo-qemuarm64', '--', 'uname', '-m'], {
      cwd: ROOT,
      encoding: 'utf8',
      env,
    });
    expect(r.stderr).toMatch(/unpacking stacklab-demo-qemuarm64\.rootfs\.tar\.bz2/);
    expect(r.stdout).toBe('aarch64\n');
    expect(r.status).toBe(0);
    const unknown = spawnSync(process.execPath, [...entry, 'run', 'demo-nosuch', '--', 'true'], {
      cwd: ROOT,
      encoding: 'utf8',
      env,
    });
    expect(unknown.status).toBe(1);
    expect(unknown.stderr.trim()).toMatch(
      /^stacklab: "demo-nosuch" is neither a path nor a known image \(known: .*demo-qemuarm64/,
    );
  });

  it('runInRootfs returns status and output for scripts', async () => {
    const r = await runInRootfs(tarball, 'aarch64', ['sh', '-c', 'cat; echo err >&2; exit 5'], {
      input: 'from stdin\n',
      env: { ...process.env, STACKLAB_CACHE: temp('stacklab-um-script-') },
    });
    expect(r).toEqual({ status: 5, signal: null, stdout: 'from stdin\n', stderr: 'err\n' });
  });
});

describe('finding the user-mode emulator', () => {
  const system = '/usr/bin/qemu-aarch64-static';
  it.skipIf(!existsSync(system))('prefers the bundled static qemu-user, then PATH', async () => {
    const res = temp('stacklab-um-res-');
    const bin = path.join(res, 'qemu', `${process.platform}-${process.arch}`, 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(system, path.join(bin, 'qemu-aarch64-static'));
    chmodSync(path.join(bin, 'qemu-aarch64-static'), 0o755);
    expect(await findQemuUser('arm64v8', { resources: res })).toEqual({
      arch: 'aarch64',
      path: path.join(bin, 'qemu-aarch64-static'),
      source: 'bundled',
      isStatic: true,
    });
    const empty = temp('stacklab-um-res-');
    expect(await findQemuUser('aarch64', { resources: empty })).toMatchObject({
      source: 'path',
      isStatic: true,
    });
    await expect(findQemuUser('sparc64', { resources: empty })).rejects.toThrow(
      /^unknown architecture "sparc64"/,
    );
  });
});

// Removing what a test unpacked must work even for read-only directories (as a non-root user).
it('removeTree clears read-only directories', async () => {
  const d = temp('stacklab-um-rm-');
  mkdirSync(path.join(d, 'a', 'b'), { recursive: true });
  writeFileSync(path.join(d, 'a', 'b', 'f'), 'x');
  chmodSync(path.join(d, 'a', 'b'), 0o555);
  chmodSync(path.join(d, 'a'), 0o555);
  await removeTree(path.join(d, 'a'));
  expect(existsSync(path.join(d, 'a'))).toBe(false);
  rmSync(d, { recursive: true, force: true });
});
