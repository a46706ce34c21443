// Lab mode (the desktop UI served to Debian's Chromium) against the bare tools, in one run:
// 1. lab server start → library with an enabled Boot button, vs a static server of the same
//    files → DOMContentLoaded (the page's own scripts run, nothing answers the WebSocket);
// 2. ~10 MB of guest console output drawn by xterm.js through engine → WebSocket → page
//    (flow control on), vs the engine's own QEMU argv with the serial on stdio, read and
//    discarded by node;
// 3. the page's JS heap and renderer RSS with that VM running, vs the same page before boot.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { createEngine, type Engine } from '../electron/engine/index.ts';
import { stripAnsi } from '../electron/engine/vm/milestones.ts';
import { type LabServer, startLabServer } from '../electron/lab/lab-server.ts';
import { contentType, resolveStaticPath } from '../electron/lab/static-files.ts';
import { ensureRendererBuilt, RENDERER_DIR } from '../test/e2e/build-renderer.ts';
import { bareCommand } from './bare.ts';
import { type BenchRow, median } from './stats.ts';

const CHROMIUM = '/usr/bin/chromium';
const IMAGE = 'demo-qemuarm64';
const RUNS = 3;
/**
 * 10 MiB of 'x' in 100-column lines: ~10.6 MB on the serial line (CRLF line ends). The last
 * line is 60 x's without a newline, hence the bare `echo` before the end marker.
 */
const FLOOD = "dd if=/dev/zero bs=1024 count=10240 2>/dev/null | tr '\\0' 'x' | fold -w 100; echo";
const MiB = 1024 * 1024;

const log = (line: string) => process.stderr.write(`[bench lab] ${line}\n`);

interface PageGlobals {
  __stacklabTerminalText(): string;
}

function bootButton(page: Page) {
  return page.locator(`button[aria-label="Boot ${IMAGE}"]:not([disabled])`);
}

async function waitForTerminal(page: Page, pattern: RegExp, timeout: number, what: string): Promise<void> {
  try {
    // Reading the whole buffer costs the page time; 250 ms polling keeps that small.
    await page.waitForFunction(
      ([source, flags]) =>
        new RegExp(source as string, flags as string).test(
          (globalThis as unknown as PageGlobals).__stacklabTerminalText(),
        ),
      [pattern.source, pattern.flags],
      { timeout, polling: 250 },
    );
  } catch {
    const tail = await page.evaluate(() =>
      (globalThis as unknown as PageGlobals).__stacklabTerminalText().slice(-400),
    );
    throw new Error(`terminal never showed ${what} within ${timeout} ms; it ends with: ${tail}`);
  }
}

