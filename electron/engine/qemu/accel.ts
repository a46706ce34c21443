// The accelerator probe: which of the host's hardware accelerators really run guest code
// with this QEMU binary. Looking for /dev/kvm is not enough (field notes §9: it exists here
// but QEMU aborts or hangs under it), so each candidate boots a tiny test VM that executes
// real instructions and must exit with a known code within a few seconds. TCG is always
// last and always usable. Results are cached per binary and host, so only the first call
// costs anything.
import { spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheHome } from '../paths.ts';
import { type QemuInstall, qemuVersion, targetOf } from './discovery.ts';
import { probeProgram } from './probe-firmware.ts';
import { runCapture } from './run.ts';

export type AccelName = 'kvm' | 'hvf' | 'whpx' | 'tcg';

export interface AccelResult {
  name: AccelName;
  ok: boolean;
  /** One line: what happened (the failure's first meaningful stderr line, "hung for 5 s", …). */
  reason: string;
}

export interface AccelProbe {
  binary: string;
  version: string;
  accels: AccelResult[];
  best: AccelName;
  /** One sentence for the UI: why `best` was chosen. */
  why: string;
  probedAt: string;
  /** True when this answer came from the cache file rather than a fresh probe. */
  fromCache?: boolean;
}

export interface ProbeOptions {
  /** How long a test VM may run before it counts as hung. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Ignore the cache and probe again. */
  refresh?: boolean;
}

const DEFAULT_TIMEOUT_MS = 5000;

export function accelCacheFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheHome(env), 'probe', 'accel.json');
}

/** The host's hardware accelerators that make sense to try, best first. */
export function hostAccelerators(platform: NodeJS.Platform = process.platform): AccelName[] {
  if (platform === 'linux') return ['kvm'];
  if (platform === 'darwin') return ['hvf'];
  if (platform === 'win32') return ['whpx'];
  return [];
}

/** process.arch → the name qemu-system binaries use. */
export function hostTarget(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i386', arm: 'arm' };
  return map[arch] ?? arch;
}

function hardwareApplies(target: string, host: string): boolean {
  return target === host || (host === 'x86_64' && target === 'i386');
}

async function compiledAccels(bin: string): Promise<Set<string>> {
  try {
    const { stdout } = await runCapture(bin, ['-accel', 'help']);
    return new Set(
      stdout
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => /^[a-z0-9-]+$/.test(l)),
    );
  } catch {
    return new Set();
  }
}

type KvmDevice = 'missing' | 'no-access' | 'rw';
function kvmDevice(): KvmDevice {
  if (!existsSync('/dev/kvm')) return 'missing';
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return 'rw';
  } catch {
    return 'no-access';
  }
}

/** Strips QEMU's "qemu-system-x86_64: " prefix and picks the line that says what went wrong. */
export function meaningfulLine(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.replace(/^\S*qemu-system-[A-Za-z0-9_]+(\.exe)?:\s*/, '').trim())
    .filter((l) => l.length > 0);
  const noise = (l: string) =>
    /^warning:/i.test(l) ||
    /^extra data\[/i.test(l) ||
    /^[A-Z0-9]{2,4}\s*=/.test(l) ||
    /^(Code|EFER|GDT|IDT|LDT|TR)=/.test(l) ||
    /terminating on signal/i.test(l);
  let line = lines.find((l) => !noise(l)) ?? lines[0] ?? '';
  if (
    /KVM internal error/i.test(line) &&
    /emulation failure/i.test(stderr) &&
    !/emulation failure/i.test(line)
  ) {
    line = `${line} (emulation failure)`;
  }
  return line.length > 200 ? `${line.slice(0, 197)}…` : line;
}

interface RunOutcome {
  ok: boolean;
  reason: string;
}

