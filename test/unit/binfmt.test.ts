// binfmt_misc: reading prepared directories in the kernel's exact format, the registration
// line derived from ELF header fields (checked against Debian's entry and real ELF files),
// and registering without rights: one clear line, nothing changed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  cpSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  binfmtStatus,
  elfBinfmtPattern,
  parseBinfmtEntry,
  registerInterpreter,
  registrationLine,
  unregisterInterpreter,
} from '../../electron/engine/usermode/binfmt.ts';
import { hostArch } from '../../electron/engine/usermode/find.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'binfmt');
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function tempCopy(name: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-binfmt-'));
  temps.push(dir);
  chmodSync(dir, 0o755);
  const dest = path.join(dir, name);
  cpSync(path.join(FIX, name), dest, { recursive: true });
  return dest;
}

/** Every file's name and bytes, to prove a directory was not changed. */
function snapshot(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort())
    h.update(f)
      .update('\0')
      .update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

/** The kernel's match rule (fs/binfmt_misc.c, check_file): every byte equal under the mask. */
function kernelMatches(file: string, magic: Buffer, mask: Buffer): boolean {
  const head = Buffer.alloc(magic.length);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  return [...magic].every((m, i) => ((head[i]! ^ m) & mask[i]!) === 0);
}

function unescapeField(field: string): Buffer {
  return Buffer.from(field.replace(/\\x/g, ''), 'hex');
}

describe('binfmt_misc status from prepared directories', () => {
  it('reads a Debian-like mount: entries, flags, magic, and the architecture each one runs', () => {
    const s = binfmtStatus(path.join(FIX, 'debian'));
    expect(s.mounted).toBe(true);
    expect(s.enabled).toBe(true);
    expect(s.message).toBeUndefined();
    const by = Object.fromEntries(s.entries.map((e) => [e.name, e]));
    expect(Object.keys(by).sort()).toEqual([
      'jar',
      'python3.11',
      'qemu-aarch64',
      'qemu-arm',
      'qemu-riscv64',
      'qemu-s390x',
    ]);
    expect(by['qemu-aarch64']).toEqual({
      name: 'qemu-aarch64',
      enabled: true,
      interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P',
      flags: { P: true, O: true, C: true, F: true },
      offset: 0,
      magic: '7f454c460201010000000000000000000200b700',
      mask: 'ffffffffffffff00fffffffffffffffffeffffff',
      arch: 'aarch64',
    });
    expect(by['qemu-arm']!.enabled).toBe(false);
    expect(by['qemu-arm']!.arch).toBe('armv7l');
    expect(by['qemu-riscv64']!.arch).toBe('riscv64');
    // Big-endian: e_machine sits in the other byte order.
    expect(by['qemu-s390x']!.arch).toBe('s390x');
    expect(by['qemu-s390x']!.flags).toEqual({ P: false, O: false, C: false, F: true });
    // Not ELF: no architecture. No mask line: none in the entry.
    expect(by['python3.11']!.arch).toBeUndefined();
    expect(by['python3.11']!.mask).toBeUndefined();
    expect(by['python3.11']!.flags).toEqual({ P: false, O: false, C: false, F: false });
    expect(by.jar).toMatchObject({ extension: 'jar', interpreter: '/usr/bin/jexec' });
    expect(by.jar!.magic).toBeUndefined();
  });

  it('reports a globally disabled binfmt_misc', () => {
    const s = binfmtStatus(path.join(FIX, 'disabled'));
    expect(s).toMatchObject({ mounted: true, enabled: false, entries: [] });
    expect(s.message).toMatch(/switched off/);
  });

  it('says so when binfmt_misc is not mounted', () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'stacklab-binfmt-none-'));
    temps.push(empty);
    const s = binfmtStatus(empty);
    expect(s).toMatchObject({ mounted: false, entries: [] });
    expect(s.message).toBe(
      `binfmt_misc is not mounted at ${empty} (as root: mount -t binfmt_misc binfmt_misc ${empty})`,
    );
  });

  it('refuses an entry not in the kernel format, in one line naming it', () => {
    expect(() => binfmtStatus(path.join(FIX, 'malformed'))).toThrow(
      /^binfmt_misc entry "qemu-aarch64" is not in the kernel's format: unknown flag "X"$/,
    );
    expect(() => parseBinfmtEntry('x', 'maybe\n')).toThrow(/first line is "maybe"/);
    expect(() => parseBinfmtEntry('x', 'enabled\nflags: F\noffset 0\nmagic 7f\n')).toThrow(
      /no interpreter line/,
    );
    expect(() =>
      parseBinfmtEntry('x', 'enabled\ninterpreter /x\nflags: \noffset 0\nmagic 7f45\nmask ff\n'),
    ).toThrow(/mask and magic differ in length/);
  });
});

