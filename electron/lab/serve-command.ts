// `stacklab serve`: the engine plus the lab server on the built renderer, until SIGINT or
// SIGTERM, then a clean shutdown (which stops every QEMU this engine started).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Dispatcher, EventHub } from '../engine/engine.ts';
import { appRoot } from '../engine/paths.ts';
import { startLabServer } from './lab-server.ts';

export function rendererDir(): string {
  return path.join(appRoot(), 'out', 'renderer');
}

export interface ServeOptions {
  port?: number;
  /** Also open the URL in the default browser. */
  open?: boolean;
  /** Where the URL line goes (stdout by default); logs go to stderr. */
  print?: (line: string) => void;
  /** The built renderer; `out/renderer` by default. */
  staticDir?: string;
  /** Tests pass a stand-in engine; by default the real one from engine/index.ts. */
  createEngine?: () => Promise<ServedEngine>;
}

export interface ServedEngine {
  dispatcher: Pick<Dispatcher, 'dispatch'>;
  hub: Pick<EventHub, 'onAny'>;
  dispose(): Promise<void>;
}

/** Resolves once the server has shut down after SIGINT/SIGTERM. */
export async function runServe(opts: ServeOptions = {}): Promise<void> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const staticDir = opts.staticDir ?? rendererDir();
  if (!existsSync(path.join(staticDir, 'index.html'))) {
    log(
      `stacklab: the renderer is not built (${staticDir}): run "npm run build:renderer"; serving the engine anyway`,
    );
  }
  // Loaded lazily so `stacklab serve --help` and tests do not pull in the whole engine.
  const make = opts.createEngine ?? (async () => (await import('../engine/index.ts')).createEngine());
  const engine = await make();
  let server: Awaited<ReturnType<typeof startLabServer>>;
  try {
    server = await startLabServer({
      dispatcher: engine.dispatcher,
      hub: engine.hub,
      staticDir,
      port: opts.port,
      log,
    });
  } catch (e) {
    await engine.dispose();
    throw e;
  }
  print(`Stacklab lab mode: ${server.url}`);
  if (opts.open) openInBrowser(server.url, log);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log(`stacklab: ${signal}: shutting down`);
      // Server first so no new request reaches an engine that is being disposed.
      server
        .close()
        .then(() => engine.dispose())
        .catch((e: unknown) => log(`stacklab: shutdown: ${e instanceof Error ? e.message : String(e)}`))
        .finally(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function openInBrowser(url: string, log: (line: string) => void): void {
  const [cmd, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['rundll32', ['url.dll,FileProtocolHandler', url]]
        : ['xdg-open', [url]];
  const child = spawn(cmd, args as string[], { stdio: 'ignore', detached: true });
  child.on('error', () => log(`stacklab: could not start ${cmd}; open the URL yourself`));
  child.unref();
}
