import type { VmSummary } from '../../../../electron/common/contract.ts';
import { buildStackTree, flatten } from '../stack-tree.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class Vms {
  byId = $state<Record<string, VmSummary>>({});
  error = $state('');
  /** VM ids with a stop/restart/remove request in flight, and which. */
  busy = $state<Record<string, 'stop' | 'force' | 'restart' | 'remove'>>({});
  list = $derived(Object.values(this.byId));
  tree = $derived(buildStackTree(this.list));
  ordered = $derived(flatten(this.tree));
  private readonly removedListeners = new Set<(vmId: string) => void>();

  constructor(private readonly t: Transport) {
    t.on('vm.changed', (vm) => {
      this.byId[vm.id] = vm;
    });
    t.on('vm.removed', ({ vmId }) => this.forget(vmId));
  }

  onRemoved(listener: (vmId: string) => void): () => void {
    this.removedListeners.add(listener);
    return () => this.removedListeners.delete(listener);
  }

  get(id: string | undefined): VmSummary | undefined {
    return id === undefined ? undefined : this.byId[id];
  }

  async load(): Promise<void> {
    try {
      const list = await this.t.request('vm.list', {});
      const next: Record<string, VmSummary> = {};
      for (const vm of list) next[vm.id] = vm;
      const gone = Object.keys(this.byId).filter((id) => !(id in next));
      this.byId = next;
      for (const id of gone) for (const l of this.removedListeners) l(id);
      this.error = '';
    } catch (e) {
      this.error = oneLine(e);
    }
  }

  /** A VM summary that arrived as a request's answer (boot, restart). */
  apply(vm: VmSummary): void {
    this.byId[vm.id] = vm;
  }

  async stop(vmId: string, force: boolean): Promise<void> {
    await this.run(vmId, force ? 'force' : 'stop', () => this.t.request('vm.stop', { vmId, force }));
  }

  async restart(vmId: string): Promise<void> {
    await this.run(vmId, 'restart', async () => this.apply(await this.t.request('vm.restart', { vmId })));
  }

  async remove(vmId: string): Promise<void> {
    await this.run(vmId, 'remove', async () => {
      await this.t.request('vm.remove', { vmId });
      this.forget(vmId);
    });
  }

  async log(vmId: string): Promise<string> {
    return (await this.t.request('vm.log', { vmId })).text;
  }

  private forget(vmId: string): void {
    if (!(vmId in this.byId)) return;
    delete this.byId[vmId];
    for (const l of this.removedListeners) l(vmId);
  }

  private async run(vmId: string, what: Vms['busy'][string], fn: () => Promise<unknown>): Promise<void> {
    this.busy[vmId] = what;
    try {
      await fn();
    } catch (e) {
      throw new Error(oneLine(e));
    } finally {
      delete this.busy[vmId];
    }
  }
}
