// Finding the QEMU processes a test started: by words in their command line (its own
// STACKLAB_HOME, so other workers' VMs on the same machine never count).
import { readdirSync, readFileSync } from 'node:fs';

/** pids of qemu-system processes whose command line holds every one of `markers`. */
export function qemuPidsWith(...markers: string[]): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && markers.every((m) => cmd.includes(m))) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
