// "Try, customise, flash" in the browser: the real engine and lab server, Debian's Chromium,
// real QEMU. Customise demo-qemuarm64 through its page's form (hostname + SSH key), boot it,
// read the hostname on its serial console, then "Flash this" to a file-backed card and
// compare the file with the customised image byte for byte.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestOnlyDrive } from '../../electron/engine/flash/flash-jobs.ts';
import { createEngine, type Engine } from '../../electron/engine/index.ts';
import type { LabServer } from '../../electron/lab/lab-server.ts';
import { demoGuests, NO_GUESTS } from '../helpers/cli.ts';
import { qemuPidsWith } from '../helpers/processes.ts';
import { ROOT } from './build-renderer.ts';
import { CHROMIUM, openLabBrowser } from './lab-browser.ts';
import { alive, IMAGE, lastLine, typeLine, waitForTerminal } from './stack-flow.ts';

const guests = demoGuests();
const skipReason = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is not installed (apt-get install chromium)`
  : !guests?.some((g) => g.name === IMAGE)
    ? guests
      ? `${IMAGE} missing from the demo guests: run npm run guests`
      : NO_GUESTS
    : null;
if (skipReason) console.warn(`skipping the customise-and-flash e2e: ${skipReason}`);

const GiB = 1024 ** 3;
const HOSTNAME = 'flashed-from-the-ui';
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** A real ed25519 public key from ssh-keygen when installed; else one assembled the same way. */
function publicKey(dir: string): string {
  const f = path.join(dir, 'id_ed25519');
  if (spawnSync('ssh-keygen', ['-?']).error === undefined) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'e2e@stacklab', '-f', f]);
    return readFileSync(`${f}.pub`, 'utf8').trim();
  }
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, name.length]),
    name,
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, 7),
  ]);
  return `ssh-ed25519 ${blob.toString('base64')} e2e@stacklab`;
}

/** What the page offers the test code inside page.evaluate. */
interface PageGlobals {
  __flashSeen: string[];
  document: Document;
  MutationObserver: typeof MutationObserver;
}

describe.skipIf(skipReason)('customise, boot and flash in Chromium', () => {
  let engine: Engine | undefined;
  let server: LabServer | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-e2e-flash-'));
  const home = path.join(tmp, 'home');
  const profile = path.join(tmp, 'chromium');
  const card = path.join(tmp, 'card.img');
  const serverLog: string[] = [];
  const pageErrors: string[] = [];
  const shots = path.join(ROOT, 'test-results');

  // TEST-ONLY MOCK, the only one here: no SD card reader exists on this machine, so the
  // engine is given the drive list as data. The card is a regular file the flash writes;
  // the system drive is there to be refused.
  const drives: TestOnlyDrive[] = [
    {
      device: '/dev/nvme0n1',
      raw: '/dev/nvme0n1',
      description: 'System SSD',
      size: 512 * GiB,
      removable: false,
      system: true,
      virtual: false,
      mountpoints: ['/', '/home'],
      readOnly: false,
    },
    {
      device: '/dev/sdz',
      raw: '/dev/sdz',
      description: 'Test card (file-backed)',
      size: 4 * GiB,
      removable: true,
      system: false,
      virtual: false,
      mountpoints: [],
      readOnly: false,
      file: card,
    },
  ];

  beforeAll(async () => {
    mkdirSync(home);
    engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: home }, testOnlyDrives: drives });
    ({ server, context, page } = await openLabBrowser(engine, profile, {
      viewport: { width: 1440, height: 900 },
      pageErrors,
      serverLog,
    }));
  });

  afterAll(async () => {
    await context?.close().catch(() => {});
    await server?.close().catch(() => {});
    await engine?.dispose().catch(() => {});
    for (const pid of qemuPidsWith(home)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('customises through the form, boots, reads the hostname, flashes this to a file-backed card', async () => {
    const log = (l: string) => console.log(`e2e(flash): ${l}`);
    try {
      const key = publicKey(tmp);
      const base = path.join(
        guests!.find((g) => g.name === IMAGE)!.deployDir,
        `stacklab-${IMAGE}.rootfs.ext4`,
      );
      const baseSha = sha256(base);
      await page.goto(server!.url);
      await page
        .getByTestId('connection')
        .filter({ hasText: /Connected|Ready/ })
        .waitFor({ timeout: 30_000 });

      // The Library card opens the image's page: Boot, Customise and Flash side by side.
      await page.getByRole('button', { name: `Open ${IMAGE}`, exact: true }).click();
      const pageEl = page.getByTestId('image-page');
      await pageEl.waitFor();
      const form = page.getByTestId('customise-column');
      const flashCol = page.getByTestId('flash-column');
      const bootCol = page.getByTestId('boot-column');

      // Inline validation: a bad hostname is named in one line once the field is left.
      const hostname = form.getByLabel('Hostname');
      await hostname.fill('bad_name');
      await hostname.blur();
      await expect
        .poll(() => form.getByRole('alert').first().textContent())
        .toBe('Hostname may only hold letters, digits, hyphens and dots ("bad_name")');
      await hostname.fill(HOSTNAME);
      await form.getByLabel('SSH public key').fill('ssh-ed25519 not-a-key');
      await form.getByLabel('SSH public key').blur();
      await expect
        .poll(() => form.getByRole('alert').first().textContent())
        .toMatch(/^SSH key has a key body/);
      await form.getByLabel('SSH public key').fill(key);
      await form.getByLabel('SSH public key').blur();
      expect(await form.getByRole('alert').count()).toBe(0);

      // The drives: the system drive greyed with its reason, the card chosen.
      const sys = flashCol.locator('[data-device="/dev/nvme0n1"]');
      await sys.waitFor();
      expect(await sys.getAttribute('class')).toMatch(/refused/);
      expect(await sys.locator('input[type="radio"]').isDisabled()).toBe(true);
      expect(await sys.getByTestId('drive-reason').textContent()).toBe(
        '/dev/nvme0n1 (System SSD) is a system drive; Stacklab never writes to one',
      );
      const cardRow = flashCol.locator('[data-device="/dev/sdz"]');
      expect(await cardRow.locator('input[type="radio"]').isEnabled()).toBe(true);
      expect(await cardRow.locator('input[type="radio"]').isChecked()).toBe(true);
      expect(await flashCol.getByTestId('flash-source').textContent()).toMatch(/as it came/);

      // Apply: the settings go into the VM's working copy.
      const t0 = Date.now();
      await form.getByRole('button', { name: 'Apply', exact: true }).click();
      await form.getByTestId('customise-note').waitFor({ timeout: 60_000 });
      log(`applied in ${Date.now() - t0} ms`);
      await expect
        .poll(() => form.getByTestId('customise-applied').textContent())
        .toContain(`/etc/hostname: ${HOSTNAME}`);
      await expect
        .poll(() => flashCol.getByTestId('flash-source').textContent())
        .toMatch(/with its customisation/);
      await page.screenshot({ path: path.join(shots, 'image-page-customised.png') });

      // Boot it and read the hostname and the key on the serial console.
      const t1 = Date.now();
      await bootCol.getByRole('button', { name: 'Boot', exact: true }).click();
      await expect
        .poll(() => page.getByTestId('terminal-title').textContent(), { timeout: 60_000 })
        .toBe('Serial console');
      await page.locator('.term-host').click();
      await waitForTerminal(page, /(login: *|[#$] *)$/, 180_000, 'a login prompt or a shell prompt');
      log(`login prompt ${Date.now() - t1} ms after Boot`);
      if (/login: *$/.test(await lastLine(page))) await typeLine(page, 'root');
      else await page.keyboard.press('Enter');
      await waitForTerminal(page, /[#$] *$/, 30_000, 'a shell prompt');
      await typeLine(page, 'hostname');
      await waitForTerminal(page, new RegExp(`^${HOSTNAME} *$`, 'm'), 30_000, `${HOSTNAME} from hostname`);
      await typeLine(page, "grep -c 'e2e@stacklab' /root/.ssh/authorized_keys && echo key-$((40+2))");
      await waitForTerminal(page, /^key-42 *$/m, 30_000, 'the authorised key in the guest');
      log('the guest answered with the customised hostname and has the key');

      // "Flash this" on the VM that booted fine.
      await page.getByTestId('inspector').getByRole('button', { name: 'Flash this…', exact: true }).click();
      await flashCol.getByRole('button', { name: 'Flash…', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Erase /dev/sdz and write it?' });
      await dialog.waitFor();
      expect(await dialog.textContent()).toMatch(
        /Everything on Test card \(file-backed\) \(\/dev\/sdz\), 4\.3 GB is replaced by demo-qemuarm64 with its customisation/,
      );
      // Watch the progress area as the page draws it: every state and phase it shows.
      await page.evaluate(() => {
        const g = globalThis as unknown as PageGlobals;
        g.__flashSeen = [];
        const col = g.document.querySelector('[data-testid="flash-column"]')!;
        const note = () => {
          const el = col.querySelector('[data-testid="flash-progress"]');
          if (!el) return;
          const bar = el.querySelector('progress');
          const entry = `${el.getAttribute('data-state')}|${el.querySelector('[data-testid="flash-phase"]')?.textContent}|${bar ? bar.getAttribute('value') : ''}`;
          if (g.__flashSeen.at(-1) !== entry) g.__flashSeen.push(entry);
        };
        new g.MutationObserver(note).observe(col, {
          subtree: true,
          childList: true,
          attributes: true,
          characterData: true,
        });
      });
      const t2 = Date.now();
      await dialog.getByRole('button', { name: 'Erase and write', exact: true }).click();
      const progress = flashCol.getByTestId('flash-progress');
      await expect.poll(() => progress.getAttribute('data-state'), { timeout: 120_000 }).toBe('done');
      log(`flash finished ${Date.now() - t2} ms after the confirmation`);
      const seen = await page.evaluate(() => (globalThis as unknown as PageGlobals).__flashSeen);
      log(`progress as drawn: ${seen.join(' → ')}`);
      expect(seen.some((s) => s.startsWith('running|Writing|'))).toBe(true);
      expect(seen.some((s) => s.startsWith('running|Verifying|'))).toBe(true);
      expect(seen.at(-1)).toMatch(/^done\|Written and verified\|/);
      expect(await flashCol.getByTestId('flash-detail').textContent()).toMatch(
        /: every byte read back matches the image\.$/,
      );
      await page.screenshot({ path: path.join(shots, 'image-page-flashed.png') });

      // The card holds exactly the customised working copy the VM booted, not the pristine image.
      const working = (
        JSON.parse(readFileSync(path.join(home, 'vms', IMAGE, 'working-base.json'), 'utf8')) as {
          path: string;
        }
      ).path;
      const written = readFileSync(card);
      expect(written.length).toBe(readFileSync(working).length);
      expect(written.equals(readFileSync(working))).toBe(true);
      expect(sha256(card)).not.toBe(baseSha);
      expect(sha256(base)).toBe(baseSha); // the image itself never changed

      // Stop the VM from its page.
      await bootCol.getByRole('button', { name: 'Stop', exact: true }).click();
      await expect
        .poll(() => bootCol.locator('[data-state]').first().getAttribute('data-state'), { timeout: 120_000 })
        .toBe('stopped');
      await expect.poll(() => qemuPidsWith(home).length, { timeout: 15_000 }).toBe(0);
      expect(pageErrors).toEqual([]);
    } catch (e) {
      await page.screenshot({ path: path.join(shots, 'flash-failure.png') }).catch(() => {});
      console.log(
        `e2e(flash): page errors:\n${pageErrors.join('\n')}\nserver log:\n${serverLog.slice(-30).join('\n')}`,
      );
      throw e;
    }
  });
});
