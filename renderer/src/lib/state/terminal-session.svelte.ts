// One terminal per target (host shell, a VM's serial console, a VM's monitor). The
// xterm.js instance lives as long as the session, not as long as the panel showing it:
// switching layers detaches its element and switching back reattaches it, so the
// scrollback is still there.
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import type { TermTarget } from '../../../../electron/common/contract.ts';
import { AckBatcher, chunkInput } from '../flow-control.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export type SessionStatus = 'idle' | 'opening' | 'open' | 'exited' | 'error';

export interface SessionHub {
  register(termId: string, session: TerminalSession): string[];
  unregister(termId: string): void;
}

const THEME = {
  background: '#15171c',
  foreground: '#d8dde6',
  cursor: '#8ab4f8',
  cursorAccent: '#15171c',
  selectionBackground: '#3a4a66',
  black: '#1d2026',
  red: '#f2777a',
  green: '#8fd18b',
  yellow: '#f2c66d',
  blue: '#7fb2f0',
  magenta: '#d3a0f0',
  cyan: '#6fd3d3',
  white: '#d8dde6',
  brightBlack: '#6b7280',
  brightRed: '#ff9a9c',
  brightGreen: '#b2e8a8',
  brightYellow: '#ffe08a',
  brightBlue: '#a8ccff',
  brightMagenta: '#e6c0ff',
  brightCyan: '#9ef0f0',
  brightWhite: '#ffffff',
};

export class TerminalSession {
  status = $state<SessionStatus>('idle');
  title = $state('');
  error = $state('');
  exitCode = $state<number | null>(null);
  hasSelection = $state(false);

  readonly element: HTMLDivElement;
  readonly term: Terminal;
  termId: string | null = null;
  private readonly fit = new FitAddon();
  private readonly acks: AckBatcher;
  private opened = false;
  private sentSize = { cols: 0, rows: 0 };
  private connecting: Promise<void> | null = null;

  constructor(
    readonly key: string,
    readonly target: TermTarget,
    readonly label: string,
    private readonly t: Transport,
    private readonly hub: SessionHub,
  ) {
    this.element = document.createElement('div');
    this.element.className = 'term-host';
    this.element.dataset.termKey = key;
    this.term = new Terminal({
      cols: 80,
      rows: 24,
      scrollback: 10_000,
      fontFamily: 'ui-monospace, "SF Mono", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      lineHeight: 1.15,
      cursorBlink: true,
      allowProposedApi: false,
      theme: THEME,
    });
    this.term.loadAddon(this.fit);
    this.acks = new AckBatcher((chars) => {
      const termId = this.termId;
      if (termId) this.t.request('term.ack', { termId, chars }).catch(() => {});
    });
    this.term.onData((data) => this.input(data));
    this.term.onSelectionChange(() => {
      this.hasSelection = this.term.hasSelection();
    });
    this.term.attachCustomKeyEventHandler((ev) => this.shortcut(ev));
  }

  /** Puts the terminal into `parent` and makes sure it is connected. */
  attach(parent: HTMLElement): void {
    if (this.element.parentElement !== parent) parent.appendChild(this.element);
    if (!this.opened) {
      this.term.open(this.element);
      this.opened = true;
    }
    this.fitNow();
    // A console that failed to open (the VM was still starting) gets another try when shown.
    if (this.status === 'idle' || this.status === 'error') void this.connect();
  }

  detach(): void {
    this.element.remove();
  }

  focus(): void {
    this.term.focus();
  }