/** A plain static server of the built renderer: no engine, no CSP, no WebSocket. */
async function startStaticServer(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const file = resolveStaticPath(root, req.url ?? '/');
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'Content-Type': contentType(file) }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Processes descended from this one (Chromium's renderers are our grandchildren). */
function descendants(): Array<{ pid: number; cmd: string; rssBytes: number }> {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out: Array<{ pid: number; cmd: string; rssBytes: number }> = [];
  for (const pid of parent.keys()) {
    let p = parent.get(pid);
    while (p && p !== process.pid) p = parent.get(p);
    if (p !== process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      out.push({ pid, cmd, rssBytes: Number(rss?.[1] ?? 0) * 1024 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** JS heap after a forced GC (CDP), and the largest renderer's RSS (the only tab's). */
async function pageMemory(page: Page): Promise<{ heapBytes: number; rendererRssBytes: number }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const heapBytes = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? Number.NaN;
    const renderers = descendants().filter((p) => p.cmd.includes('--type=renderer'));
    const rendererRssBytes = Math.max(0, ...renderers.map((r) => r.rssBytes));
    return { heapBytes, rendererRssBytes };
  } finally {
    await cdp.detach().catch(() => {});
  }
}

async function memorySamples(page: Page): Promise<{ heap: number; rss: number }> {
  const heap: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const m = await pageMemory(page);
    heap.push(m.heapBytes);
    rss.push(m.rendererRssBytes);
    await page.waitForTimeout(500);
  }
  return { heap: median(heap) / MiB, rss: median(rss) / MiB };
}

/** Boots the guest from the Library, opens its serial console and logs in as root. */
async function bootAndLogin(page: Page): Promise<string> {
  await bootButton(page).click();
  const qemuBox = page.locator('[data-layer^="qemu/"]').first();
  await qemuBox.waitFor({ timeout: 120_000 });
  const vmId = (await qemuBox.getAttribute('data-layer'))!.slice('qemu/'.length);
  const user = page.locator(`[data-layer="guest-userspace/${vmId}"]`);
  await user.waitFor({ timeout: 120_000 });
  await user.click({ position: { x: 6, y: 6 } });
  await page.locator('.term-host').click();
  await waitForTerminal(page, /login: *$/, 300_000, 'a login prompt');
  await page.keyboard.type('root', { delay: 15 });
  await page.keyboard.press('Enter');
  await waitForTerminal(page, /[#$] *$/, 60_000, 'a shell prompt');
  return vmId;
}

/** Types the flood command, then times Enter → the end marker on screen. */
async function floodThroughPage(page: Page): Promise<number> {
  const nonce = Math.random().toString(36).slice(2, 8);
  await page.keyboard.type(`${FLOOD}; echo mark-$((40+2))-${nonce}`, { delay: 15 });
  const t0 = performance.now();
  await page.keyboard.press('Enter');
  await waitForTerminal(page, new RegExp(`^mark-42-${nonce} *$`, 'm'), 900_000, 'the end marker');
  const ms = performance.now() - t0;
  // The flood really went through: the last lines before the marker are 100 x's.
  const text = await page.evaluate(() => (globalThis as unknown as PageGlobals).__stacklabTerminalText());
  if (!/^x{60} *\nmark-42-/m.test(text)) throw new Error('the page never showed the flood lines');
  return ms;
}

/**
 * The engine's argv run bare (as bench/boot.ts does): serial on stdio, not paused, own
 * overlay and socket dir. Logs in, runs the flood, and times it to the marker on stdout,
 * discarding everything else. Returns the time and the bytes that came after Enter.
 */
async function floodBare(
  binary: string,
  argv: string[],
  qemuImg: string,
  rootfs: string,
  sd: boolean,
): Promise<{ ms: number; bytes: number }> {
  const { args, cleanup } = await bareCommand(argv, qemuImg, rootfs, sd);
  const nonce = Math.random().toString(36).slice(2, 8);
  const marker = new RegExp(`\nmark-42-${nonce}\r?\n`);
  const p = spawn(binary, args, { stdio: ['pipe', 'pipe', 'ignore'] });
  try {
    return await new Promise((resolve, reject) => {
      let tail = '';
      let stage: 'login' | 'prompt' | 'flood' = 'login';
      let t0 = 0;
      let bytes = 0;
      const timer = setTimeout(() => reject(new Error(`bare QEMU timed out at stage ${stage}`)), 900_000);
      p.stdout.on('data', (b: Buffer) => {
        if (stage === 'flood') bytes += b.length;
        tail = (tail + b.toString('latin1')).slice(-4000);
        if (stage === 'login' && /login: ?$/.test(tail)) {
          stage = 'prompt';
          tail = '';
          p.stdin.write('root\r');
        } else if (stage === 'prompt' && /[#$] $/.test(stripAnsi(tail))) {
          // (stripped: ash asks for the cursor position after its prompt, and nobody answers here)
          stage = 'flood';
          tail = '';
          t0 = performance.now();
          p.stdin.write(`${FLOOD}; echo mark-$((40+2))-${nonce}\r`);
        } else if (stage === 'flood' && marker.test(tail)) {
          clearTimeout(timer);
          resolve({ ms: performance.now() - t0, bytes });
        }
      });
      p.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`bare QEMU exited (${code}) at stage ${stage}: ${tail.slice(-300)}`));
      });
    });
  } finally {
    p.kill('SIGKILL');
    await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
    cleanup();
  }
}

function killIfAlive(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export async function benchLab(): Promise<BenchRow[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed (apt-get install chromium)`);
  await ensureRendererBuilt(log);
  const homes: string[] = [];
  let browser: Browser | undefined;
  let engine: Engine | undefined;
  let server: LabServer | undefined;
  let qemuPid: number | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    const newPage = async (ctx: BrowserContext) => ctx.newPage();
    const contextOpts = { viewport: { width: 1280, height: 800 } };

    // 1, bare: a static server of the same files, to DOMContentLoaded.
    const bareStart: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const ctx = await browser.newContext(contextOpts);
      const page = await newPage(ctx);
      const t0 = performance.now();
      const st = await startStaticServer(RENDERER_DIR);
      await page.goto(st.url, { waitUntil: 'domcontentloaded', timeout: 120_000 });
      bareStart.push(performance.now() - t0);
      await ctx.close();
      await st.close();
    }

    // 1, ours: engine + lab server started in-process, to an enabled Boot button.
    // The last run's engine, server and page stay for 2 and 3.
    const ourStart: number[] = [];
    let page: Page | undefined;
    for (let i = 0; i < RUNS; i++) {
      const last = i === RUNS - 1;
      const home = mkdtempSync(path.join(os.tmpdir(), 'stacklab-bench-lab-'));
      homes.push(home);
      const ctx = await browser.newContext(contextOpts);
      const p = await newPage(ctx);
      const t0 = performance.now();
      const eng = await createEngine({ env: { ...process.env, STACKLAB_HOME: home } });
      const srv = await startLabServer({
        dispatcher: eng.dispatcher,
        hub: eng.hub,
        staticDir: RENDERER_DIR,
        log: () => {},
      });
      await p.goto(srv.url, { timeout: 120_000 });
      await bootButton(p).waitFor({ timeout: 120_000 });
      ourStart.push(performance.now() - t0);
      if (last) {
        engine = eng;
        server = srv;
        page = p;
      } else {
        await ctx.close();
        await srv.close();
        await eng.dispose();
      }
    }
    if (!page || !engine) throw new Error('the lab page never came up');
    log(`start: ours ${ourStart.map((x) => x.toFixed(0))} ms, bare ${bareStart.map((x) => x.toFixed(0))} ms`);

    // 3, bare: the same page, library only.
    const memIdle = await memorySamples(page);

    // 2, ours: boot from the Library, log in, flood, to the marker on screen.
    const vmId = await bootAndLogin(page);
    const vm = engine.supervisor.get(vmId);
    qemuPid = vm.pid;
    const ourFloodMs = await floodThroughPage(page);
    log(`flood through the page: ${ourFloodMs.toFixed(0)} ms`);

    // 3, ours: the same page with the VM running and 10 MB through its terminal.
    const memVm = await memorySamples(page);

    const { binary, argv } = vm.plan;
    const image = await engine.library.resolve(IMAGE);
    const qemuImg = (await engine.qemu()).img!;
    await engine.supervisor.stop(vmId, true);
    killIfAlive(qemuPid);
    await browser.close();
    browser = undefined;

    // 2, bare: the same argv, serial on stdio, read and discarded.
    const bare = await floodBare(binary, argv, qemuImg, image.rootfs, image.sdCard);
    log(`flood bare: ${bare.ms.toFixed(0)} ms, ${bare.bytes} bytes after Enter`);

    const oS = median(ourStart);
    const bS = median(bareStart);
    return [
      {
        name: 'lab: server start to usable library',
        ours: oS / 1000,
        bare: bS / 1000,
        unit: 's',
        ratio: oS / bS,
        note: `median of ${RUNS}; ours = engine + lab server in-process → enabled Boot button; bare = node:http static server of out/renderer → DOMContentLoaded (no engine)`,
      },
      {
        name: `lab: ~10 MB serial output (${IMAGE})`,
        ours: ourFloodMs / 1000,
        bare: bare.ms / 1000,
        unit: 's',
        ratio: ourFloodMs / bare.ms,
        note: `single run; ours = drawn by xterm.js in Chromium, flow control on; bare = same QEMU argv, serial on stdio read and discarded by node (${(bare.bytes / 1e6).toFixed(1)} MB)`,
      },
      {
        name: 'lab: renderer JS heap, one VM running',
        ours: memVm.heap,
        bare: memIdle.heap,
        unit: 'MiB',
        ratio: memVm.heap / memIdle.heap,
        note: `median of ${RUNS} after GC; ours = after the 10 MB flood, console open; bare = same page before boot`,
      },
      {
        name: 'lab: renderer process RSS, one VM running',
        ours: memVm.rss,
        bare: memIdle.rss,
        unit: 'MiB',
        ratio: memVm.rss / memIdle.rss,
        note: `median of ${RUNS}; the page's renderer process; bare = same page before boot`,
      },
    ];
  } finally {
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
    await engine?.dispose().catch(() => {});
    killIfAlive(qemuPid);
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}