describe('registration line from ELF header fields', () => {
  it('matches what Debian registers for aarch64 and riscv64 (the same kernel-visible bytes)', () => {
    const deb = binfmtStatus(path.join(FIX, 'debian')).entries;
    for (const arch of ['aarch64', 'riscv64', 's390x', 'armv7l']) {
      const { magic, mask } = elfBinfmtPattern(arch);
      const theirs = deb.find((e) => e.arch === arch)!;
      expect(magic.toString('hex'), arch).toBe(theirs.magic);
      expect(mask.toString('hex'), arch).toBe(theirs.mask);
    }
  });

  it('builds :name:M:offset:magic:mask:interpreter:flags with every magic byte escaped', () => {
    const line = registrationLine('arm64', '/usr/bin/qemu-aarch64-static');
    const fields = line.split(':');
    expect(fields).toHaveLength(8);
    expect(fields.slice(0, 4)).toEqual(['', 'qemu-aarch64', 'M', '0']);
    expect(fields[4]).toMatch(/^(\\x[0-9a-f]{2}){20}$/);
    expect(unescapeField(fields[4]!).toString('hex')).toBe('7f454c460201010000000000000000000200b700');
    expect(unescapeField(fields[5]!).toString('hex')).toBe('ffffffffffffff00fffffffffffffffffeffffff');
    expect(fields.slice(6)).toEqual(['/usr/bin/qemu-aarch64-static', 'F']);
    expect(() => registrationLine('aarch64', 'qemu-aarch64-static')).toThrow(/must be an absolute path/);
    expect(() => registrationLine('aarch64', '/opt/a:b/qemu')).toThrow(/contains ":"/);
  });

  it('matches real ELF programs of its architecture and no others, by the kernel rule', () => {
    // The host's own programs are real x86-64 (or whatever this host is) ELF files; the
    // static emulators are executables (ET_EXEC or ET_DYN) — both must match their arch.
    const hostProgram = process.execPath;
    const host = hostArch();
    const own = elfBinfmtPattern(host);
    expect(kernelMatches(hostProgram, own.magic, own.mask)).toBe(true);
    expect(kernelMatches('/bin/sh', own.magic, own.mask)).toBe(true);
    for (const other of ['aarch64', 'armv7l', 'riscv64', 's390x', 'i686', 'x86_64'].filter(
      (a) => a !== host,
    )) {
      const p = elfBinfmtPattern(other);
      expect(kernelMatches(hostProgram, p.magic, p.mask), other).toBe(false);
    }
  });
});

const isRoot = process.getuid?.() === 0;
const setpriv = spawnSync('setpriv', ['--version']).status === 0;
if (!isRoot || !setpriv) {
  console.warn('skipping the unprivileged-registration tests: they drop from root to nobody with setpriv');
}

