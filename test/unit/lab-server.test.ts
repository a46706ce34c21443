// Lab mode over real sockets on 127.0.0.1: the real contract, the real Dispatcher, the
// real `ws` server and client, real HTTP. The handlers below are a test double for the
// engine's business logic (no QEMU here); the term.* ones drive real Terminals, so
// closing a socket can be seen killing a real shell.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type {
  EventName,
  EventPayload,
  HostInfo,
  Method,
  Params,
  Result,
} from '../../electron/common/contract.ts';
import { Dispatcher, EventHub, type Handlers } from '../../electron/engine/engine.ts';
import { createSettings } from '../../electron/engine/settings.ts';
import { Terminals } from '../../electron/engine/term/terminals.ts';
import { LAB_CSP, type LabServer, startLabServer } from '../../electron/lab/lab-server.ts';
import { handlersWith } from '../helpers/handlers.ts';

const HOST: HostInfo = {
  os: 'linux',
  osRelease: 'test',
  arch: 'x64',
  cpuModel: 'test cpu',
  cpus: 2,
  memBytes: 1,
  kernel: 'Linux',
  hostname: 'lab',
  userShell: '/bin/sh',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let tmp: string;
let staticDir: string;
let hub: EventHub;
let terms: Terminals;
let server: LabServer;
let logs: string[];
const conns: LabConnection[] = [];

function handlers(): Handlers {
  const ok = { ok: true as const };
  return handlersWith({
    'host.info': async () => HOST,
    'images.list': async () => [],
    'vm.list': async () => [],
    'term.open': async (p) => terms.open(p.target, p.cols, p.rows),
    'term.input': async (p) => {
      terms.input(p.termId, p.data);
      return ok;
    },
    'term.resize': async (p) => {
      terms.resize(p.termId, p.cols, p.rows);
      return ok;
    },
    'term.ack': async (p) => {
      terms.ack(p.termId, p.chars);
      return ok;
    },
    'term.close': async (p) => {
      terms.close(p.termId);
      return ok;
    },
    'settings.get': async () => ({}),
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-lab-'));
  staticDir = path.join(tmp, 'renderer');
  mkdirSync(path.join(staticDir, 'assets'), { recursive: true });
  writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>Stacklab</title>');
  writeFileSync(path.join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(path.join(tmp, 'secret.txt'), 'SECRET-OUTSIDE-ROOT');
  hub = new EventHub();
  const env: NodeJS.ProcessEnv = { ...process.env, PS1: 'LAB$ ', HOME: tmp };
  delete env.ENV;
  terms = new Terminals({
    hub,
    hostShell: { file: '/bin/sh', args: [], cwd: tmp, env },
    resolve: (t) => {
      throw new Error(`no VM ${t.vmId}`);
    },
  });
  logs = [];
  server = await startLabServer({
    dispatcher: new Dispatcher(handlers()),
    hub,
    staticDir,
    log: (l) => logs.push(l),
  });
});

afterAll(async () => {
  await server?.close();
  terms?.closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => {
  for (const c of conns.splice(0)) c.close();
});

const origin = () => `http://127.0.0.1:${server.port}`;

/** The page URL the server printed → its WebSocket URL, as the renderer derives it. */
function labSocketUrl(pageUrl: string): string {
  const page = new URL(pageUrl);
  return `ws://${page.host}/ws?token=${page.searchParams.get('token')}`;
}

/** A minimal client speaking the wire frames (the renderer has its own, with reconnection). */
interface LabConnection {
  ready: Promise<void>;
  request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>>;
  on<E extends EventName>(event: E, fn: (payload: EventPayload<E>) => void): void;
  close(): void;
}

function connect(o: { origin?: string } = {}): LabConnection {
  const ws = new WebSocket(labSocketUrl(server.url), { origin: o.origin ?? origin() });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: { event: string; fn: (p: unknown) => void }[] = [];
  ws.on('error', () => {}); // followed by 'close', which rejects
  const ready = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', (code) => reject(new Error(`could not connect (${code})`)));
  });
  ready.catch(() => {});
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.t === 'res') {
      const p = pending.get(f.id);
      pending.delete(f.id);
      if (f.ok) p?.resolve(f.result);
      else p?.reject(new Error(f.error));
    } else if (f.t === 'evt') {
      for (const l of listeners) if (l.event === f.event) l.fn(f.payload);
    }
  });
  const c: LabConnection = {
    ready,
    async request(method, params) {
      await ready;
      const id = nextId++;
      ws.send(JSON.stringify({ t: 'req', id, method, params }));
      return new Promise((resolve, reject) =>
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject }),
      );
    },
    on(event, fn) {
      listeners.push({ event, fn: fn as (p: unknown) => void });
    },
    close: () => ws.close(),
  };
  conns.push(c);
  return c;
}

