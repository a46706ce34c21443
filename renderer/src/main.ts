import '@xterm/xterm/css/xterm.css';
import './app.css';
import { mount } from 'svelte';
import App from './App.svelte';
import { AppState } from './lib/state/app.svelte.ts';
import { createTransport } from './lib/transport.ts';

const app = new AppState(createTransport());

// Read-only hook for end-to-end tests: the text of a terminal's buffer (scrollback
// included), so tests need not scrape the DOM renderer's rows.
Object.defineProperty(window, '__stacklabTerminalText', {
  value: (key?: string): string => {
    const s = key ? app.terminals.get(key) : app.terminals.active;
    return s ? s.text() : '';
  },
});

mount(App, { target: document.getElementById('app')!, props: { app } });
