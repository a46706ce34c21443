// `npm run dev`: the renderer from Vite's dev server (hot reload) on 127.0.0.1, with /ws
// proxied to a lab server, so the UI can be edited against the real engine.
//
//   npm run dev                         starts the engine and a lab server in this process
//   npm run dev -- --lab '<lab URL>'    uses a running `stacklab serve` (paste its URL, token included)
//   npm run dev -- --port 5200          Vite's port (default 5173, the next free one if taken)
//
// Open the printed URL: it carries the lab server's token, which the page passes on /ws.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type ProxyOptions } from 'vite';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  lab?: string;
  port: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { port: 5173 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--lab') args.lab = value();
    else if (a === '--port') {
      args.port = Number(value());
      if (!Number.isInteger(args.port) || args.port < 1 || args.port > 65535)
        throw new Error('--port needs a port number');
    } else throw new Error(`unknown option ${a} (usage: npm run dev -- [--lab URL] [--port N])`);
  }
  return args;
}

interface Lab {
  origin: string;
  token: string;
  close(): Promise<void>;
}

async function useRunningLab(url: string): Promise<Lab> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--lab wants the URL "stacklab serve" printed, got ${JSON.stringify(url)}`);
  }
  const token = u.searchParams.get('token');
  if (!token) throw new Error('the --lab URL has no ?token=: paste the whole URL "stacklab serve" printed');
  return { origin: u.origin, token, close: async () => {} };
}

async function startLab(): Promise<Lab> {
  const { createEngine } = await import('../electron/engine/index.ts');
  const { startLabServer } = await import('../electron/lab/lab-server.ts');
  const engine = await createEngine();
  // The lab server's own pages are the last build; the dev page comes from Vite.
  const server = await startLabServer({
    dispatcher: engine.dispatcher,
    hub: engine.hub,
    staticDir: path.join(ROOT, 'out', 'renderer'),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return {
    origin: new URL(server.url).origin,
    token: server.token,
    async close() {
      await server.close();
      await engine.dispose(); // stops every QEMU this engine started
    },
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const lab = args.lab ? await useRunningLab(args.lab) : await startLab();
  let devOrigins = new Set<string>();

  const wsProxy: ProxyOptions = {
    target: lab.origin,
    ws: true,
    changeOrigin: true,
    configure(proxy) {
      proxy.on('proxyReqWs', (proxyReq, req, socket) => {
        // The lab server accepts only its own origin. Re-badge our own page's socket as
        // such, and nothing else: another site in the browser must not get through us.
        if (!devOrigins.has(req.headers.origin ?? '')) {
          process.stderr.write(
            `dev: refused /ws from origin ${JSON.stringify(req.headers.origin ?? '(none)')}\n`,
          );
          proxyReq.destroy();
          socket.destroy();
          return;
        }
        proxyReq.setHeader('origin', lab.origin);
      });
    },
  };

  const vite = await createServer({
    configFile: path.join(ROOT, 'renderer', 'vite.config.ts'),
    server: { host: '127.0.0.1', port: args.port, proxy: { '/ws': wsProxy } },
  });
  await vite.listen();
  const address = vite.httpServer?.address();
  const port = typeof address === 'object' && address ? address.port : args.port;
  devOrigins = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
  console.log(`Stacklab renderer with hot reload: http://127.0.0.1:${port}/?token=${lab.token}`);
  console.log(
    `engine: ${args.lab ? `lab server at ${lab.origin}` : 'started in this process'} (Ctrl-C stops it)`,
  );

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void vite
      .close()
      .then(() => lab.close())
      .catch((e: unknown) => console.error(`dev: shutdown: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e: unknown) => {
  console.error(`dev: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