/** A raw socket, for frames the typed client would never send. */
async function rawSocket(): Promise<{ ws: WebSocket; frames: unknown[]; closed: Promise<number> }> {
  const ws = new WebSocket(labSocketUrl(server.url), { origin: origin() });
  const frames: unknown[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  return { ws, frames, closed };
}

/** Tries to upgrade and returns the HTTP status of the refusal (or 101). */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', (e) => {
      if (!/Unexpected server response/.test(e.message)) reject(e);
    });
  });
}

function get(rawPath: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      // http.request sends the path as given: no client-side normalisation of "..".
      const req = http.request(
        { host: '127.0.0.1', port: server.port, path: rawPath, method, headers },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    },
  );
}

async function expectStillServing() {
  const c = connect();
  expect(await c.request('host.info', {})).toEqual(HOST);
}

describe('WebSocket transport', () => {
  it('prints a loopback URL with a 32-byte token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(Buffer.from(server.token, 'base64url')).toHaveLength(32);
  });

  it('answers a request through the contract', async () => {
    const c = connect();
    await c.ready;
    expect(await c.request('host.info', {})).toEqual(HOST);
    expect(await c.request('images.list', {})).toEqual([]);
    await expect(c.request('vm.boot', { imageId: 'x' })).rejects.toThrow('not part of this test');
  });

  it('fans events out to every connected page', async () => {
    const a = connect();
    const b = connect({ origin: `http://localhost:${server.port}` });
    await Promise.all([a.ready, b.ready]);
    const got: string[] = [];
    a.on('vm.removed', (p) => got.push(`a:${p.vmId}`));
    b.on('vm.removed', (p) => got.push(`b:${p.vmId}`));
    hub.emit('vm.removed', { vmId: 'vm-7' });
    await until(() => got.length === 2, 'both pages to get the event');
    expect(got.sort()).toEqual(['a:vm-7', 'b:vm-7']);
  });

  it('refuses a missing token (401), a wrong token (401) and a wrong Origin (403), logging each', async () => {
    const base = `ws://127.0.0.1:${server.port}/ws`;
    const good = { Origin: origin() };
    const before = logs.length;
    expect(await upgradeStatus(base, good)).toBe(401);
    const wrong =
      `x${server.token.slice(1)}` === server.token
        ? `y${server.token.slice(1)}`
        : `x${server.token.slice(1)}`;
    expect(await upgradeStatus(`${base}?token=${wrong}`, good)).toBe(401);
    expect(await upgradeStatus(`${base}?token=short`, good)).toBe(401);
    expect(await upgradeStatus(`${base}?token=${server.token}`, { Origin: 'http://evil.example' })).toBe(403);
    expect(
      await upgradeStatus(`${base}?token=${server.token}`, { Origin: `http://127.0.0.1:${server.port + 1}` }),
    ).toBe(403);
    expect(await upgradeStatus(`${base}?token=${server.token}`, {})).toBe(403);
    expect(await upgradeStatus(`${base}?token=${server.token}`, good)).toBe(101);
    const lines = logs.slice(before);
    expect(lines).toEqual([
      'lab: refused WebSocket (401): no token',
      'lab: refused WebSocket (401): wrong token',
      'lab: refused WebSocket (401): wrong token',
      'lab: refused WebSocket (403): wrong Origin "http://evil.example"',
      `lab: refused WebSocket (403): wrong Origin "http://127.0.0.1:${server.port + 1}"`,
      'lab: refused WebSocket (403): wrong Origin "(none)"',
    ]);
    for (const l of lines) expect(l).not.toContain(server.token);
    // A browser client refused at the upgrade sees the socket fail, as a one-line error.
    const refused = connect({ origin: 'http://evil.example' });
    await expect(refused.ready).rejects.toThrow('could not connect (1006)');
    await expectStillServing();
  });

  it('closes a socket that sends non-JSON (1008), logs it, and keeps serving', async () => {
    const before = logs.length;
    const { ws, closed } = await rawSocket();
    ws.send('{not json');
    expect(await closed).toBe(1008);
    expect(logs.slice(before)).toEqual(['lab: closed a socket that sent a frame that is not JSON']);
    await expectStillServing();
  });

  it('answers frames that fail the contract or name unknown methods with errors, and goes on', async () => {
    const before = logs.length;
    const { ws, frames } = await rawSocket();
    ws.send(JSON.stringify({ t: 'req', id: 1, method: 'host.info', params: {}, extra: true }));
    ws.send(JSON.stringify({ t: 'req', id: 2, method: 'rm.rf', params: {} }));
    ws.send(
      JSON.stringify({ t: 'req', id: 3, method: 'term.resize', params: { termId: 'x', cols: 0, rows: 1 } }),
    );
    ws.send(JSON.stringify({ t: 'req', id: 4, method: 'host.info', params: {} }));
    await until(() => frames.length === 4, 'four answers');
    const byId = new Map(frames.map((f) => [(f as { id: number }).id, f]));
    expect(byId.get(1)).toMatchObject({ t: 'res', ok: false, error: expect.stringMatching(/^bad frame: /) });
    expect(byId.get(2)).toEqual({ t: 'res', id: 2, ok: false, error: 'unknown method: rm.rf' });
    expect(byId.get(3)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^bad params for term.resize at cols/),
    });
    expect(byId.get(4)).toEqual({ t: 'res', id: 4, ok: true, result: HOST });
    const lines = logs.slice(before);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^lab: refused frame #1: /);
    expect(lines).toContain('lab: "rm.rf" #2 refused: unknown method: rm.rf');
    expect(lines.some((l) => l.startsWith('lab: "term.resize" #3 refused: bad params'))).toBe(true);
    ws.close();
  });

  it('closes a socket for a frame without an id, and one over 1 MiB', async () => {
    const before = logs.length;
    const a = await rawSocket();
    a.ws.send(JSON.stringify({ hello: 'world' }));
    expect(await a.closed).toBe(1008);
    const b = await rawSocket();
    b.ws.send(
      JSON.stringify({
        t: 'req',
        id: 9,
        method: 'term.input',
        params: { termId: 'x', data: 'a'.repeat(1024 * 1024) },
      }),
    );
    // 1009 is the RFC 6455 code for "message too big"; ws sends it before buffering the frame.
    expect(await b.closed).toBe(1009);
    const lines = logs.slice(before);
    expect(lines[0]).toMatch(/^lab: closed a socket that sent a frame without an id/);
    expect(lines[1]).toMatch(/^lab: socket error: .*(payload|length)/i);
    await expectStillServing();
  });

  it('closes the terminals a page opened when its socket goes away', async () => {
    const c = connect();
    const { termId } = await c.request('term.open', { target: { kind: 'host' }, cols: 80, rows: 24 });
    let text = '';
    c.on('term.data', (p) => {
      if (p.termId === termId) text += p.data;
    });
    await c.request('term.input', { termId, data: 'echo PID=$$\r' });
    await until(() => /PID=\d+/.test(text), 'the shell pid');
    const pid = Number(/PID=(\d+)/.exec(text)![1]);
    expect(terms.list()).toContain(termId);
    c.close();
    await until(() => !terms.list().includes(termId), 'the terminal to close');
    await until(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the shell to die');
  });
});

