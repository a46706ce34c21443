// Stack presets: the Library's "Stacks" section. Booting a stack is one engine call that
// resolves once every layer's QEMU runs; the steps in between arrive as progress events.
import type { StackPreset } from '../../../../electron/common/contract.ts';
import { addStep, stackTaskId } from '../stacks.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class Stacks {
  presets = $state<StackPreset[]>([]);
  loaded = $state(false);
  error = $state('');
  /** Preset names with a stack.up or stack.down in flight, and which. */
  busy = $state<Record<string, 'up' | 'down'>>({});
  /** Step messages seen while a stack comes up, per preset name. */
  steps = $state<Record<string, string[]>>({});
  /** The last failure per preset, shown on its card until the next try. */
  failed = $state<Record<string, string>>({});

  constructor(private readonly t: Transport) {
    t.on('progress', (p) => {
      const name = this.presets.find((s) => stackTaskId(s.name) === p.taskId)?.name;
      if (!name) return;
      if (p.state === 'running') this.steps[name] = addStep(this.steps[name] ?? [], p);
    });
  }

  async load(): Promise<void> {
    try {
      this.presets = await this.t.request('stack.presets', {});
      this.error = '';
    } catch (e) {
      this.error = oneLine(e);
    } finally {
      this.loaded = true;
    }
  }

  /** Boots a preset; returns its VM ids, outermost first. Throws a one-line error. */
  async up(name: string): Promise<string[]> {
    this.busy[name] = 'up';
    this.steps[name] = [];
    delete this.failed[name];
    try {
      return (await this.t.request('stack.up', { preset: name })).vmIds;
    } catch (e) {
      this.failed[name] = oneLine(e);
      throw new Error(this.failed[name]);
    } finally {
      delete this.busy[name];
    }
  }

  /** Shuts a stack down from the inside out (the engine orders it). */
  async down(name: string): Promise<void> {
    this.busy[name] = 'down';
    try {
      await this.t.request('stack.down', { name });
      delete this.steps[name];
    } catch (e) {
      throw new Error(oneLine(e));
    } finally {
      delete this.busy[name];
    }
  }
}
