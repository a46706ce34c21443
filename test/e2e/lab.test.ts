// Lab mode end to end: the real engine and lab server, Debian's Chromium driven by
// Playwright, real QEMU booting the demo guest. Needs `npm run guests` (skips without).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import type { LabServer } from '../../electron/lab/lab-server.ts';
import { demoGuests, NO_GUESTS } from '../helpers/cli.ts';
import { qemuPidsWith } from '../helpers/processes.ts';
import { ROOT } from './build-renderer.ts';
import { CHROMIUM, openLabBrowser } from './lab-browser.ts';
import { alive, IMAGE, runStackFlow, runUsermodeFlow } from './stack-flow.ts';

const QEMU_USER = '/usr/bin/qemu-aarch64-static';
const guests = demoGuests();
const skipReason = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is not installed (apt-get install chromium)`
  : !guests?.some((g) => g.name === IMAGE)
    ? guests
      ? `${IMAGE} missing from the demo guests: run npm run guests`
      : NO_GUESTS
    : null;
if (skipReason) console.warn(`skipping lab-mode e2e: ${skipReason}`);
else if (!existsSync(QEMU_USER))
  console.warn(`skipping the user-mode shell e2e: ${QEMU_USER} is not installed`);

describe.skipIf(skipReason)('lab mode in Chromium', () => {
  let engine: Engine | undefined;
  let server: LabServer | undefined;
  let context: BrowserContext | undefined;
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-'));
  const profile = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-chromium-'));
  const serverLog: string[] = [];
  const pageErrors: string[] = [];
  const pids: number[] = [];
  const foreign: string[] = [];
  let page: Page;

  afterAll(async () => {
    await context?.close().catch(() => {});
    await server?.close().catch(() => {});
    await engine?.dispose().catch(() => {});
    // Whatever the outcome, no QEMU of ours outlives the test.
    for (const pid of [...pids, ...qemuPidsWith(home)]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(home, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  });

  beforeAll(async () => {
    engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
    ({ server, context, page } = await openLabBrowser(engine, profile, {
      viewport: { width: 1280, height: 800 },
      pageErrors,
      serverLog,
    }));
    // No network at run time: every request the page makes stays on our origin.
    const origin = new URL(server.url).origin;
    page.on('request', (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
  });

  it('boots demo-qemuarm64 from the UI, uses its consoles, survives a flood, stops it', async () => {
    if (!server) throw new Error('setup failed');
    await page.goto(server.url);
    let result: Awaited<ReturnType<typeof runStackFlow>>;
    try {
      result = await runStackFlow(page, {
        screenshotDir: path.join(ROOT, 'test-results'),
        log: (l) => console.log(`e2e(lab): ${l}`),
      });
    } catch (e) {
      // What the page and the server said is the fastest way to the cause.
      await page.screenshot({ path: path.join(ROOT, 'test-results', 'lab-failure.png') }).catch(() => {});
      console.log(
        `e2e(lab): page errors:\n${pageErrors.join('\n')}\nserver log:\n${serverLog.slice(-40).join('\n')}`,
      );
      throw e;
    }
    pids.push(result.pid);

    // The picture went live step by step, not all at once.
    expect(result.milestoneCounts.length).toBeGreaterThanOrEqual(2);
    expect([...result.milestoneCounts].sort((a, b) => a - b)).toEqual(result.milestoneCounts);
    expect(result.states[result.states.length - 1]).toBe('running');
    expect(result.selectAfterFloodMs).toBeLessThan(2000);

    // The QEMU process is gone, and no other qemu-system of ours remains.
    await expect.poll(() => alive(result.pid), { timeout: 15_000 }).toBe(false);
    expect(qemuPidsWith(home)).toEqual([]);

    // A dark-mode look at the stopped stack, for the record.
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(600); // let the boxes' colour transitions finish
    await page.screenshot({ path: path.join(ROOT, 'test-results', 'stack-view-dark.png') });

    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
    console.log(`e2e(lab): ${JSON.stringify(result)}`);
    expect(result.shellReached, 'the boot track never showed the shell milestone').toBe(true);
  });

  it.skipIf(!existsSync(QEMU_USER))(
    'opens a user-mode shell of demo-qemuarm64 from the Library',
    async () => {
      if (!server) throw new Error('setup failed');
      await page.emulateMedia({ colorScheme: 'light' });
      await page.goto(server.url);
      await runUsermodeFlow(page, { log: (l) => console.log(`e2e(lab): ${l}`) });
      expect(pageErrors).toEqual([]);
    },
  );
});
