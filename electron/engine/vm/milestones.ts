// Boot milestones read from the console text. The patterns match what the Linux kernel,
// busybox/systemd init and getty really print; they are checked on a rolling tail of the
// output so a line split across reads still matches.
import type { Milestone } from '../../common/contract.ts';

/** Terminal control sequences (colours, cursor queries such as busybox's ESC[6n) hide prompts from plain patterns. */
export function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g, '');
}

export const ORDER: readonly Milestone[] = ['firmware', 'kernel', 'init', 'login', 'shell'];

const PATTERNS: Record<Exclude<Milestone, 'firmware'>, RegExp> = {
  kernel: /Booting Linux on physical CPU|Linux version \d+\.\d+/,
  init: /Run \S*init as init process|Freeing unused kernel (?:image )?memory|switch_root|systemd\[1\]: /,
  login: /\blogin: ?$/m,
  // A root or user prompt at the very end of the output: the guest is waiting for us.
  shell: /(?:^|\n)[^\n]{0,80}[#$] $/,
};

export class MilestoneTracker {
  private tail = '';
  readonly reached = new Map<Milestone, number>();

  constructor(private readonly t0: number) {}

  /** Marks a milestone seen outside the console (firmware: QEMU started running). */
  mark(m: Milestone, now = Date.now()): boolean {
    if (this.reached.has(m)) return false;
    this.reached.set(m, now - this.t0);
    return true;
  }

  /** Feeds console text; returns milestones newly reached, in boot order. */
  feed(text: string, now = Date.now()): Milestone[] {
    this.tail = stripAnsi(this.tail + text).slice(-4096);
    const found: Milestone[] = [];
    for (const m of ORDER) {
      if (m === 'firmware' || this.reached.has(m)) continue;
      // The shell only counts after a login prompt or init, so a kernel line ending in '# ' can't fake it.
      if (m === 'shell' && !this.reached.has('login') && !this.reached.has('init')) continue;
      if (PATTERNS[m].test(this.tail)) {
        // Reaching a later milestone implies the earlier ones, even if their lines were missed.
        for (const earlier of ORDER.slice(0, ORDER.indexOf(m)))
          if (this.mark(earlier, now)) found.push(earlier);
        if (this.mark(m, now)) found.push(m);
      }
    }
    return found;
  }

  list(): Array<{ name: Milestone; atMs: number }> {
    return ORDER.filter((m) => this.reached.has(m)).map((m) => ({ name: m, atMs: this.reached.get(m)! }));
  }

  /** The kernel version, if its banner went by. */
  static kernelVersion(text: string): string | undefined {
    return /Linux version (\S+)/.exec(text)?.[1];
  }
}
