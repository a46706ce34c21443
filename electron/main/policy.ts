// The Electron shell's security decisions as plain functions, free of any `electron`
// import so they are unit-tested without the Electron binary: which IPC senders are
// trusted, where the window may navigate, which permissions it gets, the CSP, the window's
// webPreferences and how app:// URLs map to files.
import { isMethod, type Method } from '../common/contract.ts';
import { contentType, resolveStaticPath, securityHeaders } from '../lab/static-files.ts';

export const APP_SCHEME = 'app';
export const APP_HOST = 'stacklab';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_START_URL = `${APP_ORIGIN}/index.html`;

export { IPC_EVENT, IPC_REQUEST } from './ipc-channels.ts';

export const ELECTRON_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // The engine is reached over IPC, never over the network.
  "connect-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

/** Is this a page of ours? Parsed, so tricks like `app://stacklab.evil/` or credentials fail. */
export function isAppUrl(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return (
    u.protocol === `${APP_SCHEME}:` &&
    u.host === APP_HOST &&
    !u.username &&
    !u.password &&
    u.href.startsWith(`${APP_ORIGIN}/`)
  );
}

export interface SenderFrameInfo {
  url: string;
  /** The frame is its WebContents' main frame (no iframes may call the engine). */
  isMainFrame: boolean;
}

/** VS Code's validatedIpcMain rule: only our own top-level page may talk to the engine. */
export function isTrustedSender(frame: SenderFrameInfo | null | undefined): boolean {
  return !!frame && frame.isMainFrame && isAppUrl(frame.url);
}

export function isAllowedNavigation(url: string): boolean {
  return isAppUrl(url);
}

/**
 * Everything is denied except writing plain text to the clipboard from our own page
 * (the "copy command line" buttons); reading the clipboard is never granted.
 */
export function permissionAllowed(permission: string, requestingUrl: string): boolean {
  return permission === 'clipboard-sanitized-write' && isAppUrl(requestingUrl);
}

/** Checks the untyped arguments of an IPC request; throws one line. */
export function parseIpcRequest(method: unknown, params: unknown): { method: Method; params: unknown } {
  if (typeof method !== 'string') throw new Error('refused: the method must be a string');
  if (!isMethod(method)) throw new Error(`unknown method: ${method.slice(0, 64)}`);
  return { method, params: params ?? {} };
}

/** The BrowserWindow's options (structurally a BrowserWindowConstructorOptions). */
export function windowOptions(preloadPath: string) {
  return {
    width: 1280,
    height: 820,
    minWidth: 720,
    minHeight: 480,
    title: 'Stacklab',
    show: false,
    backgroundColor: '#1e1e1e',
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  };
}

/** Maps an app:// request to a file of the built renderer, with the headers to send. */
export function resolveAppRequest(
  rendererDir: string,
  requestUrl: string,
): { file: string; headers: Record<string, string> } | null {
  if (!isAppUrl(requestUrl)) return null;
  const u = new URL(requestUrl);
  const file = resolveStaticPath(rendererDir, u.pathname === '/' ? '/index.html' : u.pathname);
  if (!file) return null;
  return { file, headers: { ...securityHeaders(ELECTRON_CSP), 'Content-Type': contentType(file) } };
}
