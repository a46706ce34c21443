// Where a VM's disk lives inside its directory, in one place for snapshots, reset, resize
// and usage. The overlay is the only file the guest writes; `base/` holds grown working
// bases (disks/resize.ts) and `bases/` customised ones (customise/), each recorded in
// working-base.json (disk/workbase.ts), which the supervisor reads at boot.
import path from 'node:path';

export interface VmDiskPaths {
  vmDir: string;
  overlay: string;
  /** Grown working bases (resize). */
  grownDir: string;
  /** Customised working bases (customise). */
  customDir: string;
  record: string;
}

export function vmDiskPaths(vmDir: string): VmDiskPaths {
  return {
    vmDir,
    overlay: path.join(vmDir, 'disk.qcow2'),
    grownDir: path.join(vmDir, 'base'),
    customDir: path.join(vmDir, 'bases'),
    record: path.join(vmDir, 'working-base.json'),
  };
}
