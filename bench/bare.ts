// "Bare" QEMU for benchmarks: the engine's own argv as a person would paste it — the
// serial console on stdio, not paused, its own disk overlay and socket dir.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureOverlay, imageInfo, nextPowerOfTwo } from '../electron/engine/vm/overlay.ts';

export async function bareCommand(
  argv: string[],
  qemuImg: string,
  rootfs: string,
  sd: boolean,
): Promise<{ args: string[]; cleanup: () => void }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bare-'));
  const disk = path.join(dir, 'disk.qcow2');
  const size = sd ? nextPowerOfTwo((await imageInfo(qemuImg, rootfs)).virtualSize) : undefined;
  await ensureOverlay({ qemuImg, base: rootfs, baseFormat: 'raw', path: disk, sizeBytes: size });
  const sockDir = mkdtempSync(path.join(os.tmpdir(), 'sl-'));
  const args = argv
    .filter((a) => a !== '-S')
    .map((a) => (a.startsWith('socket,id=serial0,') ? 'stdio,id=serial0,signal=off' : a))
    .map((a) => a.replace(/file=[^,]*disk\.qcow2/, `file=${disk}`))
    .map((a) => a.replace(/\/tmp\/stacklab-\d+\/[0-9a-f]+\//g, `${sockDir}/`));
  return {
    args,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(sockDir, { recursive: true, force: true });
    },
  };
}
