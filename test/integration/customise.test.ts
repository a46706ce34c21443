// "Try, customise, flash" end to end with the real engine and real QEMU: customise the
// demo qemuarm64 image (hostname, an SSH key, a user), boot it, read the settings back from
// inside the guest over its serial console, stop it — the base image unchanged throughout —
// then flash exactly the bytes that booted to a file.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { flashCommands } from '../../electron/cli/flash-commands.ts';
import { customiseVm, resetCustomisation } from '../../electron/engine/customise/vm.ts';
import { readWorkingBase } from '../../electron/engine/disk/workbase.ts';
import { flashVm } from '../../electron/engine/flash/flash-vm.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import { runInGuest } from '../../electron/engine/vm/guest-shell.ts';
import type { Vm } from '../../electron/engine/vm/vm.ts';
import { demoGuests, NO_GUESTS } from '../helpers/cli.ts';

const guests = demoGuests();
const arm = guests?.find((g) => g.name === 'demo-qemuarm64');
if (!arm) console.warn(`skipping the customise round trip: ${NO_GUESTS}`);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-customise-'));
const home = path.join(tmp, 'home');
const env = { ...process.env, STACKLAB_HOME: home };
let engine: Engine | undefined;
const vms: Vm[] = [];

const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const rootfsOf = (dir: string) => path.join(dir, readdirSync(dir).find((n) => /\.rootfs\.ext4$/.test(n))!);

/** A real ed25519 public key from ssh-keygen when there is one; else one assembled by hand. */
function publicKey(): string {
  const f = path.join(tmp, 'id_ed25519');
  if (
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tester@stacklab', '-f', f]).status === 0
  )
    return readFileSync(`${f}.pub`, 'utf8').trim();
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, name.length]),
    name,
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, 5),
  ]);
  return `ssh-ed25519 ${blob.toString('base64')} tester@stacklab`;
}

async function stop(vm: Vm): Promise<void> {
  const ch = vm.consoles[0];
  if (ch && !vm.exit) ch.write('sync; poweroff -f\r');
  await Promise.race([vm.waitExit(), new Promise((r) => setTimeout(r, 5000))]);
  await vm.stop({ force: true });
}

beforeAll(async () => {
  if (arm) engine = await createEngine({ env });
});

