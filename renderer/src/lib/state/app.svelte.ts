// The root of the renderer's state: one transport, the state classes built on it, and
// what is selected. Components read from here and call its methods; they hold no logic.
import type { VmSummary } from '../../../../electron/common/contract.ts';
import { layerText } from '../layer-info.ts';
import type { TaxSample } from '../layer-tax.ts';
import { isLive } from '../milestones.ts';
import { type LayerRef, layerId, parseLayerId, terminalTargetFor, vmPath } from '../stack-tree.ts';
import type { Transport } from '../transport.ts';
import type { ConnStatus } from '../ws-client.ts';
import { BuildsState } from './builds.svelte.ts';
import { Catalogue } from './catalogue.svelte.ts';
import { CustomiseState } from './customise.svelte.ts';
import { oneLine } from './errors.ts';
import { FlashState } from './flash.svelte.ts';
import { Host } from './host.svelte.ts';
import { Library } from './library.svelte.ts';
import { Notices } from './notices.svelte.ts';
import { DiskState } from './snapshots.svelte.ts';
import { Stacks } from './stacks.svelte.ts';
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
  readonly stacks: Stacks;
  readonly catalogue: Catalogue;
  readonly disk: DiskState;
  readonly builds: BuildsState;
  /** The centre column: the stack picture with its terminal, or the Build panel. */
  centre = $state<'stack' | 'build'>('stack');
  /** The image page's Customise and Flash columns. */
  readonly customise: CustomiseState;
  readonly flash: FlashState;
  /** The image whose page (Boot, Customise, Flash side by side) is open in the centre, if any. */
  imagePage = $state('');
  /** Set by "Flash this" until the image page has brought its Flash column into view. */
  flashFocus = $state(false);
  /** The Library panel's two faces: what is here, and what can be fetched. */
  libraryView = $state<'library' | 'get'>('library');
  /** Layer-tax measurements, one benchmark time per layer (stack.layerTax). */
  layerTax = $state<TaxSample[]>([]);
  /** Set while the benchmark runs at every layer (it takes a while nested). */
  measuringTax = $state(false);

  /** The preset whose VMs (ids `<preset>-<layer>`) are running, if any. */
  runningStack = $derived.by(
    () =>
      this.stacks.presets.find((p) => this.vms.list.some((v) => v.id.startsWith(`${p.name}-`) && !v.exit))
        ?.name,
  );

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
    this.stacks = new Stacks(transport);
    this.catalogue = new Catalogue(transport);
    this.disk = new DiskState(transport);
    this.builds = new BuildsState(transport, this.terminals);
    this.customise = new CustomiseState(transport);
    this.flash = new FlashState(transport);
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
    await Promise.all([
      this.host.load(),
      this.library.load(),
      this.vms.load(),
      this.stacks.load(),
      this.checkQemu(),
    ]);
  }

  /** A damaged QEMU bundle is not used; say so where people will see it. */
  private async checkQemu(): Promise<void> {
    try {
      const q = await this.transport.request('host.qemu', {});
      if (q.warning) this.notices.push(q.warning);
    } catch (e) {
      this.notices.push(`No QEMU to run guests: ${oneLine(e)}`);
    }
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

  /** Opens an image's page in the centre: boot it, customise it, flash it. */
  openImage(imageId: string): void {
    this.centre = 'stack';
    this.imagePage = imageId;
    void this.customise.load(imageId);
    void this.flash.load(imageId);
  }

  closeImage(): void {
    this.imagePage = '';
  }

  /** "Flash this" on a VM that booted fine: its image's page, Flash column in view. */
  flashThis(imageId: string): void {
    this.openImage(imageId);
    this.flashFocus = true;
  }

  /** Boots a stack preset and shows its outermost guest's console as it boots. */
  async bootStack(name: string): Promise<void> {
    try {
      const ids = await this.stacks.up(name);
      await this.vms.load();
      const top = ids[0];
      if (top && this.selected.kind === 'pc') this.select({ kind: 'guest-kernel', vmId: top });
    } catch (e) {
      this.notices.push(`Could not boot the stack: ${oneLine(e)}`);
    }
  }

  /** Runs the same CPU benchmark on the host, in user mode and at each layer of the running stack. */
  async measureLayerTax(): Promise<void> {
    const name = this.runningStack;
    if (!name || this.measuringTax) return;
    this.measuringTax = true;
    try {
      const rows = await this.transport.request('stack.layerTax', { name });
      this.layerTax = rows.map((r) => ({ layer: r.kind, seconds: r.seconds }));
    } catch (e) {
      this.notices.push(`Could not measure the layer tax: ${oneLine(e)}`);
    } finally {
      this.measuringTax = false;
    }
  }

  async shutDownStack(name: string): Promise<void> {
    try {
      await this.stacks.down(name);
      await this.vms.load();
    } catch (e) {
      this.notices.push(`Could not shut the stack down: ${oneLine(e)}`);
    }
  }

  /** Shows the Build panel in the centre (the stack picture comes back with showStack). */
  openBuild(): void {
    this.centre = 'build';
    void this.builds.load();
  }

  showStack(): void {
    this.centre = 'stack';
  }

  /** Boots an image a build just put in the library, back in the stack picture. */
  async bootBuilt(imageId: string): Promise<void> {
    this.centre = 'stack';
    await this.library.load();
    await this.boot(imageId);
  }

  /** Imports an image by host path; true when it is in the Library. */
  async importImage(path: string): Promise<boolean> {
    const img = await this.catalogue.import(path);
    if (!img) return false;
    await this.library.load();
    this.libraryView = 'library';
    this.notices.push(`Imported ${img.name}.`, 'info');
    return true;
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
