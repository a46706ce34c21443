// The Electron shell without Electron (its binary cannot be downloaded here): the pure
// policy functions main.ts applies, and the real preload bundle (built with the real
// build options) run in a bare V8 context. In that context `electron` is a test double
// (contextBridge/ipcRenderer that record calls), named so because it cannot exist here.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requests } from '../../electron/common/contract.ts';
import {
  APP_START_URL,
  ELECTRON_CSP,
  IPC_EVENT,
  IPC_REQUEST,
  isAllowedNavigation,
  isTrustedSender,
  parseIpcRequest,
  permissionAllowed,
  resolveAppRequest,
  windowOptions,
} from '../../electron/main/policy.ts';
import { preloadOptions } from '../../scripts/build-node.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-shell-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('IPC sender validation', () => {
  it('accepts only the main frame of our own app:// page', () => {
    expect(isTrustedSender({ url: 'app://stacklab/index.html', isMainFrame: true })).toBe(true);
    expect(isTrustedSender({ url: 'app://stacklab/index.html#/vm/1?x=1', isMainFrame: true })).toBe(true);
  });

  it('refuses sub-frames, other origins, file://, and missing frames', () => {
    const refused = [
      { url: 'app://stacklab/index.html', isMainFrame: false }, // an iframe, even of our own page
      { url: 'file:///work/main/out/renderer/index.html', isMainFrame: true },
      { url: 'https://stacklab/index.html', isMainFrame: true },
      { url: 'http://127.0.0.1:5173/', isMainFrame: true },
      { url: 'app://stacklab.evil/index.html', isMainFrame: true },
      { url: 'app://evil/stacklab/', isMainFrame: true },
      { url: 'app://user:pw@stacklab/index.html', isMainFrame: true },
      { url: 'app://stacklab', isMainFrame: true },
      { url: 'about:blank', isMainFrame: true },
      { url: 'devtools://devtools/bundled/index.html', isMainFrame: true },
      { url: 'not a url', isMainFrame: true },
      { url: '', isMainFrame: true },
    ];
    for (const f of refused) expect(isTrustedSender(f), JSON.stringify(f)).toBe(false);
    expect(isTrustedSender(null)).toBe(false);
    expect(isTrustedSender(undefined)).toBe(false);
  });

  it('checks the untyped IPC arguments with one-line errors', () => {
    expect(parseIpcRequest('vm.list', undefined)).toEqual({ method: 'vm.list', params: {} });
    expect(() => parseIpcRequest(42, {})).toThrow('refused: the method must be a string');
    expect(() => parseIpcRequest('__proto__', {})).toThrow('unknown method: __proto__');
    expect(() => parseIpcRequest('constructor', {})).toThrow('unknown method: constructor');
  });
});

