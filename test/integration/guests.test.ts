// The demo guests built by `npm run guests` boot in real QEMU (TCG) from their own
// qemuboot.conf, on a throw-away qcow2 overlay: root logs in at `login:` without a password,
// `uname -m` names the right architecture, and the base image is byte-for-byte unchanged.
// The argv is built here from the conf on purpose, independent of the engine's own builder.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { guestsDir } from '../../electron/engine/paths.ts';

interface GuestEntry {
  name: string;
  machine: string;
  arch: string;
  board: string;
  description: string;
  deployDir: string;
  qemubootConf: string;
}

const dir = guestsDir();
const listFile = path.join(dir, 'guests.json');
const guests: GuestEntry[] = existsSync(listFile) ? JSON.parse(readFileSync(listFile, 'utf8')) : [];
const skipReason = guests.length === 0 ? 'demo guests not built: run npm run guests' : undefined;
if (skipReason) console.log(`guests.test.ts skipped: ${skipReason} (looked in ${dir})`);

function parseQemuboot(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (b) => h.update(b))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The QEMU command line runqemu would give this guest (no network), on `overlay` instead of the base image. */
function argvFor(
  conf: Record<string, string>,
  deploy: string,
  overlay: string,
): { bin: string; args: string[] } {
  const args = [
    ...words(conf.qb_machine),
    ...words(conf.qb_cpu),
    ...words(conf.qb_smp),
    ...words(conf.qb_mem),
  ];
  args.push('-kernel', path.join(deploy, conf.qb_default_kernel!));
  if (conf.qb_dtb) args.push('-dtb', path.join(deploy, conf.qb_dtb));
  if (conf.qb_rootfs_opt) {
    args.push(
      ...words(conf.qb_rootfs_opt.replace('@ROOTFS@', overlay).replace('format=raw', 'format=qcow2')),
    );
  } else {
    args.push('-drive', `file=${overlay},if=virtio,format=qcow2`);
  }
  args.push(...words(conf.qb_serial_opt));
  args.push(...words((conf.qb_opt_append ?? '').replaceAll('@DEPLOY_DIR_IMAGE@', deploy)));
  const consoles = words(conf.serial_consoles).map((c) => {
    const [baud, tty] = c.split(';');
    return `console=${tty},${baud}`;
  });
  const cmdline = [
    `root=${conf.qb_kernel_root ?? '/dev/vda'}`,
    'rw',
    ...consoles,
    conf.qb_kernel_cmdline_append ?? '',
  ];
  args.push('-append', cmdline.join(' ').trim());
  args.push('-nic', 'none', '-display', 'none', '-monitor', 'none', '-serial', 'stdio');
  return { bin: conf.qb_system_name!, args };
}

