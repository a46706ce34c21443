// The engine's disk operations by VM id, as the dispatcher, CLI and tests call them: works
// out where the VM's disk is, whether the VM runs (in this engine, or in another Stacklab
// process, reached through its control QMP socket) and which base it sits on, then hands
// over to snapshots.ts, reset.ts, resize.ts and usage.ts.
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import path from 'node:path';
import { readWorkingBase, workingBaseFor } from '../disk/workbase.ts';
import type { Engine } from '../index.ts';
import { liveEntries } from '../vm/process.ts';
import { Qmp } from '../vm/qmp.ts';
import { vmDiskPaths } from './layout.ts';
import { type ResetResult, resetDisk } from './reset.ts';
import { type ResizeResult, resizeDisk } from './resize.ts';
import {
  deleteSnapshot,
  listSnapshots,
  type Monitor,
  revertSnapshot,
  type SnapshotInfo,
  type SnapshotTarget,
  takeSnapshot,
} from './snapshots.ts';
import { type DiskUsage, usage } from './usage.ts';

const VM_ID = /^[A-Za-z0-9._:@+-]{1,128}$/;

function checkVmId(vmId: string): string {
  if (!VM_ID.test(vmId) || vmId === '.' || vmId === '..')
    throw new Error(`not a VM id: ${JSON.stringify(vmId).slice(0, 80)}`);
  return vmId;
}

type Live = { where: 'here'; monitor: Monitor } | { where: 'other'; socket: string } | { where: 'none' };

/** What VmDisks needs of the engine (a Pick, so createEngine can build it before the Engine object exists). */
export type DiskEngine = Pick<Engine, 'supervisor' | 'library' | 'qemu'>;

export class VmDisks {
  constructor(
    private readonly engine: DiskEngine,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  vmDir(vmId: string): string {
    return this.engine.supervisor.vmDir(checkVmId(vmId));
  }

  /**
   * Where the VM runs. The registry is shared by every Stacklab home of this user, so an
   * entry is ours only if its control socket sits in the directory derived from our vmDir.
   */
  private live(vmId: string): Live {
    const vm = this.engine.supervisor.find(vmId);
    if (vm?.plan.parentId)
      throw new Error(
        `${vmId} runs inside ${vm.plan.parentId}, and its disk lives there: snapshot or reset ${vm.plan.parentId} instead`,
      );
    if (vm && !vm.exit) {
      if (!vm.qmp || vm.qmp.closed) throw new Error(`${vmId} is starting or stopping; try again in a moment`);
      return { where: 'here', monitor: vm.qmp };
    }
    const short = createHash('sha256').update(this.vmDir(vmId)).digest('hex').slice(0, 12);
    const e = liveEntries(this.env).find(
      (x) => x.vmId === vmId && path.basename(path.dirname(x.qmpControl)) === short,
    );
    return e ? { where: 'other', socket: e.qmpControl } : { where: 'none' };
  }

  private async qemuImg(): Promise<string> {
    const img = (await this.engine.qemu()).img;
    if (!img) throw new Error('qemu-img is not installed; it is needed for VM disks');
    return img;
  }

  /** Runs `fn` with the VM's snapshot target, connecting to another process's VM if needed. */
  private async withTarget<T>(vmId: string, fn: (t: SnapshotTarget) => Promise<T>): Promise<T> {
    const live = this.live(vmId);
    const base = { vmId, overlay: vmDiskPaths(this.vmDir(vmId)).overlay, qemuImg: await this.qemuImg() };
    if (live.where === 'here') return fn({ ...base, monitor: live.monitor });
    if (live.where === 'none') return fn(base);
    const qmp = await connectQmp(live.socket, vmId);
    try {
      return await fn({ ...base, monitor: qmp });
    } finally {
      qmp.close();
    }
  }

  listSnapshots(vmId: string): Promise<SnapshotInfo[]> {
    return this.withTarget(vmId, listSnapshots);
  }

  takeSnapshot(vmId: string, name: string): Promise<SnapshotInfo> {
    return this.withTarget(vmId, (t) => takeSnapshot(t, name));
  }

  revertSnapshot(vmId: string, name: string): Promise<SnapshotInfo> {
    return this.withTarget(vmId, (t) => revertSnapshot(t, name));
  }

  deleteSnapshot(vmId: string, name: string): Promise<void> {
    return this.withTarget(vmId, (t) => deleteSnapshot(t, name));
  }

  reset(vmId: string): ResetResult {
    return resetDisk(vmId, this.vmDir(vmId), { running: this.live(vmId).where !== 'none' });
  }

  usage(vmId: string): DiskUsage {
    return usage(this.vmDir(vmId));
  }

  async resize(
    vmId: string,
    sizeBytes: number,
    opts: { dropSnapshots?: boolean } = {},
  ): Promise<ResizeResult> {
    const vmDir = this.vmDir(vmId);
    const running = this.live(vmId).where !== 'none';
    if (running) throw new Error(`${vmId} is running; stop it before resizing its disk`);
    // The VM's image: the one it last booted, else the image of the same id (the default VM).
    const image = await this.engine.library.resolve(this.engine.supervisor.find(vmId)?.plan.imageId ?? vmId);
    if (image.rootfsKind !== 'disk')
      throw new Error(`${image.id} boots from an initramfs: it has no disk to resize`);
    const base = workingBaseFor(vmDir) ?? { path: image.rootfs, format: image.rootfsFormat };
    return resizeDisk({
      vmId,
      vmDir,
      qemuImg: await this.qemuImg(),
      base,
      imageDisk: readWorkingBase(vmDir)?.base ?? image.rootfs,
      sdCard: image.sdCard,
      sizeBytes,
      running,
      dropSnapshots: opts.dropSnapshots,
    });
  }
}

async function connectQmp(socket: string, vmId: string): Promise<Qmp> {
  const sock = connect(socket);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (e) => reject(new Error(`cannot reach ${vmId}'s control socket: ${e.message}`)));
  });
  const qmp = new Qmp(sock);
  await qmp.handshake();
  return qmp;
}
