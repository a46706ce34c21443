// Serving the built renderer from a directory, shared by lab mode (HTTP) and the Electron
// shell (app:// protocol): resolving a URL path to a file without ever leaving the root,
// the MIME type for what vite emits, and the security headers every response carries.
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.wasm': 'application/wasm',
};

export function contentType(file: string): string {
  return MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Maps a URL path ("/assets/x.js", "/") to a regular file inside `root`, or null.
 * Refuses rather than normalises anything suspicious: `..` segments (raw or
 * percent-encoded), backslashes, NUL, bad escapes, and symlinks that lead outside.
 */
export function resolveStaticPath(root: string, urlPath: string): string | null {
  let p: string;
  try {
    p = decodeURIComponent(urlPath.split(/[?#]/, 1)[0] ?? '');
  } catch {
    return null;
  }
  if (!p.startsWith('/') || p.includes('\0') || p.includes('\\')) return null;
  if (p.split('/').some((seg) => seg === '..' || seg === '.')) return null;
  if (p.endsWith('/')) p += 'index.html';
  const rootAbs = path.resolve(root);
  const full = path.resolve(rootAbs, `.${p}`);
  if (!full.startsWith(rootAbs + path.sep)) return null;
  try {
    if (!statSync(full).isFile()) return null;
    const realRoot = realpathSync(rootAbs);
    if (!realpathSync(full).startsWith(realRoot + path.sep)) return null;
  } catch {
    return null;
  }
  return full;
}

/** Headers for every static response; `csp` differs between lab mode and Electron. */
export function securityHeaders(csp: string): Record<string, string> {
  return {
    'Content-Security-Policy': csp,
    'X-Content-Type-Options': 'nosniff',
    // The lab URL carries the token: never let it leak in a Referer.
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-Frame-Options': 'DENY',
    'Cache-Control': 'no-cache',
  };
}