/** A guest's first serial port on a pipe, with waits for what it prints. */
class SerialSession {
  readonly t0 = Date.now();
  text = '';
  private waiters: Array<() => void> = [];
  exited: string | undefined;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    const onData = (b: Buffer) => {
      this.text += b.toString('utf8');
      for (const w of this.waiters) w();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      this.exited = `QEMU exited (${signal ?? code})`;
      for (const w of this.waiters) w();
    });
  }

  /** Console text with terminal escapes (busybox asks for the cursor position: ESC[6n) removed. */
  get plain(): string {
    return this.text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  }

  /** Resolves with the match once `re` matches the console text after `from`; rejects on exit or timeout. */
  wait(re: RegExp, timeoutMs: number, from = 0): Promise<{ match: RegExpExecArray; atMs: number }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.plain.slice(from));
        if (m) {
          done();
          resolve({ match: m, atMs: Date.now() - this.t0 });
        } else if (this.exited) {
          done();
          reject(new Error(`${this.exited} before ${re}; last output:\n${this.plain.slice(-1500)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${re} within ${timeoutMs} ms; last output:\n${this.plain.slice(-1500)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** Types a command and returns the console text it printed up to the next prompt. */
  async run(cmd: string, timeoutMs = 60_000): Promise<string> {
    const from = this.plain.length;
    this.child.stdin.write(`${cmd}\n`);
    const { match } = await this.wait(PROMPT_AFTER_OUTPUT, timeoutMs, from);
    const out = this.plain.slice(from, from + match.index);
    return out.replace(/\r/g, '');
  }
}

// The milestones a supervisor would look for, as this suite sees them on the real consoles.
const LOGIN = /(\S+) login: $/;
const PROMPT = /root@[\w.-]+:[^\n#$]*# $/;
const PROMPT_AFTER_OUTPUT = /\n[^\n]*root@[\w.-]+:[^\n#$]*# $/;

const running = new Set<ChildProcessWithoutNullStreams>();
const timings: string[] = [];
let scratch: string | undefined;

function stopAll(): Promise<void> {
  const all = [...running];
  running.clear();
  return Promise.all(
    all.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  ).then(() => undefined);
}

afterEach(stopAll);
afterAll(async () => {
  await stopAll();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  if (timings.length)
    console.log(`demo guest boot times (TCG, load ${os.loadavg()[0]!.toFixed(1)}):\n${timings.join('\n')}`);
});

describe('demo guests', () => {
  it.skipIf(!!skipReason)('guests.json lists the four demo guests with their qemuboot.conf files', () => {
    expect(guests.map((g) => g.name).sort()).toEqual([
      'demo-qemuarm64',
      'demo-qemuarm64-host',
      'demo-qemux86-64',
      'demo-raspberrypi3-64',
    ]);
    for (const g of guests) expect(existsSync(path.join(dir, g.qemubootConf)), g.qemubootConf).toBe(true);
  });

  for (const g of guests) {
    it.skipIf(!!skipReason)(
      `${g.name} boots to a root shell on an overlay, leaving its base image unchanged`,
      async () => {
        const deploy = path.join(dir, g.deployDir);
        const conf = parseQemuboot(path.join(dir, g.qemubootConf));
        const base = path.join(deploy, `${conf.image_link_name}.${conf.qb_default_fstype}`);
        expect(existsSync(base), base).toBe(true);
        const before = await sha256(base);

        scratch ??= mkdtempSync(path.join(os.tmpdir(), 'stacklab-guests-'));
        const overlay = path.join(scratch, `${g.name}.qcow2`);
        rmSync(overlay, { force: true });
        // An SD card must be a power of two in size; the .wic deliberately is not, so the overlay is padded.
        const size = g.board.startsWith('raspi') ? [String(nextPowerOfTwo(statSync(base).size))] : [];
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, overlay, ...size]);

        const { bin, args } = argvFor(conf, deploy, overlay);
        const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        running.add(child);
        const s = new SerialSession(child);

        const login = await s.wait(LOGIN, 200_000);
        expect(login.match[1]).toBe(g.name);
        child.stdin.write('root\n');
        const shell = await s.wait(PROMPT, 60_000, s.plain.indexOf(login.match[0]));
        // One login prompt only: no getty respawning on a console that is not there.
        expect(s.plain.match(/ login: /g)?.length).toBe(1);
        expect(s.plain).not.toMatch(/Password:/);

        const uname = await s.run('uname -m');
        expect(uname.split('\n').map((l) => l.trim())).toContain(g.arch);

        // The virtio-serial driver, loaded by rcS as a module or built into the kernel (qemux86-64).
        if (!g.board.startsWith('raspi'))
          expect(await s.run('ls -d /sys/bus/virtio/drivers/virtio_console')).toMatch(
            /^\/sys\/bus\/virtio\/drivers\/virtio_console$/m,
          );
        // With runqemu's virtconsole (qb_serial_opt) the guest has hvc0, the second console.
        if (conf.qb_serial_opt) expect(await s.run('ls /dev/hvc0')).toMatch(/^\/dev\/hvc0$/m);

        if (g.name === 'demo-qemuarm64-host') {
          const version = await s.run('qemu-system-x86_64 --version', 120_000);
          expect(version).toMatch(/QEMU emulator version \d+\.\d+/);
          // Starting a q35 machine loads SeaBIOS, the VGA BIOS and the NIC's option ROM from the guest's tree.
          const monitor = await s.run(
            'echo quit | qemu-system-x86_64 -M q35 -display none -serial none -S -monitor stdio 2>&1',
            180_000,
          );
          expect(monitor).toMatch(/QEMU \S+ monitor/);
          expect(monitor).not.toMatch(/could not load|failed to find romfile/i);
          expect(await s.run('lsmod')).toMatch(/^9p\b/m);
          expect(await s.run('ls -d /var/lib/virt/images')).toMatch(/^\/var\/lib\/virt\/images$/m);
        }

        timings.push(
          `  ${g.name.padEnd(22)} login prompt ${(login.atMs / 1000).toFixed(1)} s, shell ${(shell.atMs / 1000).toFixed(1)} s`,
        );
        await stopAll();
        expect(await sha256(base)).toBe(before);
      },
    );
  }
});