describe('window policy', () => {
  it('locks the window down', () => {
    const o = windowOptions('/app/out/preload/preload.cjs');
    expect(o.webPreferences).toMatchObject({
      preload: '/app/out/preload/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
  });

  it('navigates only within app://stacklab and grants no permissions but clipboard writes', () => {
    expect(isAllowedNavigation(APP_START_URL)).toBe(true);
    expect(isAllowedNavigation('https://example.org/')).toBe(false);
    expect(isAllowedNavigation('file:///etc/passwd')).toBe(false);
    expect(permissionAllowed('clipboard-sanitized-write', APP_START_URL)).toBe(true);
    expect(permissionAllowed('clipboard-sanitized-write', 'https://example.org/')).toBe(false);
    for (const p of [
      'media',
      'geolocation',
      'notifications',
      'openExternal',
      'clipboard-read',
      'usb',
      'serial',
    ]) {
      expect(permissionAllowed(p, APP_START_URL), p).toBe(false);
    }
  });

  it('has a CSP without inline or remote scripts', () => {
    expect(ELECTRON_CSP).toContain("script-src 'self'");
    expect(ELECTRON_CSP).toContain("default-src 'self'");
    expect(ELECTRON_CSP).not.toMatch(/script-src[^;]*unsafe/);
    expect(ELECTRON_CSP).toContain("object-src 'none'");
  });

  it('serves app:// from the renderer directory only', () => {
    const dir = path.join(tmp, 'renderer');
    mkdirSync(path.join(dir, 'assets'), { recursive: true });
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    writeFileSync(path.join(dir, 'assets', 'a.css'), 'body{}');
    writeFileSync(path.join(tmp, 'secret'), 'x');
    const index = resolveAppRequest(dir, 'app://stacklab/index.html');
    expect(index?.file).toBe(path.join(dir, 'index.html'));
    expect(index?.headers['Content-Security-Policy']).toBe(ELECTRON_CSP);
    expect(index?.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(resolveAppRequest(dir, 'app://stacklab/')?.file).toBe(path.join(dir, 'index.html'));
    expect(resolveAppRequest(dir, 'app://stacklab/assets/a.css?v=1')?.headers['Content-Type']).toBe(
      'text/css; charset=utf-8',
    );
    expect(resolveAppRequest(dir, 'app://stacklab/../secret')).toBeNull();
    expect(resolveAppRequest(dir, 'app://stacklab/%2e%2e/secret')).toBeNull();
    expect(resolveAppRequest(dir, 'app://stacklab/assets/..%2f..%2fsecret')).toBeNull();
    expect(resolveAppRequest(dir, 'app://other/index.html')).toBeNull();
    expect(resolveAppRequest(dir, 'app://stacklab/missing.js')).toBeNull();
  });
});

describe('preload bundle (built for real, run in a bare context)', () => {
  type Api = {
    request(m: string, p: unknown): Promise<unknown>;
    on(e: string, fn: (p: unknown) => void): () => void;
  };
  let exposed: Record<string, unknown>;
  let invoked: unknown[][];
  let emit: (event: unknown, payload: unknown) => void;
  let answer: (method: string) => unknown;

  beforeAll(async () => {
    const outfile = path.join(tmp, 'preload.cjs');
    await build({ ...preloadOptions(outfile), sourcemap: false, logLevel: 'silent' });
    exposed = {};
    invoked = [];
    answer = () => ({ ok: true, result: { ok: true } });
    const electronDouble = {
      contextBridge: { exposeInMainWorld: (key: string, api: unknown) => (exposed[key] = api) },
      ipcRenderer: {
        invoke: async (channel: string, ...args: unknown[]) => {
          invoked.push([channel, ...args]);
          return answer(args[0] as string);
        },
        on: (channel: string, fn: (e: unknown, ...args: unknown[]) => void) => {
          if (channel === IPC_EVENT) emit = (event, payload) => fn({}, event, payload);
        },
      },
    };
    // What a sandboxed preload gets: `require` for a few modules only, no Node globals.
    const sandboxRequire = (id: string) => {
      if (id === 'electron') return electronDouble;
      throw new Error(`a sandboxed preload cannot require ${id}`);
    };
    const module = { exports: {} };
    const context = vm.createContext({ console, URL, TextEncoder, TextDecoder, queueMicrotask, setTimeout });
    const wrapper = vm.runInContext(
      `(function (require, module, exports) {${readFileSync(outfile, 'utf8')}\n})`,
      context,
    );
    wrapper(sandboxRequire, module, module.exports);
  });

  it('exposes exactly request and on, never ipcRenderer', () => {
    expect(Object.keys(exposed)).toEqual(['stacklab']);
    expect(Object.keys(exposed.stacklab as object).sort()).toEqual(['on', 'request']);
    expect(JSON.stringify(Object.keys(exposed.stacklab as object))).not.toContain('ipc');
  });

  it('sends contract methods over stacklab:req and unwraps the answer', async () => {
    const api = exposed.stacklab as Api;
    answer = (m) => (m === 'vm.list' ? { ok: true, result: [] } : { ok: false, error: 'no VM x' });
    expect(await api.request('vm.list', {})).toEqual([]);
    await expect(api.request('vm.stop', { vmId: 'x' })).rejects.toThrow('no VM x');
    expect(invoked).toEqual([
      [IPC_REQUEST, 'vm.list', {}],
      [IPC_REQUEST, 'vm.stop', { vmId: 'x' }],
    ]);
  });

  it('refuses names outside the contract before anything crosses to the main process', async () => {
    const api = exposed.stacklab as Api;
    const before = invoked.length;
    await expect(api.request('shell.exec', {})).rejects.toThrow('unknown method: shell.exec');
    await expect(api.request('toString', {})).rejects.toThrow('unknown method: toString');
    expect(() => api.on('ipc.raw', () => {})).toThrow('unknown event: ipc.raw');
    expect(invoked.length).toBe(before);
    expect(Object.keys(requests)).toContain('term.ack');
  });

  it('delivers events to listeners until they unsubscribe', () => {
    const api = exposed.stacklab as Api;
    const got: unknown[] = [];
    const off = api.on('term.data', (p) => got.push(p));
    emit('term.data', { termId: 't1', data: 'hi' });
    emit('vm.removed', { vmId: 'v' });
    off();
    emit('term.data', { termId: 't1', data: 'late' });
    expect(got).toEqual([{ termId: 't1', data: 'hi' }]);
  });
});

describe('bundled paths', () => {
  it('a bundle in out/<name>/ still finds the app root, resources/ and out/renderer', async () => {
    const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    const dir = path.join(repo, 'out', `approot-check-${process.pid}`);
    const outfile = path.join(dir, 'check.mjs');
    try {
      await build({
        stdin: {
          contents:
            "import { appRoot, resourcesDir } from './electron/engine/paths.ts';" +
            'console.log(JSON.stringify({ root: appRoot(), resources: resourcesDir() }));',
          resolveDir: repo,
          loader: 'ts',
        },
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        logLevel: 'silent',
      });
      const got = JSON.parse(execFileSync(process.execPath, [outfile], { encoding: 'utf8' }));
      expect(got).toEqual({ root: repo, resources: path.join(repo, 'resources') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