describe('static files', () => {
  it('serves the renderer with a strict CSP and the right MIME types', async () => {
    const index = await get('/?token=abc', { Host: `127.0.0.1:${server.port}` });
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.headers['content-security-policy']).toBe(LAB_CSP);
    for (const d of [
      "default-src 'self'",
      "script-src 'self'",
      "connect-src 'self' ws://127.0.0.1:*",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
    ]) {
      expect(LAB_CSP).toContain(d);
    }
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    expect(index.body).toContain('<title>Stacklab</title>');
    const js = await get('/assets/app.js');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toBe('console.log(1)');
    expect((await get('/assets/missing.js')).status).toBe(404);
    expect((await get('/', {}, 'POST')).status).toBe(405);
  });

  it('refuses directory traversal however it is spelled', async () => {
    for (const p of [
      '/../secret.txt',
      '/../package.json',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/%2e%2e%2fsecret.txt',
      '/assets/..%5c..%5csecret.txt',
      '/%00index.html',
      '/%E0%A4%A',
    ]) {
      const r = await get(p);
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      expect(r.body, p).not.toContain('SECRET');
      expect(r.body, p).not.toContain('"name"');
    }
    expect(readFileSync(path.join(tmp, 'secret.txt'), 'utf8')).toBe('SECRET-OUTSIDE-ROOT');
  });

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const r = await get('/', { Host: `attacker.example:${server.port}` });
    expect(r.status).toBe(403);
  });

  it('will not listen beyond loopback', async () => {
    await expect(
      startLabServer({ dispatcher: new Dispatcher(handlers()), hub, staticDir, host: '0.0.0.0' }),
    ).rejects.toThrow('lab mode listens on loopback only, not 0.0.0.0');
  });
});

