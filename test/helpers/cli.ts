// Running the real `stacklab` CLI as a child process, with its own STACKLAB_HOME.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { guestsDir } from '../../electron/engine/paths.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const CLI = path.join(ROOT, 'bin', 'stacklab.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tempHome(prefix = 'stacklab-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stacklab ${args.join(' ')} timed out; stderr: ${stderr.slice(-500)}`));
    }, opts.timeoutMs ?? 240_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The demo guests index, or null (tests then skip, saying how to build them). */
export function demoGuests(): Array<{ name: string; arch: string; deployDir: string }> | null {
  const index = path.join(guestsDir(), 'guests.json');
  if (!existsSync(index)) return null;
  const list = JSON.parse(readFileSync(index, 'utf8')) as Array<{
    name: string;
    arch: string;
    deployDir: string;
  }>;
  return list.map((g) => ({ ...g, deployDir: path.resolve(guestsDir(), g.deployDir) }));
}

export const NO_GUESTS = 'demo guests not built: run npm run guests';
