// Starting QEMU so that it cannot outlive the engine, and reaping any that did.
// On Linux, setpriv(1) sets PR_SET_PDEATHSIG before exec'ing QEMU: if the engine dies,
// even by SIGKILL, the kernel kills QEMU at once. Everywhere, a registry of running VMs
// in the private runtime dir lets the next engine find and stop stale ones.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureDir, runtimeDir, stacklabHome } from '../paths.ts';

let setprivPath: string | null | undefined;
function setpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform === 'linux') {
    for (const p of ['/usr/bin/setpriv', '/bin/setpriv']) {
      const r = spawnSync(p, ['--help'], { stdio: 'ignore' });
      if (r.status === 0) {
        setprivPath = p;
        break;
      }
    }
  }
  return setprivPath;
}

export function spawnQemu(
  binary: string,
  argv: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv },
): ChildProcess {
  const sp = setpriv();
  const [file, args] = sp ? [sp, ['--pdeathsig', 'KILL', '--', binary, ...argv]] : [binary, argv];
  return spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface RegistryEntry {
  vmId: string;
  pid: number;
  ownerPid: number;
  binary: string;
  name: string; // QEMU -name, also used to recognise the process
  qmpControl: string; // a second QMP socket for other processes (stacklab stop)
  startedAt: number;
  imageId: string;
  vmDir: string; // the same VM id can run under two STACKLAB_HOMEs: the dir tells them apart
}

function entryFile(vmId: string, vmDir: string, env?: NodeJS.ProcessEnv): string {
  const tag = createHash('sha256').update(vmDir).digest('hex').slice(0, 10);
  return path.join(registryDir(env), `${vmId}@${tag}.json`);
}

function registryDir(env?: NodeJS.ProcessEnv): string {
  return ensureDir(path.join(runtimeDir(env), 'vms'));
}

export function register(e: RegistryEntry, env?: NodeJS.ProcessEnv): void {
  writeFileSync(entryFile(e.vmId, e.vmDir, env), JSON.stringify(e));
}

export function unregister(vmId: string, vmDir: string, env?: NodeJS.ProcessEnv): void {
  rmSync(entryFile(vmId, vmDir, env), { force: true });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when pid is still the QEMU we started (pids get reused). */
function isOurQemu(e: RegistryEntry): boolean {
  if (!alive(e.pid)) return false;
  try {
    const cmd = readFileSync(`/proc/${e.pid}/cmdline`, 'utf8');
    return cmd.includes(e.name);
  } catch {
    return process.platform !== 'linux'; // no /proc: trust the registry
  }
}

function readRegistry(env?: NodeJS.ProcessEnv): Array<{ file: string; entry: RegistryEntry }> {
  const out: Array<{ file: string; entry: RegistryEntry }> = [];
  for (const f of readdirSync(registryDir(env))) {
    if (!f.endsWith('.json')) continue;
    const file = path.join(registryDir(env), f);
    try {
      out.push({ file, entry: JSON.parse(readFileSync(file, 'utf8')) as RegistryEntry });
    } catch {
      rmSync(file, { force: true });
    }
  }
  return out;
}

export function listRegistry(env?: NodeJS.ProcessEnv): RegistryEntry[] {
  return readRegistry(env).map((r) => r.entry);
}

/** VMs whose engine is gone: kill what still runs, forget the rest. Returns what was reaped. */
export function reapStale(env?: NodeJS.ProcessEnv): RegistryEntry[] {
  const reaped: RegistryEntry[] = [];
  for (const { file, entry: e } of readRegistry(env)) {
    if (alive(e.ownerPid) && e.ownerPid !== process.pid) continue; // another live engine owns it
    if (e.ownerPid === process.pid) continue;
    if (isOurQemu(e)) {
      try {
        process.kill(e.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    rmSync(file, { force: true });
    reaped.push(e);
  }
  return reaped;
}

/** Live VMs of this STACKLAB_HOME from every engine on this machine (`stacklab ps` in another process). */
export function liveEntries(env?: NodeJS.ProcessEnv): RegistryEntry[] {
  const home = stacklabHome(env) + path.sep;
  return listRegistry(env).filter((e) => e.vmDir?.startsWith(home) && alive(e.ownerPid) && isOurQemu(e));
}
