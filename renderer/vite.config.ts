// Vite build for the renderer. Relative base so the same bundle loads under
// app://stacklab/ in Electron and over http in lab mode.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');

export default defineConfig({
  root: here,
  base: './',
  // Svelte 5 compiles TypeScript itself: no preprocessors, so no svelte.config.js.
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: path.join(repo, 'out', 'renderer'),
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill would be bundled anyway; Chromium has modulepreload natively.
    modulePreload: { polyfill: false },
    sourcemap: true,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    host: '127.0.0.1',
    // The contract lives outside renderer/.
    fs: { allow: [repo] },
  },
});
