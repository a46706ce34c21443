// The engine end to end through the real CLI: real QEMU booting the demo guests, a
// command's exit status coming back, the engine SIGKILLed mid-boot, and bad input.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, demoGuests, NO_GUESTS, runCli, tempHome } from '../helpers/cli.ts';
import { qemuPidsWith } from '../helpers/processes.ts';

const guests = demoGuests();
if (!guests) console.warn(`skipping engine boot tests: ${NO_GUESTS}`);
const homes: string[] = [];
const env = () => {
  const home = tempHome();
  homes.push(home);
  return { ...process.env, STACKLAB_HOME: home };
};

afterAll(() => {
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function rootfsOf(deployDir: string): string {
  const f = readdirSync(deployDir).find((n) => /\.rootfs\.(ext4|wic)$/.test(n));
  if (!f) throw new Error(`no rootfs in ${deployDir}`);
  return path.join(deployDir, f);
}

const expectedArch: Record<string, string> = {
  'demo-qemuarm64': 'aarch64',
  'demo-qemux86-64': 'x86_64',
  'demo-raspberrypi3-64': 'aarch64',
};

describe.skipIf(!guests)('boot the demo guests in real QEMU', () => {
  for (const [name, arch] of Object.entries(expectedArch)) {
    it(`${name}: --run 'uname -m' prints ${arch}, base image unchanged`, async () => {
      const g = guests!.find((x) => x.name === name);
      expect(g, `${name} missing from guests.json`).toBeDefined();
      const base = rootfsOf(g!.deployDir);
      const before = sha256(base);
      const r = await runCli(['boot', name, '--run', 'uname -m'], { env: env() });
      expect(r.stderr).not.toMatch(/stacklab: /);
      expect(r.stdout.trim()).toBe(arch);
      expect(r.code).toBe(0);
      expect(sha256(base)).toBe(before);
    });
  }

  it("a failing command's status is the CLI's exit status", async () => {
    const r = await runCli(['boot', 'demo-qemuarm64', '--run', 'echo out; exit 3'], { env: env() });
    expect(r.stdout.trim()).toBe('out');
    expect(r.code).toBe(3);
  });

  it('SIGKILL of the engine mid-boot leaves no QEMU behind', async () => {
    const e = env();
    const child = spawn(process.execPath, [CLI, 'boot', 'demo-qemuarm64', '--headless'], {
      env: e,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (b) => {
        out += b;
        const m = /\(pid (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`CLI exited before booting: ${out}`)));
    });
    const mine = e.STACKLAB_HOME!;
    expect(qemuPidsWith(mine)).toContain(pid);
    child.kill('SIGKILL');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && qemuPidsWith(mine).length > 0)
      await new Promise((r) => setTimeout(r, 100));
    expect(qemuPidsWith(mine)).toEqual([]);
    // The next engine starts cleanly and nothing is listed as running.
    const ps = await runCli(['ps', '--json'], { env: e });
    expect(JSON.parse(ps.stdout)).toEqual([]);
  });
});

describe.skipIf(!guests)('bad input gets one clear line, a non-zero exit, and the base untouched', () => {
  // A copy of demo-qemuarm64 in a directory whose name has spaces and quotes.
  const copy = () => {
    const g = guests!.find((x) => x.name === 'demo-qemuarm64')!;
    const dir = path.join(tempHome('stacklab bad "input" it\'s-'), `deploy dir "quoted" it's`);
    homes.push(path.dirname(dir));
    cpSync(g.deployDir, dir, { recursive: true });
    return dir;
  };
  const conf = (dir: string) => path.join(dir, readdirSync(dir).find((n) => n.endsWith('.qemuboot.conf'))!);
  const expectOneLine = (r: { code: number | null; stderr: string }, re: RegExp) => {
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^stacklab: /);
    expect(lines[0]).toMatch(re);
  };

  it('a path with spaces and quotes boots', async () => {
    const dir = copy();
    const r = await runCli(['boot', dir, '--run', 'uname -m'], { env: env() });
    expect(r.stdout.trim()).toBe('aarch64');
    expect(r.code).toBe(0);
  });

  it('missing kernel', async () => {
    const dir = copy();
    rmSync(path.join(dir, 'Image-qemuarm64.bin'));
    const before = sha256(rootfsOf(dir));
    expectOneLine(await runCli(['boot', dir, '--run', 'true'], { env: env() }), /kernel/i);
    expect(sha256(rootfsOf(dir))).toBe(before);
  });

  it('a qemuboot.conf naming a machine this QEMU lacks', async () => {
    const dir = copy();
    const c = conf(dir);
    writeFileSync(
      c,
      readFileSync(c, 'utf8').replace(/^qb_machine = .*$/m, 'qb_machine = -machine nosuchboard'),
    );
    const before = sha256(rootfsOf(dir));
    expectOneLine(await runCli(['boot', dir, '--run', 'true'], { env: env() }), /nosuchboard/);
    expect(sha256(rootfsOf(dir))).toBe(before);
  });

  it('a truncated rootfs', async () => {
    const dir = copy();
    truncateSync(rootfsOf(dir), 1024 * 1024);
    expectOneLine(await runCli(['boot', dir, '--run', 'true'], { env: env() }), /truncated/i);
  });

  it('a kernel for the wrong architecture', async () => {
    const dir = copy();
    const x86 = guests!.find((x) => x.name === 'demo-qemux86-64')!;
    cpSync(path.join(x86.deployDir, 'bzImage-qemux86-64.bin'), path.join(dir, 'Image-qemuarm64.bin'));
    expectOneLine(await runCli(['boot', dir, '--run', 'true'], { env: env() }), /x86|architecture|arm64/i);
  });

  it('no QEMU at all', async () => {
    // An empty PATH (node is started by its absolute path), no bundle, no configured path.
    const emptyBin = tempHome('stacklab-empty-path-');
    homes.push(emptyBin);
    const e = { ...env(), PATH: emptyBin, STACKLAB_QEMU_BUNDLE: path.join(os.tmpdir(), 'no-such-bundle') };
    expectOneLine(await runCli(['boot', 'demo-qemuarm64', '--run', 'true'], { env: e }), /QEMU/);
  });

  it('an unknown image name', async () => {
    expectOneLine(
      await runCli(['boot', 'no-such-image', '--run', 'true'], { env: env() }),
      /no image called/,
    );
  });
});
