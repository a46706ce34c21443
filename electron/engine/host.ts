// What the outermost box of the stack view shows: the PC itself.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { HostInfo } from '../common/contract.ts';

function osRelease(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? os.version();
  } catch {
    return os.version();
  }
}

export function hostInfo(): HostInfo {
  const cpus = os.cpus();
  return {
    os: os.type(),
    osRelease: osRelease(),
    arch: os.machine(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    cpus: cpus.length,
    memBytes: os.totalmem(),
    kernel: os.release(),
    hostname: os.hostname(),
    userShell: os.userInfo().shell ?? process.env.SHELL ?? '/bin/sh',
    loadAvg: os.loadavg()[0],
  };
}
