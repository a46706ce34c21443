// The Build panel in Chromium, against the real engine and lab server.
// Without bitbake: the target picker lists every image with its machines and one-line
// description, and bad input (a relative folder, a folder that is a file) is one clear
// line in the panel, starting nothing.
// With bitbake (POKY_DIR, as in test/integration/bitbake.test.ts): a real build of
// stacklab-guest-image from a fresh workspace. The progress bar moves while bitbake parses,
// the log terminal fills with bitbake's output, the build fails at do_fetch (no network
// here) with the summary card, and "Build again" runs again from the parse cache.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_REFUSAL } from '../../electron/engine/build/build-user.ts';
import { checkDiskSpace } from '../../electron/engine/build/workspace.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import type { LabServer } from '../../electron/lab/lab-server.ts';
import { bitbakeSkipReason, buildUser, isRoot, runAs, userExists } from '../helpers/bitbake-env.ts';
import { ROOT } from './build-renderer.ts';
import { CHROMIUM, openLabBrowser } from './lab-browser.ts';

const MIN = 60_000;
const noBrowser = existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install chromium)`;
if (noBrowser) console.warn(`skipping the build panel e2e: ${noBrowser}`);
const noBitbake = noBrowser ?? bitbakeSkipReason();
if (!noBrowser && noBitbake) console.warn(`skipping the real build in the browser: ${noBitbake}`);
// As root the engine needs a build user to run bitbake as; without one the panel says why.
const blockedAsRoot = isRoot && !userExists(buildUser);

/** What the page offers the test code inside page.evaluate. */
interface PageGlobals {
  __stacklabTerminalText(key?: string): string;
}

/** The summary card as people read it: its title and its label → value rows. */
async function readCard(page: Page): Promise<{ title: string; rows: Record<string, string> }> {
  const card = page.getByTestId('build-summary');
  const labels = await card.locator('dt').allTextContents();
  const values = await card.locator('dd').allTextContents();
  return {
    title: ((await card.locator('h3').textContent()) ?? '').trim(),
    rows: Object.fromEntries(labels.map((l, i) => [l.trim(), (values[i] ?? '').trim()])),
  };
}

function logText(page: Page, buildId: string): Promise<string> {
  return page.evaluate(
    (k) => (globalThis as unknown as PageGlobals).__stacklabTerminalText(k),
    `build/${buildId}`,
  );
}

describe.skipIf(noBrowser)('the Build panel in Chromium', () => {
  let engine: Engine | undefined;
  let server: LabServer | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  // Reachable by the build user (mkdtemp makes 0700 folders): the workspace goes in here.
  const keep = process.env.STACKLAB_TEST_WORKDIR;
  const tmp = mkdtempSync(path.join(keep ? path.resolve(keep) : os.tmpdir(), 'stacklab-e2e-build-'));
  chmodSync(tmp, 0o755);
  const home = path.join(tmp, 'home');
  const profile = path.join(tmp, 'chromium');
  const pageErrors: string[] = [];
  const serverLog: string[] = [];

  beforeAll(async () => {
    mkdirSync(home);
    if (runAs && !blockedAsRoot) execFileSync('chown', [`${runAs}:`, tmp]);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      STACKLAB_HOME: home,
      // The download and sstate caches: kept with STACKLAB_TEST_WORKDIR, like the parse cache.
      STACKLAB_CACHE: keep ? path.join(path.resolve(keep), 'e2e-cache') : path.join(tmp, 'cache'),
    };
    if (runAs && !blockedAsRoot) env.STACKLAB_BUILD_USER = runAs;
    engine = await createEngine({ env });
    ({ server, context, page } = await openLabBrowser(engine, profile, {
      viewport: { width: 1400, height: 900 },
      pageErrors,
      serverLog,
    }));
    await page.goto(server.url);
    await page.getByTestId('open-build').click();
    await page.getByTestId('build-panel').waitFor();
  });

  afterAll(async () => {
    await context?.close().catch(() => {});
    await server?.close().catch(() => {});
    await engine?.dispose().catch(() => {}); // cancels a build still running
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists every image with its machines and one-line description', async () => {
    const images = await page.getByTestId('build-image').locator('option').allTextContents();
    expect(images).toEqual([
      'stacklab-guest-image',
      'stacklab-host-image',
      'stacklab-rpi-image',
      'stacklab-builder-image',
      'core-image-minimal',
    ]);
    const machines = () => page.getByTestId('build-machine').locator('option').allTextContents();
    const summary = () => page.getByTestId('build-image-summary').textContent();
    expect(await machines()).toEqual(['qemux86-64', 'qemuarm64']);
    expect(await summary()).toBe('Small guest (core-image-minimal) deployed as ext4 and qcow2');
    await page.getByTestId('build-image').selectOption('stacklab-rpi-image');
    expect(await machines()).toEqual(['raspberrypi3-64', 'raspberrypi4-64']);
    expect(await summary()).toBe('Raspberry Pi SD card image (wic.bz2 + bmap) through meta-raspberrypi');
    await page.getByTestId('build-image').selectOption('stacklab-host-image');
    expect(await machines()).toEqual(['qemuarm64']);
    expect(await summary()).toMatch(/the seed stack/);
    const releases = await page.getByTestId('build-release').locator('option').allTextContents();
    expect(releases).toEqual(['scarthgap (5.0)', 'walnascar (5.2)', 'whinlatter (5.3)']);
    await page.screenshot({ path: path.join(ROOT, 'test-results', 'build-picker.png') });
  });

  it('says in one line why a workspace folder will not do, and starts nothing', async () => {
    if (blockedAsRoot) {
      // No build user: the panel says why before anyone presses Start, and Start is off.
      await expect.poll(() => page.getByTestId('build-blocked').textContent()).toBe(ROOT_REFUSAL);
      expect(await page.getByTestId('build-start').isDisabled()).toBe(true);
      return;
    }
    const dir = page.getByTestId('build-dir');
    const error = page.getByTestId('build-error');
    await dir.fill('relative/ws');
    await page.getByTestId('build-start').click();
    await expect
      .poll(() => error.textContent())
      .toBe('The workspace folder must be a full path (starting with /), not "relative/ws".');
    const file = path.join(tmp, 'not-a-folder.txt');
    writeFileSync(file, 'a file');
    await dir.fill(file);
    await page.getByTestId('build-start').click();
    await expect
      .poll(() => error.textContent())
      .toBe(`${file} is a file, not a folder: choose a folder for the build workspace`);
    expect(await page.getByTestId('build-run').count()).toBe(0);
    expect(await engine!.dispatcher.dispatch('build.list', {})).toEqual([]);
    await dir.fill('');
    expect(pageErrors).toEqual([]);
  });

  it.skipIf(noBitbake)(
    'runs bitbake: the bar moves while it parses, the log fills, do_fetch fails with a summary, Build again',
    async () => {
      // poky comes from the checkout in POKY_DIR (the engine's env is a copy of ours); a
      // fresh workspace, so the parse is a real, cold one.
      const ws = path.join(tmp, 'ws-guest');
      await page.getByTestId('build-image').selectOption('stacklab-guest-image');
      await page.getByTestId('build-machine').selectOption('qemux86-64');
      await page.getByTestId('build-release').selectOption('scarthgap');
      await page.getByTestId('build-dir').fill(ws);
      await page.getByLabel('Offline (download cache only)').check();
      const t0 = Date.now();
      await page.getByTestId('build-start').click();
      const run = page.getByTestId('build-run');
      await run.waitFor({ timeout: 30_000 });
      const buildId = (await run.getAttribute('data-build-id'))!;
      expect(buildId).toMatch(/^stacklab-guest-image-qemux86-64-[0-9a-f]{6}$/);

      // Sample the bar as people see it until bitbake has finished parsing.
      const bar = page.getByTestId('build-progress');
      const parsing: number[] = [];
      const logLengths: number[] = [];
      let phase = '';
      const deadline = Date.now() + 25 * MIN;
      while (Date.now() < deadline) {
        phase = (await bar.getAttribute('data-phase')) ?? '';
        const value = Number(await bar.getAttribute('aria-valuenow'));
        if (phase === 'parsing' && value > 0 && value < 100 && parsing.at(-1) !== value) parsing.push(value);
        if (phase === 'parsing') logLengths.push((await logText(page, buildId)).length);
        const state = await run.getAttribute('data-state');
        if (
          ['setscene', 'tasks', 'failed', 'done'].includes(phase) ||
          (state !== 'running' && state !== 'preparing')
        )
          break;
        await page.waitForTimeout(250);
      }
      const parseMs = Date.now() - t0;
      console.log(
        `e2e(build): parsing shown for ${(parseMs / 1000).toFixed(0)} s; bar values ${parsing.join(' ')}; then ${phase}`,
      );
      await page.screenshot({ path: path.join(ROOT, 'test-results', 'build-parsing.png') });
      // The bar moved, upwards, through several values while bitbake parsed.
      expect(parsing.length, `bar values while parsing: ${parsing.join(' ')}`).toBeGreaterThanOrEqual(3);
      expect([...parsing].sort((a, b) => a - b)).toEqual(parsing);
      // The log terminal filled while it did.
      expect(logLengths.at(-1)! - logLengths[0]!).toBeGreaterThan(0);

      // The failure at do_fetch, summed up.
      await expect
        .poll(() => run.getAttribute('data-state'), { timeout: 20 * MIN, interval: 1000 })
        .toBe('failed');
      const card = page.getByTestId('build-summary');
      const first = await readCard(page);
      console.log(`e2e(build): summary card: ${JSON.stringify(first)}`);
      expect(first.title).toMatch(/^Build failed: \S+ do_fetch failed$/);
      expect(first.rows['Failed task']).toMatch(/^\S+ do_fetch( \(the first of \d+ failed tasks\))?$/);
      const logPath = first.rows.Log;
      expect(logPath).toMatch(/\/temp\/log\.do_fetch\.\d+$/);
      expect(readFileSync(logPath!, 'utf8')).toMatch(/NetworkAccess/);
      expect(first.rows.Error).toMatch(
        /^network access is off \(BB_NO_NETWORK\) and \S+ is not in the download cache$/,
      );
      expect(first.rows.Workspace).toBe(ws);
      expect(await card.getByTestId('build-again').isEnabled()).toBe(true);
      const disk = checkDiskSpace(ws);
      if (!disk.ok) {
        expect(await page.getByTestId('build-warning').first().textContent()).toMatch(
          /^only \d+ GB free on .+; a Yocto build needs about 100 GB/,
        );
      }
      const log = await logText(page, buildId);
      expect(log).toMatch(/Parsing of \d+ \.bb files complete \(0 cached, \d+ parsed\)/);
      expect(log).toMatch(/ERROR: \S+ do_fetch: /);
      expect(log).toContain('[stacklab] failed: ');
      await page.screenshot({ path: path.join(ROOT, 'test-results', 'build-failed.png') });
      console.log(`e2e(build): first build ${((Date.now() - t0) / 1000).toFixed(0)} s`);

      // Build again: a new build in the same workspace, from the parse cache.
      const t1 = Date.now();
      await page.getByTestId('build-again').click();
      await expect.poll(() => run.getAttribute('data-build-id'), { timeout: 30_000 }).not.toBe(buildId);
      const againId = (await run.getAttribute('data-build-id'))!;
      await expect
        .poll(() => run.getAttribute('data-state'), { timeout: 15 * MIN, interval: 1000 })
        .toBe('failed');
      expect((await readCard(page)).rows['Failed task']).toMatch(/^\S+ do_fetch/);
      // From the first build's parse cache: all of it loaded, or all but a few recipes.
      expect(await logText(page, againId)).toMatch(
        /Loaded [1-9]\d* entries from dependency cache|Parsing of \d+ \.bb files complete \([1-9]\d* cached/,
      );
      console.log(`e2e(build): build again ${((Date.now() - t1) / 1000).toFixed(0)} s`);

      // Cancel: once bitbake shows progress, the button types Ctrl-C into its pty.
      await page.getByTestId('build-start').click();
      await expect.poll(() => run.getAttribute('data-build-id'), { timeout: 30_000 }).not.toBe(againId);
      const cancelId = (await run.getAttribute('data-build-id'))!;
      await expect
        .poll(() => bar.getAttribute('aria-valuetext'), { timeout: 5 * MIN, interval: 100 })
        .toMatch(/Loading cache|Parsing recipes|Initialising tasks|Running tasks/);
      await page.getByTestId('build-cancel').click();
      await expect
        .poll(() => run.getAttribute('data-state'), { timeout: 5 * MIN, interval: 500 })
        .toBe('cancelled');
      expect((await readCard(page)).title).toBe('Build cancelled');
      await expect.poll(() => logText(page, cancelId)).toContain('Keyboard Interrupt, closing down...');
      expect(pageErrors).toEqual([]);
    },
    45 * MIN,
  );
});
