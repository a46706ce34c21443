// Where Stacklab keeps its data. One place so every module (and every test, through
// STACKLAB_HOME) agrees. Sockets live in a short private runtime dir because Unix socket
// paths are limited to ~107 bytes and STACKLAB_HOME can be long.
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function stacklabHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STACKLAB_HOME) return path.resolve(env.STACKLAB_HOME);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Stacklab');
  if (process.platform === 'win32')
    return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'Stacklab');
  return path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'stacklab');
}

/** Cache for things that are slow to make and can be made again (demo guests, probes). */
export function cacheHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STACKLAB_CACHE) return path.resolve(env.STACKLAB_CACHE);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'Stacklab');
  if (process.platform === 'win32')
    return path.join(env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'Stacklab', 'Cache');
  return path.join(env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'stacklab');
}

/** Demo guests: STACKLAB_GUESTS overrides; otherwise `<cache>/guests/current` (a symlink the builder points at the newest build). */
export function guestsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STACKLAB_GUESTS) return path.resolve(env.STACKLAB_GUESTS);
  return path.join(cacheHome(env), 'guests', 'current');
}

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.length < 60 ? env.XDG_RUNTIME_DIR : os.tmpdir();
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const dir = path.join(base, `stacklab-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

let root: string | undefined;

/**
 * The repository (development) or the packaged app (app.asar): the nearest directory
 * above this code holding a package.json. Found by walking up rather than a fixed depth,
 * because this file runs from electron/engine/ in a checkout but from inside a bundle
 * (out/main/main.mjs, out/cli/main.mjs) once built.
 */
export function appRoot(): string {
  if (root) return root;
  const here = path.dirname(fileURLToPath(import.meta.url));
  let dir = here;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  root = existsSync(path.join(dir, 'package.json')) ? dir : path.resolve(here, '..', '..');
  return root;
}

export function resourcesDir(): string {
  const packaged = (process as { resourcesPath?: string }).resourcesPath;
  if (packaged && !packaged.includes('node_modules')) return packaged;
  return path.join(appRoot(), 'resources');
}