/** Boots the probe program once under `accel`; never leaves the process behind. */
function runProbeVm(bin: string, args: string[], expectCode: number, timeoutMs: number): Promise<RunOutcome> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], windowsHide: true });
    let stderr = '';
    let verdict: RunOutcome | undefined;
    const finish = (v: RunOutcome) => {
      verdict ??= v;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      const said = meaningfulLine(stderr);
      finish({ ok: false, reason: `hung for ${Math.round(timeoutMs / 1000)} s${said ? ` (${said})` : ''}` });
    }, timeoutMs);
    child.stderr.setEncoding('utf8');
    let grace: NodeJS.Timeout | undefined;
    child.stderr.on('data', (d: string) => {
      stderr += d;
      // After "KVM internal error" QEMU stops the vCPU but keeps running, so do not wait for
      // the timeout: let the register dump (it ends with "Code=") arrive, then stop it.
      if (verdict || !/KVM internal error/i.test(stderr)) return;
      if (/^Code=/m.test(stderr)) finish({ ok: false, reason: meaningfulLine(stderr) });
      else grace ??= setTimeout(() => finish({ ok: false, reason: meaningfulLine(stderr) }), 300);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      resolve({ ok: false, reason: `could not start ${path.basename(bin)}: ${e.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      if (verdict) return resolve(verdict);
      const ms = Date.now() - started;
      if (code === expectCode)
        return resolve({ ok: true, reason: `a test VM ran its first instructions in ${ms} ms` });
      const said = meaningfulLine(stderr);
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve({ ok: false, reason: said ? said : how });
    });
  });
}

async function probeOne(
  bin: string,
  accel: AccelName,
  target: string,
  fwFile: string | undefined,
  compiled: Set<string>,
  timeoutMs: number,
): Promise<AccelResult> {
  const host = hostTarget();
  const prog = probeProgram(target);
  if (accel !== 'tcg') {
    if (!hardwareApplies(target, host)) {
      return {
        name: accel,
        ok: false,
        reason: `${accel} only runs ${host} guests on this ${host} host; this binary emulates ${target}`,
      };
    }
    if (compiled.size > 0 && !compiled.has(accel)) {
      return { name: accel, ok: false, reason: `this QEMU was built without ${accel} support` };
    }
    if (accel === 'kvm') {
      const dev = kvmDevice();
      if (dev === 'missing')
        return {
          name: accel,
          ok: false,
          reason: '/dev/kvm does not exist (no KVM module or no virtualisation support)',
        };
      if (dev === 'no-access') {
        return {
          name: accel,
          ok: false,
          reason: 'no read/write access to /dev/kvm (add your user to the kvm group and log in again)',
        };
      }
    }
  }
  if (!prog || !fwFile) {
    return accel === 'tcg'
      ? {
          name: accel,
          ok: true,
          reason: `not probed (no test program for ${target}); TCG is always available`,
        }
      : { name: accel, ok: false, reason: `not probed: Stacklab has no test program for ${target}` };
  }
  const args = [...prog.args(accel !== 'tcg'), '-accel', accel, '-bios', fwFile];
  const out = await runProbeVm(bin, args, prog.exitCode, timeoutMs);
  return { name: accel, ok: out.ok, reason: out.reason };
}

function chooseBest(accels: AccelResult[], target: string): { best: AccelName; why: string } {
  const hw = accels.filter((a) => a.name !== 'tcg');
  const good = hw.find((a) => a.ok);
  if (good) return { best: good.name, why: `${good.name} works here (${good.reason})` };
  const tcg = accels.find((a) => a.name === 'tcg');
  const tcgNote = tcg && !tcg.ok ? `; note that the TCG test also failed: ${tcg.reason}` : '';
  if (hw.length === 0)
    return {
      best: 'tcg',
      why: `no hardware accelerator on this host; using TCG software emulation${tcgNote}`,
    };
  if (!hardwareApplies(target, hostTarget())) {
    return {
      best: 'tcg',
      why: `no hardware accelerator runs ${target} guests on this ${hostTarget()} host; using TCG software emulation${tcgNote}`,
    };
  }
  const failed = hw.map((a) => `${a.name}: ${a.reason}`).join('; ');
  return {
    best: 'tcg',
    why: `no working hardware accelerator (${failed}); using TCG software emulation${tcgNote}`,
  };
}

// ---- cache -------------------------------------------------------------------------------

interface CacheFile {
  entries: Record<string, AccelProbe & { key: string }>;
}

function readCache(file: string): CacheFile {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (
      parsed &&
      typeof parsed === 'object' &&
      'entries' in parsed &&
      typeof parsed.entries === 'object' &&
      parsed.entries
    ) {
      return parsed as CacheFile;
    }
  } catch {
    // Missing or damaged: start again, probing is cheap enough.
  }
  return { entries: {} };
}

// Writers in this process go one at a time so parallel probes do not drop each other's entries.
let writeChain: Promise<void> = Promise.resolve();
function writeEntry(file: string, key: string, value: AccelProbe): Promise<void> {
  writeChain = writeChain.then(() => {
    mkdirSync(path.dirname(file), { recursive: true });
    const c = readCache(file);
    c.entries[key] = { ...value, key };
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`);
    renameSync(tmp, file);
  });
  return writeChain.catch(() => undefined);
}

