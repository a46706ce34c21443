// Real discovery on this machine: Debian's QEMU on PATH, its boards, and the accelerator
// probe really starting test VMs (KVM is present here but QEMU cannot run guests under it).
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BOARD_PROFILES, boardAvailable } from '../../electron/engine/image/boards.ts';
import { accelCacheFile, probeAccelerators, probeAll } from '../../electron/engine/qemu/accel.ts';
import { findQemu, hasMachine, listMachines, qemuVersion } from '../../electron/engine/qemu/discovery.ts';
import { removeTempDirs, tempDir } from '../helpers/deploy-fixtures.ts';

const emptyBundle = () =>
  path.join(tempDir(), 'resources', 'qemu', `${process.platform}-${process.arch}`, 'bin');
const onPath = (process.env.PATH ?? '')
  .split(path.delimiter)
  .some((d) => existsSync(path.join(d, 'qemu-system-aarch64')));
if (!onPath)
  console.log(
    'skipping QEMU discovery tests: no qemu-system-aarch64 on PATH (apt-get install qemu-system-arm qemu-system-x86 qemu-utils)',
  );

/** QEMU processes still running whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(Number(pid));
    } catch {
      // gone already
    }
  }
  return out;
}

describe.skipIf(!onPath)('QEMU discovery', () => {
  it('finds the system QEMU and says why the bundled one was not used', async () => {
    const bundled = emptyBundle();
    const q = await findQemu({ bundledDir: bundled });
    expect(q.source).toBe('system');
    expect(q.why).toMatch(
      new RegExp(
        `^no bundled QEMU in ${bundled.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; using .+ from PATH$`,
      ),
    );
    for (const s of ['qemu-system-aarch64', 'qemu-system-x86_64', 'qemu-system-arm']) {
      expect(path.isAbsolute(q.systems[s] ?? '')).toBe(true);
    }
    expect(q.img && path.basename(q.img)).toBe('qemu-img');
  });

  it('prefers a bundled copy, then a configured path (a binary or a directory)', async () => {
    const real = (await findQemu({ bundledDir: emptyBundle() })).systems['qemu-system-aarch64'] as string;
    const bundled = emptyBundle();
    mkdirSync(bundled, { recursive: true });
    copyFileSync(real, path.join(bundled, 'qemu-system-aarch64'));
    chmodSync(path.join(bundled, 'qemu-system-aarch64'), 0o755);
    const b = await findQemu({ bundledDir: bundled, configuredPath: '/usr/bin' });
    expect(b.source).toBe('bundled');
    expect(b.systems).toEqual({ 'qemu-system-aarch64': path.join(bundled, 'qemu-system-aarch64') });
    expect(b.img).toBeUndefined();

    const c = await findQemu({ bundledDir: emptyBundle(), configuredPath: real });
    expect(c.source).toBe('configured');
    expect(c.systems['qemu-system-aarch64']).toBe(real);
    expect(c.why).toContain(`using the configured QEMU in ${path.dirname(real)}`);

    const bad = await findQemu({ bundledDir: emptyBundle(), configuredPath: '/nonexistent/qemu' });
    expect(bad.source).toBe('system');
    expect(bad.why).toContain('the configured path /nonexistent/qemu has no qemu-system binary');
  });

  it('fails with one line saying what was searched and how to install', async () => {
    const bundled = emptyBundle();
    const err = await findQemu({ bundledDir: bundled, env: { PATH: tempDir() } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toBe(
      `No QEMU found (no bundled QEMU in ${bundled}; none on PATH): install it with: apt-get install qemu-system-arm qemu-system-x86 qemu-utils (Debian/Ubuntu)`,
    );
  });

  it("reads Debian's QEMU 7.2 version and board lists", async () => {
    const q = await findQemu({ bundledDir: emptyBundle() });
    const a64 = q.systems['qemu-system-aarch64'] as string;
    const v = await qemuVersion(a64);
    expect([v.major, v.minor]).toEqual([7, 2]);
    expect(v.text).toMatch(/^QEMU emulator version 7\.2\.\d+/);
    expect((await qemuVersion(q.img as string)).text).toMatch(/^qemu-img version 7\.2/);

    const machines = await listMachines(a64);
    expect(machines.find((m) => m.name === 'virt')).toEqual({
      name: 'virt',
      description: 'QEMU 7.2 ARM Virtual Machine',
      isDefault: false,
      alias: 'virt-7.2',
    });
    expect(machines.some((m) => m.name === 'raspi3b')).toBe(true);
    expect(await hasMachine(a64, 'raspi3b')).toBe(true);
    expect(await hasMachine(a64, 'raspi4b')).toBe(false);
    const x86 = await listMachines(q.systems['qemu-system-x86_64'] as string);
    expect(x86.filter((m) => m.isDefault).map((m) => m.name)).toEqual(['pc-i440fx-7.2']);
    expect(x86.find((m) => m.name === 'q35')?.alias).toBe('pc-q35-7.2');

    expect(boardAvailable(BOARD_PROFILES['raspberrypi3-64'], v, machines)).toEqual({ ok: true });
    expect(boardAvailable(BOARD_PROFILES['raspberrypi4-64'], v, machines)).toEqual({
      ok: false,
      why: 'raspi4b needs QEMU 9.0 or newer; this QEMU is 7.2',
    });
  });
});

describe.skipIf(!onPath)('accelerator probe', () => {
  it('tries KVM by running a test VM, falls back to TCG with the reason, and caches the answer', async () => {
    const cache = tempDir('stacklab cache ');
    const env = { ...process.env, STACKLAB_CACHE: cache };
    const q = await findQemu({ bundledDir: emptyBundle() });
    const x86 = q.systems['qemu-system-x86_64'] as string;

    const first = await probeAccelerators(x86, { env });
    console.log(`accel probe for ${x86}: ${JSON.stringify(first.accels)}; best=${first.best}`);
    expect(first.fromCache).toBeUndefined();
    expect(first.accels.map((a) => a.name)).toEqual(['kvm', 'tcg']);
    const kvm = first.accels[0];
    const tcg = first.accels[1];
    expect(tcg).toMatchObject({ name: 'tcg', ok: true });
    expect(tcg?.reason).toMatch(/^a test VM ran its first instructions in \d+ ms$/);
    // One line, not QEMU's register dump.
    expect(kvm?.reason.length).toBeGreaterThan(5);
    expect(kvm?.reason).not.toMatch(/\n|RAX=|extra data/);
    if (kvm?.ok) {
      expect(first.best).toBe('kvm');
    } else {
      // On these machines /dev/kvm opens but the first FPU instruction fails.
      expect(first.best).toBe('tcg');
      expect(first.why).toBe(
        `no working hardware accelerator (kvm: ${kvm?.reason}); using TCG software emulation`,
      );
    }
    // Nothing the probe started is still running.
    expect(processesMentioning(cache)).toEqual([]);

    // The cache file holds the answer, keyed by this binary; a second call is served from it.
    const file = accelCacheFile(env);
    expect(file).toBe(path.join(cache, 'probe', 'accel.json'));
    const stored = JSON.parse(readFileSync(file, 'utf8')) as {
      entries: Record<string, { binary: string; why: string }>;
    };
    const keys = Object.keys(stored.entries);
    expect(keys).toHaveLength(1);
    const key = keys[0] as string;
    expect(key.startsWith(`${x86}|`)).toBe(true);
    expect(stored.entries[key]?.binary).toBe(x86);
    (stored.entries[key] as { why: string }).why = 'written into the cache by the test';
    writeFileSync(file, JSON.stringify(stored));
    const second = await probeAccelerators(x86, { env });
    expect(second.fromCache).toBe(true);
    expect(second.why).toBe('written into the cache by the test');
    // refresh ignores it.
    const third = await probeAccelerators(x86, { env, refresh: true });
    expect(third.why).not.toBe('written into the cache by the test');
  });

  it('probes every binary: arm guests on this x86 host get TCG, and say why', async () => {
    const env = { ...process.env, STACKLAB_CACHE: tempDir() };
    const q = await findQemu({ bundledDir: emptyBundle() });
    const all = await probeAll(q, { env });
    const a64 = all['qemu-system-aarch64'];
    expect(a64?.best).toBe('tcg');
    expect(a64?.accels.find((a) => a.name === 'tcg')?.ok).toBe(true);
    if (process.arch === 'x64') {
      expect(a64?.accels[0]).toEqual({
        name: 'kvm',
        ok: false,
        reason: 'kvm only runs x86_64 guests on this x86_64 host; this binary emulates aarch64',
      });
      expect(a64?.why).toBe(
        'no hardware accelerator runs aarch64 guests on this x86_64 host; using TCG software emulation',
      );
    }
    expect(all['qemu-system-arm']?.accels.find((a) => a.name === 'tcg')?.ok).toBe(true);
    const stored = JSON.parse(readFileSync(accelCacheFile(env), 'utf8')) as {
      entries: Record<string, unknown>;
    };
    expect(Object.keys(stored.entries).length).toBe(Object.keys(q.systems).length);
  });
});

describe.skipIf(process.platform === 'win32')('accelerator probe against a QEMU that hangs', () => {
  it('gives up after the timeout, kills what it started, says "hung" and caches nothing', async () => {
    // A wedged QEMU cannot be made on purpose with the real binary, so this stand-in answers
    // the two questions discovery asks and otherwise never exits. It execs one long-lived
    // process that keeps QEMU's arguments (with the cache path) in its command line.
    const dir = tempDir('hang ');
    const fake = path.join(dir, 'qemu-system-x86_64');
    writeFileSync(
      fake,
      [
        '#!/bin/sh',
        'case "$1" in',
        '  --version) echo "QEMU emulator version 7.2.0";;',
        '  -accel) printf "Accelerators supported in QEMU binary:\\ntcg\\nkvm\\n";;',
        `  *) exec '${process.execPath}' -e 'setTimeout(() => {}, 60000)' -- "$@";;`,
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    const env = { ...process.env, STACKLAB_CACHE: tempDir() };
    const t0 = Date.now();
    const r = await probeAccelerators(fake, { env, timeoutMs: 1000 });
    const tcg = r.accels.find((a) => a.name === 'tcg');
    expect(tcg).toEqual({ name: 'tcg', ok: false, reason: 'hung for 1 s' });
    if (process.platform === 'linux' && existsSync('/dev/kvm')) {
      expect(r.accels[0]?.reason).toMatch(/^(hung for 1 s|no read\/write access to \/dev\/kvm.*)$/);
    }
    expect(r.best).toBe('tcg');
    expect(r.why).toContain('note that the TCG test also failed: hung for 1 s');
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((res) => setTimeout(res, 200));
    expect(processesMentioning(path.join(env.STACKLAB_CACHE, 'probe', 'firmware-x86_64.bin'))).toEqual([]);
    expect(existsSync(accelCacheFile(env))).toBe(false);
  });
});

afterAll(removeTempDirs);