describe('settings (conf, the same file electron-store writes)', () => {
  it('keeps defaults, validates writes with one-line errors, and persists', () => {
    const cwd = path.join(tmp, 'home');
    const s = createSettings({ cwd });
    expect(s.path).toBe(path.join(cwd, 'settings.json'));
    expect(s.all()).toEqual({ theme: 'system', scrollbackLines: 10_000, catalogueUrls: [] });
    s.set('theme', 'dark');
    s.set('qemuPath', '/usr/bin/qemu-system-aarch64');
    s.set('catalogueUrls', ['https://example.org/catalogue.json']);
    expect(() => s.set('theme', 'purple')).toThrow(/^setting theme: /);
    expect(() => s.set('scrollbackLines', 1.5)).toThrow(/^setting scrollbackLines: /);
    expect(() => s.set('qemuPath', 'qemu')).toThrow('setting qemuPath: must be an absolute path');
    expect(() => s.set('catalogueUrls', ['file:///etc/passwd'])).toThrow(/^setting catalogueUrls\[0\]: /);
    expect(() => s.set('colour', 'red')).toThrow(/^unknown setting "colour" \(known: qemuPath, theme, /);
    const again = createSettings({ cwd });
    expect(again.all()).toEqual({
      theme: 'dark',
      scrollbackLines: 10_000,
      catalogueUrls: ['https://example.org/catalogue.json'],
      qemuPath: '/usr/bin/qemu-system-aarch64',
    });
    again.set('qemuPath', null);
    expect(createSettings({ cwd }).all().qemuPath).toBeUndefined();
  });

  it('ignores hand-edited nonsense values and keeps an unreadable file aside', () => {
    const cwd = path.join(tmp, 'home2');
    mkdirSync(cwd, { recursive: true });
    writeFileSync(path.join(cwd, 'settings.json'), JSON.stringify({ theme: 42, scrollbackLines: 500 }));
    expect(createSettings({ cwd }).all()).toMatchObject({ theme: 'system', scrollbackLines: 500 });
    writeFileSync(path.join(cwd, 'settings.json'), '{ "theme": "dark",');
    const s = createSettings({ cwd });
    expect(s.warning).toMatch(/moved to .*settings\.json\.unreadable-\d+/);
    expect(s.all().theme).toBe('system');
  });
});

describe('stacklab serve (runServe in a child process)', () => {
  it('prints the URL, serves, and on SIGTERM closes the server and disposes the engine', async () => {
    const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    const script = path.join(tmp, 'serve-child.mts');
    // The child's engine is a stand-in (no QEMU here) built from the real Dispatcher and
    // EventHub; it says when it is disposed.
    writeFileSync(
      script,
      `import { Dispatcher, EventHub } from ${JSON.stringify(path.join(repo, 'electron/engine/engine.ts'))};
import { runServe } from ${JSON.stringify(path.join(repo, 'electron/lab/serve-command.ts'))};
const handlers = new Proxy({}, { get: () => async () => [] });
await runServe({
  staticDir: ${JSON.stringify(staticDir)},
  createEngine: async () => ({
    dispatcher: new Dispatcher(handlers),
    hub: new EventHub(),
    dispose: async () => console.log('ENGINE DISPOSED'),
  }),
});
console.log('RUNSERVE RETURNED');
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await until(
        () => /Stacklab lab mode: http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.test(out),
        'the URL line',
        15_000,
      );
      const url = /(http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(out)![1]!;
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toBe(LAB_CSP);
      const u = new URL(url);
      const ws = new WebSocket(`ws://${u.host}/ws${u.search}`, { origin: u.origin });
      const answer = await new Promise<unknown>((resolve, reject) => {
        ws.once('error', reject);
        ws.once('open', () => ws.send(JSON.stringify({ t: 'req', id: 1, method: 'vm.list', params: {} })));
        ws.once('message', (d) => resolve(JSON.parse(d.toString())));
      });
      expect(answer).toEqual({ t: 'res', id: 1, ok: true, result: [] });
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(await closed).toBe(1001);
      expect(out).toContain('ENGINE DISPOSED');
      expect(out.indexOf('ENGINE DISPOSED')).toBeLessThan(out.indexOf('RUNSERVE RETURNED'));
      expect(err).toContain('stacklab: SIGTERM: shutting down');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