/** Runs `body` (TypeScript, may await) as uid/gid 65534 with no groups; returns its output. */
function asNobody(body: string): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-nobody-'));
  temps.push(dir);
  chmodSync(dir, 0o755);
  const script = path.join(dir, 'script.mts');
  writeFileSync(script, body, { mode: 0o644 });
  const r = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '--import', 'tsx', script],
    {
      cwd: ROOT,
      encoding: 'utf8',
      // No desktop session (so no pkexec); PATH as a login would give it.
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' },
      timeout: 60_000,
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!isRoot || !setpriv)('changing binfmt_misc without rights', () => {
  const mod = path.join(ROOT, 'electron', 'engine', 'usermode', 'binfmt.ts');

  it('register as an ordinary user: one line saying it needs root, nothing changed', () => {
    const dir = tempCopy('debian');
    const before = snapshot(dir);
    const r = asNobody(`
      import { registerInterpreter } from ${JSON.stringify(mod)};
      const notes: string[] = [];
      try {
        await registerInterpreter('ppc64le', { dir: ${JSON.stringify(dir)}, interpreter: '/usr/bin/qemu-ppc64le-static', onNote: (l) => notes.push(l) });
        console.log(JSON.stringify({ ok: true, notes }));
      } catch (e) {
        console.log(JSON.stringify({ ok: false, error: (e as Error).message, notes }));
      }
    `);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { ok: boolean; error: string; notes: string[] };
    expect(out.ok).toBe(false);
    expect(out.error).toMatch(/^registering qemu-ppc64le with binfmt_misc needs root and /);
    expect(out.error).toMatch(/: run "stacklab binfmt register ppc64le" as root — nothing was changed$/);
    expect(out.error).not.toContain('\n');
    // If a way to ask for root existed it must have been announced before being tried.
    if (/refused/.test(out.error))
      expect(out.notes.join('\n')).toMatch(/needs root: asking through (sudo -n|pkexec)/);
    expect(snapshot(dir)).toBe(before);
  });

  it('unregister as an ordinary user: the same refusal, the entry still there', () => {
    const dir = tempCopy('debian');
    const before = snapshot(dir);
    const r = asNobody(`
      import { unregisterInterpreter } from ${JSON.stringify(mod)};
      try { await unregisterInterpreter('aarch64', { dir: ${JSON.stringify(dir)} }); console.log('changed'); }
      catch (e) { console.log((e as Error).message); }
    `);
    expect(r.stdout.trim()).toMatch(
      /^removing qemu-aarch64 from binfmt_misc needs root and .* — nothing was changed$/,
    );
    expect(snapshot(dir)).toBe(before);
  });
});

describe('registration checks that need no rights', () => {
  it('refuses when binfmt_misc is not mounted, the arch is the host, or the interpreter is dynamic', async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'stacklab-binfmt-none-'));
    temps.push(empty);
    await expect(registerInterpreter('riscv64', { dir: empty, escalate: 'never' })).rejects.toThrow(
      /^binfmt_misc is not mounted at /,
    );
    const dir = tempCopy('disabled');
    await expect(registerInterpreter(hostArch(), { dir, escalate: 'never' })).rejects.toThrow(
      /is this machine's own architecture/,
    );
    // Node itself is dynamically linked: the F flag would make it useless inside a foreign rootfs.
    await expect(
      registerInterpreter('riscv64', { dir, interpreter: process.execPath, escalate: 'never' }),
    ).rejects.toThrow(/is dynamically linked: binfmt's F flag needs a static emulator/);
    expect(readFileSync(path.join(dir, 'register'), 'utf8')).toBe('');
  });

  it('will not register over an existing entry, nor remove one it does not know', async () => {
    const dir = tempCopy('debian');
    const before = snapshot(dir);
    await expect(registerInterpreter('arm64', { dir, escalate: 'never' })).rejects.toThrow(
      /^aarch64 programs are already handled by binfmt entry "qemu-aarch64" \(\/usr\/libexec\/qemu-binfmt\/aarch64-binfmt-P\)/,
    );
    // armhf and armel share qemu-arm: the disabled qemu-arm entry still counts.
    await expect(registerInterpreter('armel', { dir, escalate: 'never' })).rejects.toThrow(
      /already handled by binfmt entry "qemu-arm"/,
    );
    await expect(unregisterInterpreter('ppc64le', { dir, escalate: 'never' })).rejects.toThrow(
      /^no binfmt_misc entry for ppc64le in /,
    );
    expect(snapshot(dir)).toBe(before);
  });

  it.skipIf(!isRoot)(
    'as root, writes exactly the registration line (a plain directory then shows no new entry)',
    async () => {
      // A prepared directory is not the kernel: the write lands in the file and no entry appears.
      const dir = tempCopy('disabled');
      await expect(
        registerInterpreter('riscv64', {
          dir,
          interpreter: '/usr/bin/qemu-riscv64-static',
          escalate: 'never',
        }),
      ).rejects.toThrow(/no entry appeared .*is it a real binfmt_misc mount\?$/);
      expect(readFileSync(path.join(dir, 'register'), 'utf8')).toBe(
        `${registrationLine('riscv64', '/usr/bin/qemu-riscv64-static')}\n`,
      );
    },
  );
});
