// The lab-mode client against a real WebSocket server on loopback: replies, events,
// contract checks, rejection of pending requests on close, and reconnection.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { labSocketUrl } from '../../renderer/src/lib/lab-url.ts';
import {
  backoffDelay,
  type ConnStatus,
  type SocketLike,
  WsClient,
} from '../../renderer/src/lib/ws-client.ts';

const HOST = {
  os: 'Linux',
  osRelease: 'Debian GNU/Linux 12 (bookworm)',
  arch: 'x86_64',
  cpuModel: 'Test CPU',
  cpus: 2,
  memBytes: 1,
  kernel: '6.1.0',
  hostname: 'h',
  userShell: '/bin/sh',
};

type Frame = { t: 'req'; id: number; method: string; params: unknown };

/** A loopback server whose behaviour each test scripts. */
async function server(onFrame: (ws: WebSocket, f: Frame) => void, port = 0) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('message', (d) => onFrame(ws, JSON.parse(d.toString()) as Frame));
  });
  const { port: actual } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${actual}/ws?token=t`,
    port: actual,
    sockets,
    broadcast: (obj: unknown) => {
      for (const s of sockets) s.send(JSON.stringify(obj));
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.terminate();
        wss.close(() => r());
      }),
  };
}

const connect = (url: string) => new WebSocket(url) as unknown as SocketLike;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function waitFor(client: WsClient, state: ConnStatus['state'], opens?: number): Promise<ConnStatus> {
  return new Promise((resolve) => {
    const off = client.onStatus((s) => {
      if (s.state === state && (opens === undefined || s.opens >= opens)) {
        queueMicrotask(() => off());
        resolve(s);
      }
    });
  });
}

describe('WsClient', () => {
  it('sends validated requests and resolves with contract-checked results', async () => {
    const seen: Frame[] = [];
    const srv = await server((ws, f) => {
      seen.push(f);
      ws.send(JSON.stringify({ t: 'res', id: f.id, ok: true, result: HOST }));
    });
    cleanups.push(srv.close);
    const client = new WsClient({ url: srv.url, connect });
    cleanups.push(() => client.close());
    // Sent while still connecting: queued, then delivered on open.
    const info = await client.request('host.info', {});
    expect(info.cpuModel).toBe('Test CPU');
    expect(seen[0]).toMatchObject({ t: 'req', method: 'host.info', params: {} });
    // Params are checked before anything is sent.
    await expect(client.request('term.ack', { termId: 'x', chars: -1 } as never)).rejects.toThrow(
      /bad params for term.ack at chars/,
    );
    expect(seen).toHaveLength(1);
  });

  it('turns error replies and out-of-contract results into one-line rejections', async () => {
    const srv = await server((ws, f) => {
      if (f.method === 'vm.stop')
        ws.send(JSON.stringify({ t: 'res', id: f.id, ok: false, error: 'no VM vm9' }));
      else ws.send(JSON.stringify({ t: 'res', id: f.id, ok: true, result: { cpus: 'many' } }));
    });
    cleanups.push(srv.close);
    const client = new WsClient({ url: srv.url, connect });
    cleanups.push(() => client.close());
    await expect(client.request('vm.stop', { vmId: 'vm9' })).rejects.toThrow(/^no VM vm9$/);
    await expect(client.request('host.info', {})).rejects.toThrow(/answered host.info outside the contract/);
  });

  it('delivers events that match the contract and drops the ones that do not', async () => {
    const srv = await server(() => {});
    cleanups.push(srv.close);
    const client = new WsClient({ url: srv.url, connect });
    cleanups.push(() => client.close());
    await waitFor(client, 'open');
    const got: string[] = [];
    const off = client.on('term.data', (p) => got.push(p.data));
    srv.broadcast({ t: 'evt', event: 'term.data', payload: { termId: 't1', data: 'hello' } });
    srv.broadcast({ t: 'evt', event: 'term.data', payload: { termId: 't1', data: 42 } });
    srv.broadcast({ t: 'evt', event: 'term.data', payload: { termId: 't1', data: 'world' } });
    await expect.poll(() => got).toEqual(['hello', 'world']);
    off();
    srv.broadcast({ t: 'evt', event: 'term.data', payload: { termId: 't1', data: 'unseen' } });
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(['hello', 'world']);
  });

  it('rejects pending requests when the connection drops, then reconnects with backoff', async () => {
    let answer = false;
    const srv = await server((ws, f) => {
      if (answer) ws.send(JSON.stringify({ t: 'res', id: f.id, ok: true, result: [] }));
    });
    const client = new WsClient({
      url: srv.url,
      connect,
      minDelayMs: 50,
      maxDelayMs: 200,
      random: () => 0.5,
    });
    cleanups.push(() => client.close());
    await waitFor(client, 'open');
    const pending = client.request('vm.list', {});
    await new Promise((r) => setTimeout(r, 30));
    const closed = waitFor(client, 'closed');
    await srv.close();
    await expect(pending).rejects.toThrow(/^connection to Stacklab lost \(.+\) before vm.list answered$/);
    const status = await closed;
    expect(status.retryAt).toBeGreaterThan(Date.now() - 1000);
    // While closed, a request fails at once instead of hanging.
    await expect(client.request('vm.list', {})).rejects.toThrow(/not connected to Stacklab/);

    // The server comes back on the same port: the client finds it by itself.
    answer = true;
    const again = await server(
      (ws, f) => ws.send(JSON.stringify({ t: 'res', id: f.id, ok: true, result: [] })),
      srv.port,
    );
    cleanups.push(again.close);
    await waitFor(client, 'open', 2);
    await expect(client.request('vm.list', {})).resolves.toEqual([]);
  });

  it('backs off exponentially up to a ceiling, with jitter', () => {
    const mid = () => 0.5;
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, 500, 8000, mid))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000,
    ]);
    expect(backoffDelay(0, 1000, 8000, () => 0)).toBe(800);
    expect(backoffDelay(0, 1000, 8000, () => 1)).toBe(1200);
  });
});

describe('labSocketUrl', () => {
  it('uses the page origin and carries its token', () => {
    expect(labSocketUrl('http://127.0.0.1:4000/?token=a%2Bb')).toBe('ws://127.0.0.1:4000/ws?token=a%2Bb');
    expect(labSocketUrl('https://localhost/index.html?token=x')).toBe('wss://localhost/ws?token=x');
    expect(labSocketUrl('http://127.0.0.1:1/')).toBe('ws://127.0.0.1:1/ws?token=');
  });
});
