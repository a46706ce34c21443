// Boot milestones as a progress track: firmware → kernel → init → login → shell.
import type { Milestone, VmState, VmSummary } from '../../../electron/common/contract.ts';

export const MILESTONES: readonly Milestone[] = ['firmware', 'kernel', 'init', 'login', 'shell'];

export const MILESTONE_LABEL: Record<Milestone, string> = {
  firmware: 'Firmware',
  kernel: 'Kernel',
  init: 'Init',
  login: 'Login',
  shell: 'Shell',
};

export interface TrackStep {
  name: Milestone;
  reached: boolean;
  /** Milliseconds after the VM started, when known. */
  afterMs?: number;
  /** The step being worked on now (the first unreached one while the VM boots). */
  current: boolean;
}

const LIVE: ReadonlySet<VmState> = new Set(['starting', 'booting', 'running']);

export function isLive(state: VmState): boolean {
  return LIVE.has(state);
}

/**
 * Milestone times may come as offsets from the start or as wall-clock epochs; both are
 * normalised to "ms after start". A later milestone implies the earlier ones happened
 * (a guest without firmware output still reached "firmware").
 */
export function bootTrack(vm: Pick<VmSummary, 'milestones' | 'startedAt' | 'state'>): TrackStep[] {
  const at = new Map<Milestone, number>();
  for (const m of vm.milestones) {
    const after = m.atMs > 1e11 ? m.atMs - vm.startedAt : m.atMs;
    at.set(m.name, Math.max(0, after));
  }
  let last = -1;
  MILESTONES.forEach((name, i) => {
    if (at.has(name)) last = i;
  });
  const booting = vm.state === 'starting' || vm.state === 'booting';
  return MILESTONES.map((name, i) => ({
    name,
    reached: i <= last,
    afterMs: at.get(name),
    current: booting && i === last + 1,
  }));
}

export function lastMilestone(
  vm: Pick<VmSummary, 'milestones' | 'startedAt' | 'state'>,
): Milestone | undefined {
  const steps = bootTrack(vm).filter((s) => s.reached);
  return steps[steps.length - 1]?.name;
}

export function reached(vm: Pick<VmSummary, 'milestones' | 'startedAt' | 'state'>, name: Milestone): boolean {
  return bootTrack(vm).some((s) => s.name === name && s.reached);
}
