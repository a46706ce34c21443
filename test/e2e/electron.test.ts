// The same story as lab.test.ts, in the Electron app through Playwright's _electron.
// Needs an Electron binary (its download is blocked on machines without network) and
// the built main process; otherwise it reports itself skipped with the reason.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { _electron, type ElectronApplication } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { demoGuests, NO_GUESTS } from '../helpers/cli.ts';
import { ROOT } from './build-renderer.ts';
import { alive, IMAGE, runStackFlow } from './stack-flow.ts';

function electronBinary(): string | null {
  try {
    // The electron package's main export is the path of its downloaded binary.
    const p = createRequire(import.meta.url)('electron') as unknown;
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

const binary = electronBinary();
const main = path.join(
  ROOT,
  JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).main as string,
);
const guests = demoGuests();
const skipReason = !binary
  ? 'no Electron binary (node_modules/electron has no dist: its download needs network)'
  : !existsSync(main)
    ? `the main process is not built (${path.relative(ROOT, main)}): run npm run build`
    : !existsSync(path.join(ROOT, 'out', 'renderer', 'index.html'))
      ? 'the renderer is not built: run npm run build'
      : !guests?.some((g) => g.name === IMAGE)
        ? NO_GUESTS
        : null;
if (skipReason) console.warn(`skipping Electron e2e: ${skipReason}`);

describe.skipIf(skipReason)('the Electron app', () => {
  let app: ElectronApplication | undefined;
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-electron-'));
  const pids: number[] = [];

  afterAll(async () => {
    await app?.close().catch(() => {});
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(home, { recursive: true, force: true });
  });

  it('boots demo-qemuarm64 from the UI, uses its consoles, survives a flood, stops it', async () => {
    app = await _electron.launch({
      executablePath: binary!,
      args: [main, '--no-sandbox', '--disable-gpu'],
      env: { ...process.env, STACKLAB_HOME: home },
    });
    const page = await app.firstWindow();
    await page.setViewportSize({ width: 1280, height: 800 });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // The preload bridge, not the WebSocket, carries the contract here.
    expect(await page.evaluate(() => typeof (globalThis as { stacklab?: unknown }).stacklab)).toBe('object');
    const result = await runStackFlow(page, {
      screenshotDir: path.join(ROOT, 'test-results', 'electron'),
      log: (l) => console.log(`e2e(electron): ${l}`),
    });
    pids.push(result.pid);
    expect(result.milestoneCounts.length).toBeGreaterThanOrEqual(2);
    expect(result.selectAfterFloodMs).toBeLessThan(2000);
    await expect.poll(() => alive(result.pid), { timeout: 15_000 }).toBe(false);
    expect(errors).toEqual([]);
    expect(result.shellReached, 'the boot track never showed the shell milestone').toBe(true);
  });
});
