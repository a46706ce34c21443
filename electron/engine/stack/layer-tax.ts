// The layer tax: the same small CPU benchmark (busybox hashing 16 MiB) on the host, in
// user-mode emulation, in a guest and in a guest inside a guest, so people can feel what
// each layer of emulation costs. Every layer runs Debian's busybox-static, so the work is
// the same program, only translated more or fewer times.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { runInGuest } from '../vm/guest-shell.ts';
import type { Vm } from '../vm/vm.ts';

export const TAX_SCRIPT = 'dd if=/dev/zero bs=1M count=16 2>/dev/null | busybox sha256sum >/dev/null';

export interface LayerTax {
  layer: string;
  kind: 'host' | 'usermode' | 'guest' | 'nested';
  seconds: number;
  /** How many times slower than the host. */
  factor: number;
  why: string;
}

export const WHY: Record<LayerTax['kind'], string> = {
  host: 'Native: the CPU runs busybox itself.',
  usermode:
    'QEMU user mode translates each block of foreign instructions once and runs it; system calls go straight to the host kernel, so there is no guest kernel or device to emulate.',
  guest:
    'QEMU (TCG) translates every guest instruction block into host code and emulates the whole machine: MMU, timers, interrupts and devices, for a guest kernel as well as its programs.',
  nested:
    'The inner QEMU translates x86-64 to arm64, and that translator is itself arm64 code the outer QEMU translates again: every layer multiplies the cost.',
};

/** busybox `time` prints "real\t0m 1.23s". */
export function parseBusyboxTime(text: string): number {
  const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(text);
  if (!m) throw new Error('could not read the benchmark time from busybox');
  return Number(m[1]) * 60 + Number(m[2]);
}

export async function measureGuest(vm: Vm): Promise<number> {
  const ch = vm.consoles[0];
  if (!ch) throw new Error(`${vm.id} has no console to run the benchmark on`);
  const r = await runInGuest(ch, `busybox time sh -c '${TAX_SCRIPT}' 2>&1`, { timeoutMs: 600_000 });
  return parseBusyboxTime(r.output);
}

/** The host's own busybox-static (Debian's busybox-static package), timed by itself. */
export function measureCommand(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    if (!existsSync(file)) return reject(new Error(`${file} is missing (install busybox-static)`));
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let out = '';
    p.stdout.on('data', (b) => {
      out += b;
    });
    p.stderr.on('data', (b) => {
      out += b;
    });
    p.on('error', reject);
    p.on('exit', () => {
      try {
        resolve(parseBusyboxTime(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

export function hostBusybox(): string {
  return ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? '/bin/busybox';
}

export async function measureHost(): Promise<number> {
  const bb = hostBusybox();
  return measureCommand(bb, ['time', 'sh', '-c', TAX_SCRIPT]);
}

export function taxRows(rows: Array<{ layer: string; kind: LayerTax['kind']; seconds: number }>): LayerTax[] {
  const host = rows.find((r) => r.kind === 'host')?.seconds;
  return rows.map((r) => ({ ...r, factor: host ? r.seconds / host : Number.NaN, why: WHY[r.kind] }));
}
