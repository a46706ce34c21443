// Slow things the engine reports through `progress` events (downloads, image builds,
// conversions). Finished tasks linger briefly so people see them complete.
import type { Progress } from '../../../../electron/common/contract.ts';
import type { Transport } from '../transport.ts';

export class Tasks {
  byId = $state<Record<string, Progress>>({});
  list = $derived(Object.values(this.byId));
  private timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(t: Transport) {
    t.on('progress', (p) => this.update(p));
  }

  update(p: Progress): void {
    this.byId[p.taskId] = p;
    const old = this.timers.get(p.taskId);
    if (old) clearTimeout(old);
    this.timers.delete(p.taskId);
    // Failures stay until dismissed: their message is the point.
    if (p.state === 'done' || p.state === 'cancelled') {
      this.timers.set(
        p.taskId,
        setTimeout(() => this.dismiss(p.taskId), 6000),
      );
    }
  }

  dismiss(taskId: string): void {
    delete this.byId[taskId];
    this.timers.delete(taskId);
  }
}
