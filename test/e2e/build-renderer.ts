// The e2e specs load the built renderer. `npm test` builds it first; when a spec runs
// alone and the build is missing or older than the sources, build it here, so a test
// never passes or fails on yesterday's UI.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const RENDERER_DIR = path.join(ROOT, 'out', 'renderer');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export async function ensureRendererBuilt(log: (line: string) => void): Promise<void> {
  const index = path.join(RENDERER_DIR, 'index.html');
  const sources = Math.max(
    newestMtime(path.join(ROOT, 'renderer')),
    newestMtime(path.join(ROOT, 'electron', 'common')),
  );
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  log('e2e: building the renderer (missing or older than its sources)');
  const { build } = await import('vite');
  await build({ configFile: path.join(ROOT, 'renderer', 'vite.config.ts'), logLevel: 'warn' });
}