afterAll(async () => {
  for (const vm of vms) await stop(vm).catch(() => undefined);
  await engine?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!arm)('customise demo-qemuarm64, boot it, read the settings from inside', () => {
  const key = publicKey();
  let base = '';
  let baseSha = '';
  let derived = '';

  it('customising derives a working base and leaves the base image alone', async () => {
    base = rootfsOf(arm!.deployDir);
    baseSha = sha256(base);
    const r = await customiseVm(engine!, 'demo-qemuarm64', {
      hostname: 'tried-before-flashed',
      sshAuthorizedKey: key,
      user: { name: 'bob', password: 'hunter2 is my password' },
    });
    expect(r).toMatchObject({ vmId: 'demo-qemuarm64', cached: false, flavour: 'rootfs' });
    expect(r.changes.join('\n')).toMatch(/user bob/);
    derived = r.path;
    expect(existsSync(derived)).toBe(true);
    expect(path.dirname(path.dirname(derived))).toBe(path.join(home, 'vms', 'demo-qemuarm64'));
    expect(readWorkingBase(path.dirname(path.dirname(derived)))?.changes).toEqual(r.changes);
    // The working base is an ext4 that e2fsck accepts.
    const fsck = spawnSync('e2fsck', ['-fn', derived], { encoding: 'utf8' });
    if (!fsck.error) expect(fsck.status, fsck.stdout).toBe(0);
    expect(sha256(base)).toBe(baseSha);
  });

  it('the VM boots the customised copy: hostname, authorised key and user read back in the guest', async () => {
    const image = await engine!.library.resolve('demo-qemuarm64');
    const vm = await engine!.supervisor.boot(image);
    vms.push(vm);
    const ch = vm.consoles[0]!;
    const sh = async (cmd: string) => {
      const r = await runInGuest(ch, cmd, { timeoutMs: 180_000 });
      expect(r.status, `${cmd}: ${r.output}`).toBe(0);
      return r.output.trim();
    };
    expect(await sh('hostname')).toBe('tried-before-flashed');
    expect(await sh('cat /etc/hostname')).toBe('tried-before-flashed');
    expect(await sh('cat /root/.ssh/authorized_keys')).toBe(key);
    expect(await sh('stat -c "%a %u" /root/.ssh /root/.ssh/authorized_keys')).toBe('700 0\n600 0');
    expect(await sh('grep ^bob: /etc/passwd')).toBe('bob:x:1000:1000:bob:/home/bob:/bin/sh');
    expect(await sh('stat -c "%u:%g" /home/bob /home/bob/.ssh/authorized_keys')).toBe('1000:1000\n1000:1000');
    // The guest's own crypt (busybox mkpasswd) agrees with the hash Stacklab wrote.
    const hash = await sh('grep ^bob: /etc/shadow | cut -d: -f2');
    const salt = hash.split('$')[2]!;
    expect(await sh(`mkpasswd -m sha512 'hunter2 is my password' '${salt}'`)).toBe(hash);

    // Another Stacklab process (its own engine, same data) may not pull the disk from under it.
    const other = await createEngine({ env });
    try {
      await expect(
        customiseVm(other, 'demo-qemuarm64', { hostname: 'x' }, { resetDisk: true }),
      ).rejects.toThrow(
        /^demo-qemuarm64 is running in another Stacklab window or process; stop it before customising it$/,
      );
    } finally {
      await other.dispose();
    }
    await expect(customiseVm(engine!, 'demo-qemuarm64', { hostname: 'x' })).rejects.toThrow(
      /^demo-qemuarm64 is running; stop it/,
    );

    await stop(vm);
    // The VM's overlay sits on the derived working base.
    const info = JSON.parse(
      execFileSync(
        'qemu-img',
        ['info', '--output=json', '-U', path.join(home, 'vms', 'demo-qemuarm64', 'disk.qcow2')],
        { encoding: 'utf8' },
      ),
    ) as { 'backing-filename': string };
    expect(info['backing-filename']).toBe(derived);
    expect(sha256(base)).toBe(baseSha);
  });

  it('"flash this" writes exactly the working base that booted, not the pristine image', async () => {
    const out = path.join(tmp, 'card.img');
    const r = await flashVm(engine!, 'demo-qemuarm64', { target: { file: out }, verify: true });
    expect(r).toMatchObject({ source: derived, customised: true, verified: true });
    expect(sha256(out)).toBe(sha256(derived));
    expect(sha256(out)).not.toBe(baseSha);
  });

  it('the same customisation is reused; a different one needs the old disk given up; reset restores the pristine image', async () => {
    const same = await customiseVm(engine!, 'demo-qemuarm64', {
      hostname: 'tried-before-flashed',
      sshAuthorizedKey: key,
      user: { name: 'bob', password: 'hunter2 is my password' },
    });
    expect(same).toMatchObject({ cached: true, path: derived });
    await expect(customiseVm(engine!, 'demo-qemuarm64', { hostname: 'other' })).rejects.toThrow(
      /^demo-qemuarm64 has a disk with changes from earlier runs; customising starts a fresh one/,
    );
    const other = await customiseVm(engine!, 'demo-qemuarm64', { hostname: 'other' }, { resetDisk: true });
    expect(other.path).not.toBe(derived);
    expect(existsSync(derived)).toBe(false); // only the current working base is kept
    expect(await resetCustomisation(engine!, 'demo-qemuarm64')).toEqual({
      vmId: 'demo-qemuarm64',
      dropped: true,
    });
    expect(readWorkingBase(path.join(home, 'vms', 'demo-qemuarm64'))).toBeUndefined();
    expect(existsSync(other.path)).toBe(false);
    expect(sha256(base)).toBe(baseSha);
  });

  it('stacklab customise (CLI command): secrets from files, one-line usage errors', async () => {
    const pw = path.join(tmp, 'pw.txt');
    writeFileSync(pw, 'from-a-file\n');
    const keyFile = path.join(tmp, 'key.pub');
    writeFileSync(keyFile, `${key}\n`);
    const saved = process.env.STACKLAB_HOME;
    process.env.STACKLAB_HOME = home;
    let printed = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      printed += c.toString();
      return true;
    });
    try {
      const cmd = flashCommands.customise!;
      await expect(cmd.run({ user: 'carol' }, ['demo-qemuarm64'])).rejects.toThrow(
        /^--user needs --password-file/,
      );
      await expect(cmd.run({ 'wifi-ssid': 'x' }, ['demo-qemuarm64'])).rejects.toThrow(/^Wi-Fi needs all of/);
      await expect(cmd.run({ hostname: 'bad_name' }, ['demo-qemuarm64'])).rejects.toThrow(
        /^hostname may only hold/,
      );
      await expect(cmd.run({}, ['demo-qemuarm64'])).rejects.toThrow(/^nothing to customise/);
      const code = await cmd.run(
        { hostname: 'from-cli', user: 'carol', 'password-file': pw, 'ssh-key': keyFile, json: true },
        ['demo-qemuarm64'],
      );
      expect(code).toBe(0);
      const r = JSON.parse(printed) as { path: string; changes: string[] };
      expect(r.changes.join('\n')).toMatch(/user carol/);
      const shadow = execFileSync('debugfs', ['-R', 'cat /etc/shadow', r.path], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const hash = shadow
        .split('\n')
        .find((l) => l.startsWith('carol:'))!
        .split(':')[1]!;
      // The password is the file's first line, without its newline.
      expect(hash).toBe(
        execFileSync('openssl', ['passwd', '-6', '-salt', hash.split('$')[2]!, 'from-a-file'], {
          encoding: 'utf8',
        }).trim(),
      );
    } finally {
      spy.mockRestore();
      process.env.STACKLAB_HOME = saved;
    }
    expect(sha256(base)).toBe(baseSha);
  });
});

const pi = guests?.find((g) => g.name === 'demo-raspberrypi3-64');
if (!pi) console.warn(`skipping the SD-card image round trip: ${NO_GUESTS}`);

describe.skipIf(!pi)(
  'customise the demo Raspberry Pi SD-card image (.wic: FAT boot + ext4 root partitions)',
  () => {
    it('edits the root partition inside the card image and the raspi3b VM boots it', async () => {
      const wic = path.join(
        pi!.deployDir,
        readdirSync(pi!.deployDir).find((n) => n.endsWith('.rootfs.wic'))!,
      );
      const before = sha256(wic);
      const r = await customiseVm(engine!, 'demo-raspberrypi3-64', {
        hostname: 'pi-on-the-desk',
        keyboard: 'gb',
      });
      expect(r).toMatchObject({ flavour: 'rootfs', cached: false });
      const vm = await engine!.supervisor.boot(await engine!.library.resolve('demo-raspberrypi3-64'));
      vms.push(vm);
      const out = await runInGuest(vm.consoles[0]!, 'hostname; grep XKBLAYOUT /etc/default/keyboard', {
        timeoutMs: 180_000,
      });
      expect(out).toEqual({ status: 0, output: 'pi-on-the-desk\nXKBLAYOUT="gb"\n' });
      await stop(vm);
      expect(sha256(wic)).toBe(before);
    });
  },
);
