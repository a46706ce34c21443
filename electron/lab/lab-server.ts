// Lab mode: the renderer served over HTTP on loopback and the engine reached over one
// WebSocket (/ws), for machines where Electron cannot run and for browser tests.
// Every frame is validated against the contract; a bad frame costs that frame (or that
// socket), never the engine.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { isIP } from 'node:net';
import path from 'node:path';
import { type WebSocket, WebSocketServer } from 'ws';
import { ClientFrame, type ServerFrame } from '../common/contract.ts';
import type { Dispatcher, EventHub } from '../engine/engine.ts';
import { TermOwnership } from '../engine/term/ownership.ts';
import { checkUpgrade, hostHeaderAllowed, newToken } from './auth.ts';
import { contentType, resolveStaticPath, securityHeaders } from './static-files.ts';

export const MAX_FRAME_BYTES = 1024 * 1024;
/** A client this far behind on reading is gone or stuck; drop it rather than buffer forever. */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

export const LAB_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

export interface LabServerOptions {
  dispatcher: Pick<Dispatcher, 'dispatch'>;
  hub: Pick<EventHub, 'onAny'>;
  staticDir: string;
  port?: number;
  host?: string;
  log?: (line: string) => void;
}

export interface LabServer {
  url: string;
  token: string;
  port: number;
  close(): Promise<void>;
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').slice(0, 500) || 'failed';
}

export async function startLabServer(opts: LabServerOptions): Promise<LabServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? ((line: string) => console.error(line));
  if (!(host === '::1' || (isIP(host) === 4 && host.startsWith('127.')))) {
    throw new Error(`lab mode listens on loopback only, not ${host}`);
  }
  const staticDir = path.resolve(opts.staticDir);
  const token = newToken();
  let port = 0;
  const csp = securityHeaders(LAB_CSP);

  const server = http.createServer((req, res) => {
    serveStatic(req, res).catch((e) => {
      log(`lab: static ${req.url}: ${oneLine(e)}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('internal error\n');
    });
  });

  async function serveStatic(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const plain = (status: number, text: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { ...csp, 'Content-Type': 'text/plain; charset=utf-8', ...extra });
      res.end(req.method === 'HEAD' ? undefined : `${text}\n`);
    };
    if (!hostHeaderAllowed(req.headers.host, host, port)) return plain(403, 'wrong Host');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return plain(405, 'method not allowed', { Allow: 'GET, HEAD' });
    const file = resolveStaticPath(staticDir, req.url ?? '/');
    if (!file) {
      const wantsIndex = (req.url ?? '/').split('?')[0] === '/';
      if (wantsIndex) return plain(503, 'The renderer is not built yet: run "npm run build:renderer".');
      return plain(404, 'not found');
    }
    const body = await readFile(file);
    res.writeHead(200, { ...csp, 'Content-Type': contentType(file), 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const clients = new Set<WebSocket>();

  server.on('upgrade', (req, socket, head) => {
    const verdict = checkUpgrade(req, { token, host, port });
    if (!verdict.ok) {
      log(`lab: refused WebSocket (${verdict.status}): ${verdict.reason}`);
      const text =
        verdict.status === 401 ? 'Unauthorized' : verdict.status === 403 ? 'Forbidden' : 'Not Found';
      socket.end(`HTTP/1.1 ${verdict.status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
  });

  function send(ws: WebSocket, frame: ServerFrame): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(frame));
  }

  function onConnection(ws: WebSocket): void {
    clients.add(ws);
    const owned = new TermOwnership();
    ws.on('error', (e) => log(`lab: socket error: ${oneLine(e)}`)); // e.g. a frame over maxPayload (closed with 1009)
    ws.on('close', () => {
      clients.delete(ws);
      // Terminals this page opened would otherwise sit paused forever, unacknowledged.
      void owned.releaseAll((m, p) => opts.dispatcher.dispatch(m, p));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        log('lab: closed a socket that sent a binary frame');
        ws.close(1008, 'frames are JSON text');
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(data.toString());
      } catch {
        log('lab: closed a socket that sent a frame that is not JSON');
        ws.close(1008, 'frames are JSON');
        return;
      }
      const frame = ClientFrame.safeParse(json);
      if (!frame.success) {
        const issue = frame.error.issues[0];
        const why = `${issue?.path.join('.') || 'frame'}: ${issue?.message ?? 'invalid'}`;
        const id = (json as { id?: unknown } | null)?.id;
        if (typeof id === 'number' && Number.isInteger(id) && id >= 0) {
          log(`lab: refused frame #${id}: ${why}`);
          send(ws, { t: 'res', id, ok: false, error: `bad frame: ${why}` });
        } else {
          // Without an id there is nobody to answer; the client is not speaking our protocol.
          log(`lab: closed a socket that sent a frame without an id: ${why}`);
          ws.close(1008, 'bad frame');
        }
        return;
      }
      const { id, method, params } = frame.data;
      opts.dispatcher.dispatch(method, params).then(
        (result) => {
          owned.note(method, result);
          owned.forget(method, params);
          send(ws, { t: 'res', id, ok: true, result });
        },
        (e: unknown) => {
          const error = oneLine(e);
          log(`lab: ${JSON.stringify(method)} #${id} refused: ${error}`);
          send(ws, { t: 'res', id, ok: false, error });
        },
      );
    });
  }

  const offEvents = opts.hub.onAny((event, payload) => {
    if (clients.size === 0) return;
    const text = JSON.stringify({ t: 'evt', event, payload } satisfies ServerFrame);
    for (const ws of clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        log('lab: dropped a client that stopped reading');
        ws.terminate();
        continue;
      }
      ws.send(text);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'EADDRINUSE' ? `port ${opts.port} is already in use` : oneLine(e))),
    );
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  port = (server.address() as { port: number }).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}/?token=${token}`,
    token,
    port,
    async close() {
      offEvents();
      const open = [...clients];
      for (const ws of open) ws.close(1001, 'server shutting down');
      // A page that never answers the closing handshake would hold close() for 30 s.
      const deadline = Date.now() + 1000;
      while (clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Sockets closed above release their terminals asynchronously; give that a turn.
      await new Promise((r) => setImmediate(r));
    },
  };
}