  /** Opens (or reopens) the engine-side terminal; the xterm buffer is kept. */
  connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.connecting = this.doConnect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    const wasUsed = this.termId !== null || this.status === 'exited' || this.status === 'error';
    this.forgetTermId();
    this.status = 'opening';
    this.error = '';
    this.exitCode = null;
    try {
      const { termId, title } = await this.t.request('term.open', {
        target: this.target,
        cols: Math.max(2, this.term.cols),
        rows: Math.max(1, this.term.rows),
      });
      if (wasUsed) this.term.write('\r\n\x1b[2m── reconnected ──\x1b[0m\r\n');
      this.termId = termId;
      this.title = title;
      this.sentSize = { cols: this.term.cols, rows: this.term.rows };
      this.acks.reset();
      this.status = 'open';
      for (const chunk of this.hub.register(termId, this)) this.receive(chunk);
    } catch (e) {
      this.status = 'error';
      this.error = oneLine(e);
    }
  }

  /** Output from the engine. Acknowledged only once xterm.js has parsed it. */
  receive(data: string): void {
    const termId = this.termId;
    this.term.write(data, () => {
      if (this.termId === termId) this.acks.written(data.length);
    });
  }

  exited(code: number | null): void {
    this.forgetTermId();
    this.status = 'exited';
    this.exitCode = code;
    this.term.write(`\r\n\x1b[2m── ended${code === null ? '' : ` (exit ${code})`} ──\x1b[0m\r\n`);
  }

  /** The engine connection was lost: the terminal id is no longer valid. */
  orphaned(): void {
    this.forgetTermId();
    if (this.status === 'open' || this.status === 'opening') this.status = 'idle';
  }

  fitNow(): void {
    if (!this.opened || !this.element.isConnected) return;
    const dims = this.fit.proposeDimensions();
    if (!dims || !Number.isFinite(dims.cols) || !Number.isFinite(dims.rows)) return;
    if (dims.cols !== this.term.cols || dims.rows !== this.term.rows) this.fit.fit();
    const { cols, rows } = this.term;
    const termId = this.termId;
    if (termId && (cols !== this.sentSize.cols || rows !== this.sentSize.rows)) {
      this.sentSize = { cols, rows };
      this.t.request('term.resize', { termId, cols, rows }).catch(() => {});
    }
  }

  input(data: string): void {
    const termId = this.termId;
    if (!termId || this.status !== 'open') return;
    for (const chunk of chunkInput(data)) {
      this.t.request('term.input', { termId, data: chunk }).catch((e) => {
        this.error = oneLine(e);
      });
    }
  }

  async copy(): Promise<void> {
    const text = this.term.getSelection();
    if (text) await navigator.clipboard.writeText(text);
  }

  /** Paste through the clipboard API (the context menu); keyboard paste uses the native event. */
  async paste(): Promise<void> {
    const text = await navigator.clipboard.readText();
    if (text) this.term.paste(text);
  }

  selectAll(): void {
    this.term.selectAll();
  }

  clear(): void {
    this.term.clear();
  }

  /** The whole buffer as text (scrollback included), for tests and "copy all". */
  text(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines.join('\n');
  }

  dispose(): void {
    const termId = this.termId;
    this.forgetTermId();
    if (termId) this.t.request('term.close', { termId }).catch(() => {});
    this.element.remove();
    this.term.dispose();
  }

  private forgetTermId(): void {
    if (this.termId) this.hub.unregister(this.termId);
    this.termId = null;
  }

  /** Called for F6: the terminal keeps every other key, so this is the way out of it. */
  onLeave: (() => void) | null = null;

  /**
   * Ctrl+Shift+C copies; Ctrl+Shift+V is left to the browser's paste event, which xterm
   * handles; F6 leaves the terminal (Tab belongs to the shell).
   */
  private shortcut(ev: KeyboardEvent): boolean {
    if (ev.key === 'F6' && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      if (ev.type === 'keydown') {
        ev.preventDefault();
        this.onLeave?.();
      }
      return false;
    }
    if (ev.type !== 'keydown' || !ev.ctrlKey || !ev.shiftKey || ev.altKey || ev.metaKey) return true;
    if (ev.code === 'KeyC') {
      ev.preventDefault();
      void this.copy().catch(() => {});
      return false;
    }
    if (ev.code === 'KeyV') return false;
    return true;
  }
}
