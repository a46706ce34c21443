// A small GET over Node's own http/https. Chosen over fetch (undici) because a Node
// IncomingMessage gives stream backpressure straight into fs writes and the decoders, an
// idle-socket timeout, and exact control of Range/If-Range on every redirect hop, with no
// web-stream conversion per chunk; and it behaves the same in Electron's main process.
import http from 'node:http';
import https from 'node:https';

export interface GetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  maxRedirects?: number;
  /** The connection is dropped when no byte arrives for this long. */
  idleTimeoutMs?: number;
}

export interface GetResponse {
  res: http.IncomingMessage;
  /** The URL that answered, after redirects. */
  url: string;
}

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function httpGet(url: string, opts: GetOptions = {}): Promise<GetResponse> {
  return get(url, opts, opts.maxRedirects ?? 5);
}

function get(url: string, opts: GetOptions, redirectsLeft: number): Promise<GetResponse> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new Error(`not a URL: ${url.slice(0, 200)}`));
  }
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
  if (!mod)
    return Promise.reject(new Error(`cannot download ${u.protocol} URLs (only http and https): ${url}`));
  return new Promise((resolve, reject) => {
    const req = mod.get(
      u,
      { headers: { 'user-agent': 'stacklab', ...opts.headers }, signal: opts.signal },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirectsLeft <= 0) return reject(new Error(`too many redirects fetching ${url}`));
          const next = new URL(res.headers.location, u).toString();
          return get(next, opts, redirectsLeft - 1).then(resolve, reject);
        }
        const idle = opts.idleTimeoutMs ?? 30_000;
        const sock = res.socket;
        const onIdle = () =>
          res.destroy(
            new Error(`${u.host} sent nothing for ${Math.round(idle / 1000)} s (connection dropped)`),
          );
        sock?.setTimeout(idle);
        sock?.on('timeout', onIdle);
        // Keep-alive sockets are reused: take the listener off when this response is done.
        res.once('close', () => {
          sock?.off('timeout', onIdle);
          sock?.setTimeout(0);
        });
        resolve({ res, url: u.toString() });
      },
    );
    req.on('error', (err) => {
      if (opts.signal?.aborted) return reject(abortError(opts.signal));
      reject(new Error(`cannot reach ${u.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
  });
}

export function abortError(signal?: AbortSignal): Error {
  const reason = signal?.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  const e = new Error('cancelled');
  e.name = 'AbortError';
  return e;
}

/** GET a small text (a checksum file, a catalogue), refusing anything over maxBytes. */
export async function fetchText(url: string, opts: GetOptions & { maxBytes?: number } = {}): Promise<string> {
  const { res } = await httpGet(url, opts);
  const status = res.statusCode ?? 0;
  if (status !== 200) {
    res.resume();
    throw new HttpError(`${url} answered HTTP ${status}`, status);
  }
  const max = opts.maxBytes ?? 1 << 20;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.destroy();
      throw new Error(`${url} is larger than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
