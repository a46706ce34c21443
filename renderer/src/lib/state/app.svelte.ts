// The root of the renderer's state: one transport, the state classes built on it, and
// what is selected. Components read from here and call its methods; they hold no logic.
import type { VmSummary } from '../../../../electron/common/contract.ts';
import { layerText } from '../layer-info.ts';
import { isLive } from '../milestones.ts';
import { type LayerRef, layerId, parseLayerId, terminalTargetFor, vmPath } from '../stack-tree.ts';
import type { Transport } from '../transport.ts';
import type { ConnStatus } from '../ws-client.ts';
import { oneLine } from './errors.ts';
import { Host } from './host.svelte.ts';
import { Library } from './library.svelte.ts';
import { Notices } from './notices.svelte.ts';
import { Tasks } from './tasks.svelte.ts';
import { Terminals } from './terminals.svelte.ts';
import { Vms } from './vms.svelte.ts';

export class AppState {
  connection = $state<ConnStatus>({ state: 'connecting', opens: 0 });
  selectedId = $state('pc');
  readonly host: Host;
  readonly library: Library;
  readonly vms: Vms;
  readonly tasks: Tasks;
  readonly terminals: Terminals;
  readonly notices = new Notices();

  selected = $derived.by((): LayerRef => parseLayerId(this.selectedId) ?? { kind: 'pc' });
  selectedVm = $derived.by(() => this.vms.get(this.selected.vmId));
  /** The VM the selected one runs inside, for nested guests. */
  selectedParent = $derived.by((): VmSummary | undefined => {
    const id = this.selected.vmId;
    if (!id) return undefined;
    const path = vmPath(this.vms.tree, id);
    return path.length > 1 ? path[path.length - 2]?.vm : undefined;
  });
  selectedText = $derived.by(() =>
    layerText(this.selected.kind, this.host.info, this.selectedVm, this.selectedParent),
  );

  constructor(readonly transport: Transport) {
    this.host = new Host(transport);
    this.library = new Library(transport);
    this.vms = new Vms(transport);
    this.tasks = new Tasks(transport);
    this.terminals = new Terminals(transport);
    this.terminals.onLeave = () => this.focusSelectedLayer();
    this.vms.onRemoved((vmId) => {
      this.terminals.dropVm(vmId);
      if (this.selected.vmId === vmId) this.select({ kind: 'pc' });
    });
    transport.on('vm.changed', (vm) => {
      if (vm.state === 'starting' || vm.state === 'booting') this.terminals.vmLive(vm.id);
    });
    transport.onStatus((s) => {
      const wasOpen = this.connection.state === 'open';
      this.connection = s;
      if (s.state !== 'open' && wasOpen) this.terminals.disconnected();
      if (s.state === 'open' && !wasOpen) {
        void this.refresh();
        if (s.opens > 1) this.terminals.reconnected();
      }
    });
    this.showTerminalFor(this.selected);
  }

  async refresh(): Promise<void> {
    await Promise.all([this.host.load(), this.library.load(), this.vms.load()]);
  }

  isSelected(ref: LayerRef): boolean {
    return this.selectedId === layerId(ref);
  }

  /** Selects a layer and shows its terminal; a mouse click also puts the keyboard there. */
  select(ref: LayerRef, focusTerminal = false): void {
    this.selectedId = layerId(ref);
    this.showTerminalFor(ref);
    // After the panel's effects have attached the terminal element.
    if (focusTerminal) requestAnimationFrame(() => this.terminals.active?.focus());
  }

  /** F6 from the terminal: back to the selected layer in the picture. */
  focusSelectedLayer(): void {
    const el = document.querySelector<HTMLElement>(`[data-layer="${CSS.escape(this.selectedId)}"]`);
    el?.focus();
  }

  private showTerminalFor(ref: LayerRef): void {
    const target = terminalTargetFor(ref);
    const vm = this.vms.get(ref.vmId);
    const label =
      target.kind === 'host' ? 'Host shell' : target.kind === 'monitor' ? 'QEMU monitor' : 'Serial console';
    this.terminals.show(target, label, vm?.imageId ?? '');
  }

  async boot(imageId: string): Promise<void> {
    try {
      const vm = await this.library.boot(imageId);
      this.vms.apply(vm);
      // Show the serial console straight away so the boot scrolls by.
      this.select({ kind: 'guest-kernel', vmId: vm.id });
    } catch (e) {
      this.notices.push(`Could not boot: ${oneLine(e)}`);
    }
  }

  /**
   * A shell in an image's root filesystem under qemu-user: its programs run straight on
   * this PC's kernel, no guest kernel and no boot. Shown inside the host's userspace.
   */
  openUsermode(imageId: string): void {
    this.selectedId = layerId({ kind: 'host-userspace' });
    const s = this.terminals.show({ kind: 'usermode', imageId }, 'User-mode shell', imageId);
    requestAnimationFrame(() => s.focus());
  }

  /** Shows a user-mode shell that is already open. */
  showSession(key: string): void {
    const s = this.terminals.get(key);
    if (!s) return;
    this.selectedId = layerId({ kind: 'host-userspace' });
    this.terminals.active = s;
    requestAnimationFrame(() => s.focus());
  }

  async stop(vmId: string, force: boolean): Promise<void> {
    try {
      await this.vms.stop(vmId, force);
    } catch (e) {
      this.notices.push(oneLine(e));
    }
  }

  async restart(vmId: string): Promise<void> {
    try {
      await this.vms.restart(vmId);
    } catch (e) {
      this.notices.push(oneLine(e));
    }
  }

  async remove(vmId: string): Promise<void> {
    try {
      await this.vms.remove(vmId);
    } catch (e) {
      this.notices.push(oneLine(e));
    }
  }

  /** The running VMs, for the "stop all" check on the way out and the header count. */
  liveCount = $derived.by(() => this.vms.list.filter((vm) => isLive(vm.state)).length);
}