function cacheKey(bin: string, version: string, st: { size: number; mtimeMs: number }): string {
  // The host part makes a kernel upgrade or a change of /dev/kvm access probe again.
  const hostPart = `${process.platform} ${process.arch} ${os.release()} kvm=${process.platform === 'linux' ? kvmDevice() : '-'}`;
  return [bin, st.size, Math.round(st.mtimeMs), version, hostPart].join('|');
}

const inflight = new Map<string, Promise<AccelProbe>>();

/** Probes (or recalls) which accelerators work for one qemu-system binary. */
export async function probeAccelerators(bin: string, opts: ProbeOptions = {}): Promise<AccelProbe> {
  const env = opts.env ?? process.env;
  const file = accelCacheFile(env);
  const abs = path.resolve(bin);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch (e) {
    throw new Error(`cannot probe ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const version = (await qemuVersion(abs)).text;
  const key = cacheKey(abs, version, st);
  if (!opts.refresh) {
    const hit = readCache(file).entries[key];
    if (hit) {
      const { key: _k, ...rest } = hit;
      return { ...rest, fromCache: true };
    }
  }
  const flight = `${file}|${key}`;
  let p = inflight.get(flight);
  if (!p) {
    p = (async () => {
      const target = targetOf(abs);
      const prog = probeProgram(target);
      let fwFile: string | undefined;
      if (prog) {
        fwFile = path.join(path.dirname(file), `firmware-${target}.bin`);
        mkdirSync(path.dirname(fwFile), { recursive: true });
        if (!existsSync(fwFile) || !readFileSync(fwFile).equals(prog.image)) {
          // Atomically: another process may be probing with the same file right now.
          const tmp = `${fwFile}.${process.pid}.tmp`;
          writeFileSync(tmp, prog.image);
          renameSync(tmp, fwFile);
        }
      }
      const compiled = await compiledAccels(abs);
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const accels: AccelResult[] = [];
      // One at a time: a hung hardware probe must not slow the TCG one on a 2-core host.
      for (const a of [...hostAccelerators(), 'tcg' as const]) {
        accels.push(await probeOne(abs, a, target, fwFile, compiled, timeoutMs));
      }
      const result: AccelProbe = {
        binary: abs,
        version,
        accels,
        ...chooseBest(accels, target),
        probedAt: new Date().toISOString(),
      };
      // A failed TCG run means something transient or broken here; do not remember it.
      if (accels.some((a) => a.name === 'tcg' && a.ok)) await writeEntry(file, key, result);
      return result;
    })().finally(() => inflight.delete(flight));
    inflight.set(flight, p);
  }
  return p;
}

/** Probes every qemu-system binary of an install, one after another. */
export async function probeAll(
  install: QemuInstall,
  opts: ProbeOptions = {},
): Promise<Record<string, AccelProbe>> {
  const out: Record<string, AccelProbe> = {};
  for (const [name, bin] of Object.entries(install.systems)) out[name] = await probeAccelerators(bin, opts);
  return out;
}
