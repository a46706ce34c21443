// The Build panel's state: what can be built, the form's choice, the builds the engine
// reports (`build.changed`), and the one shown with its live log terminal.
import type { BuildInfo, BuildTargets } from '../../../../electron/common/contract.ts';
import { type BuildChoice, choiceOf, dirProblem, fixChoice, isLiveBuild } from '../build.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';
import type { TerminalSession } from './terminal-session.svelte.ts';
import type { Terminals } from './terminals.svelte.ts';

export class BuildsState {
  targets = $state<BuildTargets | null>(null);
  choice = $state<BuildChoice>({ image: '', machine: '', release: '', dir: '', offline: false });
  /** Newest first. */
  list = $state<BuildInfo[]>([]);
  /** The build the panel shows. */
  shownId = $state<string | null>(null);
  /** One line: why the last start (or loading the targets) failed. */
  error = $state('');
  starting = $state(false);
  cancelling = $state(false);
  /** The shown build's log terminal. */
  log = $state<TerminalSession | null>(null);

  shown = $derived(this.list.find((b) => b.id === this.shownId));
  running = $derived(this.list.find((b) => isLiveBuild(b.state)));

  constructor(
    private readonly t: Transport,
    private readonly terminals: Terminals,
  ) {
    t.on('build.changed', (info) => this.apply(info));
  }

  apply(info: BuildInfo): void {
    const i = this.list.findIndex((b) => b.id === info.id);
    if (i >= 0) this.list[i] = info;
    else this.list = [info, ...this.list];
    if (!isLiveBuild(info.state) && info.id === this.shownId) this.cancelling = false;
  }

  async load(): Promise<void> {
    try {
      const [targets, list] = await Promise.all([
        this.t.request('build.targets', {}),
        this.t.request('build.list', {}),
      ]);
      this.targets = targets;
      this.list = list;
      this.choice = fixChoice(targets, this.choice);
      // Show what is running, else the latest build, so reopening the panel finds it again.
      if (!this.shownId) {
        const pick = list.find((b) => isLiveBuild(b.state)) ?? list[0];
        if (pick) this.show(pick.id);
      }
    } catch (e) {
      this.error = oneLine(e);
    }
  }

  /** Picks a valid machine when the image changes, keeping what still fits. */
  choose(patch: Partial<BuildChoice>): void {
    const next = { ...this.choice, ...patch };
    this.choice = this.targets ? fixChoice(this.targets, next) : next;
    this.error = '';
  }

  async start(choice: BuildChoice = this.choice): Promise<void> {
    const bad = dirProblem(choice.dir);
    if (bad) {
      this.error = bad;
      return;
    }
    this.starting = true;
    this.error = '';
    try {
      const info = await this.t.request('build.start', {
        image: choice.image,
        machine: choice.machine,
        release: choice.release,
        dir: choice.dir.trim() || undefined,
        offline: choice.offline || undefined,
      });
      this.apply(info);
      this.show(info.id);
    } catch (e) {
      this.error = oneLine(e);
    } finally {
      this.starting = false;
    }
  }

  /** "Build again": the same image, machine, release and workspace as the shown build. */
  again(): Promise<void> {
    const b = this.shown;
    if (!b) return Promise.resolve();
    this.choice = choiceOf(b);
    return this.start(this.choice);
  }

  async cancel(): Promise<void> {
    const b = this.shown;
    if (!b) return;
    this.cancelling = true;
    try {
      await this.t.request('build.cancel', { buildId: b.id });
    } catch (e) {
      this.error = oneLine(e);
    }
  }

  /** Shows a build and its log terminal (the previous build's terminal is closed). */
  show(id: string): void {
    if (this.shownId === id && this.log) return;
    const old = this.log;
    this.shownId = id;
    this.cancelling = false;
    this.log = this.terminals.session({ kind: 'build', buildId: id }, 'Build log');
    if (old && old !== this.log) this.terminals.drop(old.key);
  }
}
