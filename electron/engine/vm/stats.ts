// CPU and memory of a QEMU process for the stack view, read from /proc on Linux
// (elsewhere the fields stay empty rather than guessed).
import { readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on every Linux Node supports

export class ProcStats {
  private last?: { ticks: number; at: number };

  sample(pid: number): { cpuPercent?: number; rssBytes?: number } {
    if (process.platform !== 'linux') return {};
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const now = Date.now();
      let cpuPercent: number | undefined;
      if (this.last && now > this.last.at) {
        cpuPercent = (((ticks - this.last.ticks) / TICKS) * 1000 * 100) / (now - this.last.at);
      }
      this.last = { ticks, at: now };
      // VmRSS is in kB whatever the page size (arm64 hosts may use 16 or 64 KiB pages).
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      return { cpuPercent, rssBytes: Number.isFinite(rssKb) ? rssKb * 1024 : undefined };
    } catch {
      return {};
    }
  }
}
