// One VM's disk: its snapshots and how much space its changes take. Loaded for the VM
// shown in the inspector; every change reloads both so the panel never guesses.
import type { SnapshotInfo } from '../../../../electron/common/contract.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export interface DiskUsage {
  overlayBytes: number;
  baseBytes: number;
  snapshots: number;
  virtualBytes: number;
}

export class DiskState {
  vmId = $state('');
  list = $state<SnapshotInfo[]>([]);
  usage = $state<DiskUsage | null>(null);
  error = $state('');
  /** What is in flight: 'take', 'revert:<name>', 'delete:<name>', 'reset'. */
  busy = $state('');
  private generation = 0;

  constructor(private readonly t: Transport) {}

  async load(vmId: string): Promise<void> {
    const gen = ++this.generation;
    if (vmId !== this.vmId) {
      this.vmId = vmId;
      this.list = [];
      this.usage = null;
    }
    try {
      const [list, usage] = await Promise.all([
        this.t.request('disk.snapshots', { vmId }),
        this.t.request('disk.usage', { vmId }),
      ]);
      // A newer load (another VM selected) wins.
      if (gen !== this.generation) return;
      this.list = list;
      this.usage = usage;
      this.error = '';
    } catch (e) {
      if (gen === this.generation) this.error = oneLine(e);
    }
  }

  take(name: string): Promise<void> {
    return this.run('take', () => this.t.request('disk.snapshot.take', { vmId: this.vmId, name }));
  }

  revert(name: string): Promise<void> {
    return this.run(`revert:${name}`, () =>
      this.t.request('disk.snapshot.revert', { vmId: this.vmId, name }),
    );
  }

  delete(name: string): Promise<void> {
    return this.run(`delete:${name}`, () =>
      this.t.request('disk.snapshot.delete', { vmId: this.vmId, name }),
    );
  }

  reset(): Promise<void> {
    return this.run('reset', () => this.t.request('disk.reset', { vmId: this.vmId }));
  }

  private async run(what: string, fn: () => Promise<unknown>): Promise<void> {
    const vmId = this.vmId;
    this.busy = what;
    try {
      await fn();
    } catch (e) {
      throw new Error(oneLine(e));
    } finally {
      this.busy = '';
      if (vmId) await this.load(vmId);
    }
  }
}
