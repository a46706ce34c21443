// The stack diagram's model: which layers exist and how guests nest inside each other.
// Plain TypeScript (no runes) so unit tests can import it directly.
import type { TermTarget, VmSummary } from '../../../electron/common/contract.ts';

export type LayerKind = 'pc' | 'host-kernel' | 'host-userspace' | 'qemu' | 'guest-kernel' | 'guest-userspace';

export interface LayerRef {
  kind: LayerKind;
  vmId?: string;
}

export interface VmNode {
  vm: VmSummary;
  /** Nesting depth as drawn: 1 for a guest of the PC, 2 for a guest of a guest, … */
  depth: number;
  children: VmNode[];
  /** Its parent VM is gone (or never listed), so it is drawn at the top level. */
  orphan: boolean;
}

const HOST_KINDS = new Set<LayerKind>(['pc', 'host-kernel', 'host-userspace']);
const VM_KINDS = new Set<LayerKind>(['qemu', 'guest-kernel', 'guest-userspace']);

export function layerId(ref: LayerRef): string {
  return ref.vmId === undefined ? ref.kind : `${ref.kind}/${ref.vmId}`;
}

export function parseLayerId(id: string): LayerRef | null {
  const slash = id.indexOf('/');
  const kind = (slash < 0 ? id : id.slice(0, slash)) as LayerKind;
  if (slash < 0) return HOST_KINDS.has(kind) ? { kind } : null;
  const vmId = id.slice(slash + 1);
  return VM_KINDS.has(kind) && vmId.length > 0 ? { kind, vmId } : null;
}

const byStart = (a: VmNode, b: VmNode) => a.vm.startedAt - b.vm.startedAt || a.vm.id.localeCompare(b.vm.id);

/**
 * Builds the nesting from each VM's parentId. A VM whose parent is absent, or whose
 * parent chain loops back on itself, is drawn at the top level rather than lost.
 */
export function buildStackTree(vms: readonly VmSummary[]): VmNode[] {
  const byId = new Map(vms.map((vm) => [vm.id, vm]));
  const nodes = new Map<string, VmNode>();
  for (const vm of vms) nodes.set(vm.id, { vm, depth: 1, children: [], orphan: false });

  const roots: VmNode[] = [];
  for (const node of nodes.values()) {
    const parentId = node.vm.parentId;
    if (parentId === undefined) {
      roots.push(node);
      continue;
    }
    const parent = nodes.get(parentId);
    if (!parent || reachesSelf(node.vm.id, byId)) {
      node.orphan = true;
      roots.push(node);
      continue;
    }
    parent.children.push(node);
  }

  const settle = (list: VmNode[], depth: number) => {
    list.sort(byStart);
    for (const n of list) {
      n.depth = depth;
      settle(n.children, depth + 1);
    }
  };
  settle(roots, 1);
  return roots;
}

function reachesSelf(id: string, byId: Map<string, VmSummary>): boolean {
  const seen = new Set<string>([id]);
  let cur = byId.get(id)?.parentId;
  while (cur !== undefined) {
    // A loop that does not include `id` is broken at its own members, not here.
    if (seen.has(cur)) return cur === id;
    seen.add(cur);
    cur = byId.get(cur)?.parentId;
  }
  return false;
}

/** The VM ids from the outermost guest down to `vmId` (inclusive); empty if unknown. */
export function vmPath(roots: readonly VmNode[], vmId: string): VmNode[] {
  for (const root of roots) {
    if (root.vm.id === vmId) return [root];
    const below = vmPath(root.children, vmId);
    if (below.length > 0) return [root, ...below];
  }
  return [];
}

export function flatten(roots: readonly VmNode[]): VmNode[] {
  return roots.flatMap((n) => [n, ...flatten(n.children)]);
}

/** Which terminal a layer opens: host layers → host shell, QEMU → its monitor, guest → serial 0. */
export function terminalTargetFor(ref: LayerRef): TermTarget {
  switch (ref.kind) {
    case 'pc':
    case 'host-kernel':
    case 'host-userspace':
      return { kind: 'host' };
    case 'qemu':
      return { kind: 'monitor', vmId: ref.vmId ?? '' };
    case 'guest-kernel':
    case 'guest-userspace':
      return { kind: 'serial', vmId: ref.vmId ?? '', index: 0 };
  }
}

export function targetKey(t: TermTarget): string {
  switch (t.kind) {
    case 'host':
      return 'host';
    case 'monitor':
      return `monitor/${t.vmId}`;
    case 'serial':
      return `serial/${t.vmId}/${t.index}`;
    case 'usermode':
      return `usermode/${t.imageId}/${t.arch ?? ''}`;
    case 'build':
      return `build/${t.buildId}`;
  }
}

/** The VM a terminal belongs to (its consoles go when it goes); none for host processes. */
export function targetVmId(t: TermTarget): string | undefined {
  return t.kind === 'serial' || t.kind === 'monitor' ? t.vmId : undefined;
}
