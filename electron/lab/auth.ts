// Who may talk to the lab-mode engine: a page this server served itself. Two checks, both
// needed: the Origin header (so another website open in the same browser cannot connect,
// even though it can reach 127.0.0.1) and a random token that only the launched URL
// carries (so another local user or program cannot either). The Host check defeats DNS
// rebinding for the plain HTTP side.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  // The length is no secret (always 43 characters); only the content is compared in constant time.
  return a.length === b.length && timingSafeEqual(a, b);
}

function hostNames(host: string): string[] {
  const h = host.includes(':') ? `[${host}]` : host;
  return [...new Set([h, '127.0.0.1', 'localhost'])];
}

export function allowedOrigins(host: string, port: number): Set<string> {
  return new Set(hostNames(host).map((h) => `http://${h}:${port}`));
}

export function hostHeaderAllowed(hostHeader: string | undefined, host: string, port: number): boolean {
  if (!hostHeader) return false;
  return hostNames(host).some((h) => hostHeader.toLowerCase() === `${h}:${port}`);
}

export type UpgradeVerdict = { ok: true } | { ok: false; status: 401 | 403 | 404; reason: string };

export function checkUpgrade(
  req: { url?: string; headers: IncomingHttpHeaders },
  server: { token: string; host: string; port: number },
): UpgradeVerdict {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (url.pathname !== '/ws')
    return { ok: false, status: 404, reason: `no WebSocket endpoint at ${url.pathname}` };
  if (!hostHeaderAllowed(req.headers.host, server.host, server.port)) {
    return { ok: false, status: 403, reason: `wrong Host header ${JSON.stringify(req.headers.host ?? '')}` };
  }
  const token = url.searchParams.get('token');
  if (!token) return { ok: false, status: 401, reason: 'no token' };
  if (!tokenMatches(server.token, token)) return { ok: false, status: 401, reason: 'wrong token' };
  const origin = req.headers.origin;
  if (!origin || !allowedOrigins(server.host, server.port).has(origin)) {
    return {
      ok: false,
      status: 403,
      reason: `wrong Origin ${JSON.stringify(origin ?? '(none)').slice(0, 120)}`,
    };
  }
  return { ok: true };
}
