// What every browser test starts with: the built renderer served by a real lab server over
// the given engine, and Debian's Chromium on a fresh profile, with page errors collected.
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import type { Engine } from '../../electron/engine/index.ts';
import { type LabServer, startLabServer } from '../../electron/lab/lab-server.ts';
import { ensureRendererBuilt, RENDERER_DIR } from './build-renderer.ts';

export const CHROMIUM = '/usr/bin/chromium';

export interface LabBrowser {
  server: LabServer;
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors, in order. */
  pageErrors: string[];
  /** What the lab server logged (refusals, dropped clients). */
  serverLog: string[];
}

export async function openLabBrowser(
  engine: Pick<Engine, 'dispatcher' | 'hub'>,
  profile: string,
  opts: { viewport?: { width: number; height: number }; pageErrors?: string[]; serverLog?: string[] } = {},
): Promise<LabBrowser> {
  await ensureRendererBuilt(console.log);
  const serverLog = opts.serverLog ?? [];
  const pageErrors = opts.pageErrors ?? [];
  const viewport = opts.viewport ?? { width: 1280, height: 800 };
  const server = await startLabServer({
    dispatcher: engine.dispatcher,
    hub: engine.hub,
    staticDir: RENDERER_DIR,
    log: (l) => serverLog.push(l),
  });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport,
    colorScheme: 'light',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  return { server, context, page, pageErrors, serverLog };
}
