// The main-process IPC bridge with the real contract and Dispatcher. Electron itself
// cannot run here, so the sender frame is given as the plain {url, isMainFrame} that
// main.ts reads off `event.senderFrame`; the handlers are a test double for the engine's
// business logic, except term.*, which drive real Terminals (real ptys).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dispatcher, EventHub, type Handlers } from '../../electron/engine/engine.ts';
import { Terminals } from '../../electron/engine/term/terminals.ts';
import { createIpcBridge } from '../../electron/main/ipc-bridge.ts';
import { handlersWith } from '../helpers/handlers.ts';

const APP = { url: 'app://stacklab/index.html', isMainFrame: true };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp: string;
let terms: Terminals;
let calls: string[];
let logs: string[];
let bridge: ReturnType<typeof createIpcBridge>;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-ipc-'));
  const hub = new EventHub();
  terms = new Terminals({
    hub,
    hostShell: { file: '/bin/sh', args: [], cwd: tmp, env: { PATH: process.env.PATH, HOME: tmp } },
    resolve: (t) => {
      throw new Error(`no VM ${t.vmId}`);
    },
  });
  calls = [];
  logs = [];
  const ok = { ok: true as const };
  const handlers: Handlers = handlersWith({
    'vm.list': async () => {
      calls.push('vm.list');
      return [];
    },
    'vm.stop': async (p) => {
      calls.push('vm.stop');
      throw new Error(`no VM ${p.vmId}\nsecond line never reaches the page`);
    },
    'term.open': async (p) => terms.open(p.target, p.cols, p.rows),
    'term.close': async (p) => {
      terms.close(p.termId);
      return ok;
    },
  });
  bridge = createIpcBridge({ dispatcher: new Dispatcher(handlers), log: (l) => logs.push(l) });
});

afterAll(() => {
  terms.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('IPC bridge', () => {
  it('answers our main frame through the dispatcher', async () => {
    expect(await bridge.handle(1, APP, 'vm.list', {})).toEqual({ ok: true, result: [] });
    expect(await bridge.handle(1, APP, 'vm.list', undefined)).toEqual({ ok: true, result: [] });
    expect(calls).toEqual(['vm.list', 'vm.list']);
  });

  it('refuses sub-frames, other pages and gone frames without calling the engine, and logs each', async () => {
    calls.length = 0;
    const before = logs.length;
    const refused = { ok: false, error: 'refused: this page may not call the engine' };
    expect(await bridge.handle(1, { url: APP.url, isMainFrame: false }, 'vm.list', {})).toEqual(refused);
    expect(await bridge.handle(1, { url: 'file:///tmp/x.html', isMainFrame: true }, 'vm.list', {})).toEqual(
      refused,
    );
    expect(await bridge.handle(1, { url: 'https://example.org/', isMainFrame: true }, 'vm.list', {})).toEqual(
      refused,
    );
    expect(await bridge.handle(1, null, 'vm.list', {})).toEqual(refused);
    expect(calls).toEqual([]);
    expect(logs.slice(before)).toEqual([
      'refused IPC from a sub-frame at app://stacklab/index.html',
      'refused IPC from file:///tmp/x.html',
      'refused IPC from https://example.org/',
      'refused IPC from a frame that is gone',
    ]);
  });

  it('turns unknown methods, bad params and engine errors into one-line error replies', async () => {
    expect(await bridge.handle(1, APP, 'rm.rf', {})).toEqual({ ok: false, error: 'unknown method: rm.rf' });
    expect(await bridge.handle(1, APP, { evil: true }, {})).toEqual({
      ok: false,
      error: 'refused: the method must be a string',
    });
    const bad = await bridge.handle(1, APP, 'vm.stop', { vmId: 'x', extra: 1 });
    expect(bad).toMatchObject({ ok: false, error: expect.stringMatching(/^bad params for vm.stop/) });
    expect(await bridge.handle(1, APP, 'vm.stop', { vmId: 'x' })).toEqual({ ok: false, error: 'no VM x' });
    expect(logs.at(-1)).toBe('"vm.stop" refused: no VM x');
  });

  it('closes the terminals of a page that went away, and only those', async () => {
    const open = async (page: number) => {
      const r = await bridge.handle(page, APP, 'term.open', { target: { kind: 'host' }, cols: 80, rows: 24 });
      if (!r.ok) throw new Error(r.error);
      return (r.result as { termId: string }).termId;
    };
    const a1 = await open(7);
    const a2 = await open(7);
    const b = await open(8);
    // Closed explicitly by the page: release must not trip over it.
    expect(await bridge.handle(7, APP, 'term.close', { termId: a2 })).toEqual({
      ok: true,
      result: { ok: true },
    });
    await bridge.release(7);
    await sleep(20);
    expect(terms.list()).not.toContain(a1);
    expect(terms.list()).toContain(b);
    await bridge.release(8);
    expect(terms.list()).toEqual([]);
  });
});
