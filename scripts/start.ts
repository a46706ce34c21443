// `npm start`: the Electron app when its binary is installed, otherwise lab mode in the
// browser. Builds first when the bundles are missing or older than their sources.
// Options: --port N and --open (lab mode only).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const at = (p: string) => path.join(root, p);

/** The Electron executable, or null when only the npm package (no binary) is installed. */
export function electronBinary(): string | null {
  try {
    const p: unknown = createRequire(import.meta.url)('electron');
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null; // the package throws when its binary was never downloaded
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function stale(outputs: string[], sources: string[]): boolean {
  const built = Math.min(...outputs.map((o) => (existsSync(at(o)) ? statSync(at(o)).mtimeMs : 0)));
  return built === 0 || Math.max(...sources.map((s) => newestMtime(at(s)))) > built;
}

function npmRun(script: string): Promise<boolean> {
  // Through npm's own JS entry when we were started by npm: no shell, works on Windows too.
  const npmCli = process.env.npm_execpath;
  const [cmd, args] = npmCli ? [process.execPath, [npmCli, 'run', script]] : ['npm', ['run', script]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args as string[], { cwd: root, stdio: 'inherit' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

const rendererBuild = ['out/renderer/index.html'];
const rendererSources = ['renderer', 'electron/common'];

async function startElectron(bin: string): Promise<number> {
  const nodeBuild = ['out/main/main.mjs', 'out/preload/preload.cjs'];
  if (stale(rendererBuild, rendererSources) && !(await npmRun('build:renderer'))) return 1;
  if (stale(nodeBuild, ['electron']) && !(await npmRun('build:node'))) return 1;
  const child = spawn(bin, ['.'], { cwd: root, stdio: 'inherit' });
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => child.kill(s));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

async function startLab(port: number | undefined, open: boolean): Promise<number> {
  console.log(
    "Electron's binary is not installed (it is downloaded on a networked machine by npm install); starting lab mode instead",
  );
  if (stale(rendererBuild, rendererSources) && !(await npmRun('build:renderer'))) {
    console.error('start: the renderer did not build; the lab server will say so in the browser');
  }
  const { runServe } = await import('../electron/lab/serve-command.ts');
  await runServe({ port, open });
  return 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, open: { type: 'boolean' } },
    strict: true,
  });
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`--port must be 0-65535, not ${values.port}`);
  }
  const bin = electronBinary();
  return bin ? startElectron(bin) : startLab(port, values.open ?? false);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`start: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
      process.exit(1);
    },
  );
}
