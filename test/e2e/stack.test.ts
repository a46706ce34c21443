// The nested stack end to end, through the UI: the real engine and lab server, Debian's
// Chromium, real QEMU. One click boots an x86-64 guest inside an Arm64 guest; the
// picture draws the inner QEMU inside the outer guest's userspace, and each layer's
// terminal answers for its own machine. Needs `npm run guests` (skips without).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
import { alive, clickLayer, lastLine, terminalText, typeLine, waitForTerminal } from './stack-flow.ts';

/**
 * Host QEMU of this test's seed stack: the engine names them stacklab-seed-…, and their
 * disks live under our STACKLAB_HOME (other workers may run a seed stack of their own).
 */
const seedQemuPids = (home: string) => qemuPidsWith('stacklab-seed', home);

const PARENT_IMAGE = 'demo-qemuarm64-host';
const OUTER = 'seed-arm64';
const INNER = 'seed-x86';
// Emulation inside emulation: a quiet machine needs about a minute for the inner login,
// a loaded 2-core one several. Slowness is logged, never failed on.
const INNER_LOGIN_MS = 15 * 60_000;

const guests = demoGuests();
const skipReason = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is not installed (apt-get install chromium)`
  : !guests
    ? NO_GUESTS
    : !guests.some((g) => g.name === PARENT_IMAGE) || !guests.some((g) => g.name === 'demo-qemux86-64')
      ? NO_GUESTS
      : null;
if (skipReason) console.warn(`skipping the nested-stack e2e: ${skipReason}`);

/** Logs in at a login prompt if there is one, then waits for a shell prompt. */
async function reachShell(page: Page, timeout: number, log: (l: string) => void): Promise<void> {
  const deadline = Date.now() + timeout;
  const prompt = /(login: *|[#$] *)$/;
  let nudged = 0;
  // The prompt may have scrolled by before this terminal opened: Enter asks for a fresh one.
  for (;;) {
    if (prompt.test(`${(await terminalText(page)).trimEnd()} `)) break;
    if (Date.now() > deadline) {
      await waitForTerminal(page, prompt, 1000, 'a login prompt or a shell prompt');
    }
    await page.waitForTimeout(5000);
    if (++nudged % 6 === 0) await page.keyboard.press('Enter');
  }
  if (/login: *$/.test(await lastLine(page))) {
    log('at login: logging in as root');
    await typeLine(page, 'root');
  } else {
    await page.keyboard.press('Enter');
  }
  await waitForTerminal(page, /[#$] *$/, 120_000, 'a shell prompt');
}

describe.skipIf(skipReason)('nested stack in Chromium', () => {
  let engine: Engine | undefined;
  let server: LabServer | undefined;
  let context: BrowserContext | undefined;
  const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-stack-'));
  const profile = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-stack-chromium-'));
  const serverLog: string[] = [];
  const pageErrors: string[] = [];
  const started = new Set<number>();
  let page: Page;
  const log = (l: string) => console.log(`e2e(stack): ${l}`);

  afterAll(async () => {
    await context?.close().catch(() => {});
    await server?.close().catch(() => {});
    await engine?.dispose().catch(() => {});
    // Whatever the outcome, no QEMU this test started outlives it.
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
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
  });

  it('boots the Seed stack, answers uname -m in both guests, shuts it down', {
    timeout: 40 * 60_000,
  }, async () => {
    if (!server) throw new Error('setup failed');
    expect(seedQemuPids(home), 'a seed stack is already running on this machine').toEqual([]);
    await page.goto(server.url);
    try {
      await page
        .getByTestId('connection')
        .filter({ hasText: /Connected|Ready/ })
        .waitFor({ timeout: 30_000 });

      // The Seed stack card, with its nesting drawn small.
      const card = page.locator('[data-stack="seed"]');
      await card.waitFor({ timeout: 30_000 });
      expect(await card.getByRole('img').getAttribute('aria-label')).toBe('Layers: PC › arm64 › x86');
      const t0 = Date.now();
      await card.getByRole('button', { name: 'Boot stack Seed stack', exact: true }).click();

      // While it comes up, the card shows the steps.
      await card.locator('.step').waitFor({ timeout: 60_000 });
      const steps = new Set<string>();
      const outerBox = page.locator(`[data-layer="qemu/${OUTER}"]`);
      const innerBox = page.locator(`[data-layer="guest-userspace/${OUTER}"] [data-layer="qemu/${INNER}"]`);
      const upDeadline = Date.now() + 20 * 60_000;
      while ((await innerBox.count()) === 0 || (await card.locator('.step').count()) > 0) {
        // allTextContents does not wait for the element (textContent would, for 30 s each time).
        for (const s of await card.locator('.step').allTextContents()) steps.add(s);
        if (Date.now() > upDeadline) throw new Error(`the stack did not come up; steps: ${[...steps]}`);
        const [failed] = await card.locator('.why').allTextContents();
        if (failed) throw new Error(`stack.up failed: ${failed}`);
        await page.waitForTimeout(250);
      }
      log(`every layer's QEMU ran after ${Date.now() - t0} ms; steps shown: ${[...steps].join(' | ')}`);
      // The engine's own step messages reach the card, not just its placeholder.
      expect([...steps].some((s) => s.startsWith('waiting for the stack agent'))).toBe(true);
      expect([...steps].some((s) => s.startsWith('starting x86'))).toBe(true);

      // The diagram: the nested QEMU drawn inside the Arm64 guest's userspace, inside the PC.
      await outerBox.waitFor();
      expect(
        await page
          .locator(
            `[data-layer="pc"] [data-layer="host-userspace"] [data-layer="qemu/${OUTER}"] [data-layer="guest-userspace/${OUTER}"] [data-layer="qemu/${INNER}"] [data-layer="guest-userspace/${INNER}"]`,
          )
          .count(),
      ).toBe(1);
      expect(await outerBox.getAttribute('class')).toContain('depth-1');
      expect(await innerBox.getAttribute('class')).toContain('depth-2');
      await expect
        .poll(() => card.getByRole('button', { name: 'Shut down stack Seed stack' }).count())
        .toBe(1);
      const outerPid = Number(await outerBox.locator('[data-pid]').first().getAttribute('data-pid'));
      expect(outerPid).toBeGreaterThan(1);
      started.add(outerPid);
      // The layer tax card is there, honest about having no figures.
      await page.getByTestId('layer-tax-empty').waitFor();

      // The innermost layer: the x86 guest's userspace, through the Arm64 guest.
      await clickLayer(page, `guest-userspace/${INNER}`);
      await expect
        .poll(() => page.locator(`[data-layer="guest-userspace/${INNER}"]`).getAttribute('aria-selected'))
        .toBe('true');
      await expect.poll(() => page.getByTestId('terminal-title').textContent()).toBe('Serial console');
      await page.locator('.term-host').click();
      const l0 = Date.now();
      await reachShell(page, INNER_LOGIN_MS, log);
      log(`inner x86 shell after ${Date.now() - l0} ms more (${Date.now() - t0} ms since Boot stack)`);
      await typeLine(page, 'uname -m');
      await waitForTerminal(page, /^x86_64 *$/m, 120_000, 'x86_64 from uname -m in the nested guest');
      log('nested guest answered x86_64');

      // The parent's console still answers, for its own machine.
      await clickLayer(page, `guest-userspace/${OUTER}`);
      await expect
        .poll(() => page.locator(`[data-layer="guest-userspace/${OUTER}"]`).getAttribute('aria-selected'))
        .toBe('true');
      await page.locator('.term-host').click();
      await reachShell(page, 5 * 60_000, log);
      await typeLine(page, 'uname -m');
      await waitForTerminal(page, /^aarch64 *$/m, 120_000, 'aarch64 from uname -m in the Arm64 guest');
      log('Arm64 guest answered aarch64');

      // Back on the nested guest for the picture: the innermost layer selected.
      await clickLayer(page, `guest-userspace/${INNER}`);
      await page.waitForTimeout(800);
      mkdirSync(path.join(ROOT, 'test-results'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'test-results', 'stack-nested.png') });

      // Shut down from the UI, inside out; every seed QEMU goes.
      await card.getByRole('button', { name: 'Shut down stack Seed stack', exact: true }).click();
      await card
        .getByRole('button', { name: 'Boot stack Seed stack', exact: true })
        .waitFor({ timeout: 5 * 60_000 });
      await expect.poll(() => seedQemuPids(home), { timeout: 60_000, interval: 500 }).toEqual([]);
      expect(alive(outerPid)).toBe(false);
      log(`stack shut down; ${Date.now() - t0} ms in all`);
      expect(pageErrors).toEqual([]);
    } catch (e) {
      await page.screenshot({ path: path.join(ROOT, 'test-results', 'stack-failure.png') }).catch(() => {});
      for (const pid of seedQemuPids(home)) started.add(pid);
      console.log(
        `e2e(stack): page errors:\n${pageErrors.join('\n')}\nserver log:\n${serverLog.slice(-40).join('\n')}`,
      );
      throw e;
    }
  });
});
