// The Electron main process: a thin shell around the engine. It owns one window, serves
// the built renderer on app://stacklab/ (not file://), passes requests from that page
// (and only that page) to the engine's dispatcher over one IPC channel, and pushes engine
// events back over another. All security decisions live in policy.ts.
//
// Fuses (RunAsNode off, NodeOptions and inspect arguments off, cookie encryption on, asar
// integrity validation and OnlyLoadAppFromAsar on, GrantFileProtocolExtraPrivileges off)
// are flipped at package time by electron-builder's `electronFuses`, not here.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, protocol, session, type WebContents } from 'electron';
import ElectronStore from 'electron-store';
import { createEngine, type Engine } from '../engine/index.ts';
import { appRoot, stacklabHome } from '../engine/paths.ts';
import { createSettings } from '../engine/settings.ts';
import { createIpcBridge } from './ipc-bridge.ts';
import {
  APP_SCHEME,
  APP_START_URL,
  IPC_EVENT,
  IPC_REQUEST,
  isAllowedNavigation,
  permissionAllowed,
  resolveAppRequest,
  windowOptions,
} from './policy.ts';

const rendererDir = path.join(appRoot(), 'out', 'renderer');
const preloadPath = path.join(appRoot(), 'out', 'preload', 'preload.cjs');

function log(line: string): void {
  process.stderr.write(`stacklab: ${line}\n`);
}

function oneLine(e: unknown): string {
  return ((e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '').slice(0, 500) || 'failed';
}

// Must happen before `ready`: a standard, secure scheme gets an origin, fetch and a CSP
// like https would, which file:// never does properly.
protocol.registerSchemesAsPrivileged([
  {
    scheme: APP_SCHEME,
    privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true },
  },
]);

// Two instances would run two engines over the same VMs and files.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  void start().catch((e: unknown) => {
    dialog.showErrorBox('Stacklab could not start', oneLine(e));
    app.exit(1);
  });
}

let engine: Engine | null = null;
let mainWindow: BrowserWindow | null = null;

async function start(): Promise<void> {
  await app.whenReady();

  protocol.handle(APP_SCHEME, async (request) => {
    const hit = resolveAppRequest(rendererDir, request.url);
    if (!hit) return new Response('not found', { status: 404, headers: { 'Content-Type': 'text/plain' } });
    return new Response(await readFile(hit.file), { status: 200, headers: hit.headers });
  });

  session.defaultSession.setPermissionRequestHandler((wc, permission, callback) =>
    callback(permissionAllowed(permission, wc.getURL())),
  );
  session.defaultSession.setPermissionCheckHandler((_wc, permission, requestingOrigin) =>
    permissionAllowed(permission, `${requestingOrigin}/`),
  );

  // Same settings.json as lab mode and the CLI (electron-store is conf underneath).
  const settings = createSettings({
    cwd: stacklabHome(),
    open: ({ cwd, configName }) => new ElectronStore({ cwd, name: configName }),
  });
  if (settings.warning) log(settings.warning);
  engine = await createEngine({ settings });
  const current = engine;

  current.hub.onAny((event, payload) => {
    for (const win of BrowserWindow.getAllWindows()) {
      if (!win.isDestroyed()) win.webContents.send(IPC_EVENT, event, payload);
    }
  });

  const bridge = createIpcBridge({ dispatcher: current.dispatcher, log });
  ipcMain.handle(IPC_REQUEST, (event, method: unknown, params: unknown) => {
    const frame = event.senderFrame;
    const sender = frame ? { url: frame.url, isMainFrame: frame === event.sender.mainFrame } : null;
    return bridge.handle(event.sender.id, sender, method, params);
  });

  app.on('web-contents-created', (_e, contents) => {
    hardenContents(contents);
    // A reloaded, crashed or closed page can never acknowledge its terminals' output again.
    const release = () => void bridge.release(contents.id);
    contents.on('did-start-navigation', (details) => {
      if (details.isMainFrame && !details.isSameDocument) release();
    });
    contents.on('render-process-gone', release);
    contents.once('destroyed', release);
  });
  app.on('second-instance', () => {
    if (mainWindow && !mainWindow.isDestroyed()) {
      if (mainWindow.isMinimized()) mainWindow.restore();
      mainWindow.focus();
    }
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });

  createWindow();
}

function hardenContents(contents: WebContents): void {
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-navigate', (event, url) => {
    if (!isAllowedNavigation(url)) {
      event.preventDefault();
      log(`blocked navigation to ${url.slice(0, 200)}`);
    }
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAllowedNavigation(url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

function createWindow(): void {
  const win = new BrowserWindow(windowOptions(preloadPath));
  mainWindow = win;
  win.once('ready-to-show', () => win.show());
  win.on('closed', () => {
    if (mainWindow === win) mainWindow = null;
  });
  void win.loadURL(APP_START_URL);
}

// Quitting stops every VM the engine started: hold the quit until dispose() is done.
let disposed = false;
app.on('before-quit', (event) => {
  if (disposed || !engine) return;
  event.preventDefault();
  const e = engine;
  engine = null;
  e.dispose()
    .catch((err: unknown) => log(`shutdown: ${oneLine(err)}`))
    .finally(() => {
      disposed = true;
      app.quit();
    });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => app.quit());
