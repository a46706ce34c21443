// Stack presets as the Library shows them: which layers nest in which, and whether a
// preset's VMs are up. Plain TypeScript so unit tests can import it directly.
import type { Progress, StackPreset, VmSummary } from '../../../electron/common/contract.ts';
import { isLive } from './milestones.ts';

/** The engine names a stack's VMs `<stack>-<layer>` (see electron/engine/stack/stacks.ts). */
export function stackVmId(stack: string, layer: string): string {
  return `${stack}-${layer}`;
}

export function stackTaskId(stack: string): string {
  return `stack-${stack}`;
}

export type StackStatus = 'down' | 'partial' | 'up';

/** Up when every layer's VM is alive, partial when only some are (coming up or going down). */
export function stackStatus(preset: StackPreset, vms: Readonly<Record<string, VmSummary>>): StackStatus {
  const alive = preset.layers.filter((l) => {
    const vm = vms[stackVmId(preset.name, l.name)];
    return vm !== undefined && (isLive(vm.state) || vm.state === 'stopping');
  }).length;
  if (alive === 0) return 'down';
  return alive === preset.layers.length ? 'up' : 'partial';
}

export interface DiagramBox {
  name: string;
  image: string;
  depth: number;
  children: DiagramBox[];
}

/**
 * The presets list layers outermost first with a depth each (a pre-order walk); rebuild
 * the nesting so the card can draw each layer inside its parent.
 */
export function layerNesting(layers: StackPreset['layers']): DiagramBox[] {
  const roots: DiagramBox[] = [];
  const open: DiagramBox[] = [];
  for (const l of layers) {
    const box: DiagramBox = { name: l.name, image: l.image, depth: l.depth, children: [] };
    while (open.length > 0 && open[open.length - 1]!.depth >= l.depth) open.pop();
    const parent = open[open.length - 1];
    if (parent) parent.children.push(box);
    else roots.push(box);
    open.push(box);
  }
  return roots;
}

/** Appends a progress event's step message unless it repeats the last one. */
export function addStep(steps: readonly string[], p: Progress): string[] {
  const m = p.message?.trim();
  if (!m || steps[steps.length - 1] === m) return [...steps];
  return [...steps, m];
}
