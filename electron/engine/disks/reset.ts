// Reset: the VM's disk goes back to the image's base by deleting everything the VM wrote
// or had made for it — the overlay (with its snapshots), grown and customised working
// bases and the record naming them. The base image is untouched, so this is instant.
// Only for a stopped VM: a running QEMU holds the overlay open.
import { existsSync, rmSync } from 'node:fs';
import { vmDiskPaths } from './layout.ts';
import { usage } from './usage.ts';

export interface ResetResult {
  /** Host bytes given back. */
  freedBytes: number;
  /** Snapshots that went with the overlay. */
  droppedSnapshots: number;
  /** Whether there was anything to reset. */
  changed: boolean;
}

export function resetDisk(vmId: string, vmDir: string, opts: { running: boolean }): ResetResult {
  if (opts.running) throw new Error(`${vmId} is running; stop it before resetting its disk`);
  const p = vmDiskPaths(vmDir);
  const u = usage(vmDir);
  const changed = [p.overlay, p.grownDir, p.customDir, p.record].some((f) => existsSync(f));
  // Interrupted anywhere, what is left either boots or makes the supervisor ask for another reset.
  rmSync(p.record, { force: true });
  rmSync(p.overlay, { force: true });
  rmSync(p.grownDir, { recursive: true, force: true });
  rmSync(p.customDir, { recursive: true, force: true });
  return { freedBytes: u.overlayBytes + u.baseBytes, droppedSnapshots: u.snapshots, changed };
}
