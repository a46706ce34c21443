// Clone a workspace's layer repositories at their pinned revisions, reporting git's
// progress. git runs with argument arrays; GIT_TERMINAL_PROMPT=0 so a private or mistyped
// URL fails instead of waiting for a password nobody can type. Commands inside a checkout
// name it as a safe.directory: when the engine runs as root and the workspace belongs to
// the build user (CI), git would otherwise refuse a checkout it does not own.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { RepoRecord, Workspace } from './workspace.ts';

export interface CloneProgress {
  repo: string;
  phase: 'cloning' | 'checkout' | 'ready';
  /** git's own percentage for its current stage (objects received, deltas resolved). */
  percent?: number;
  message: string;
}

export interface CloneOptions {
  onProgress?: (p: CloneProgress) => void;
  signal?: AbortSignal;
}

interface GitResult {
  code: number | null;
  stderr: string;
}

function git(args: string[], opts: { cwd?: string; signal?: AbortSignal; onStderr?: (s: string) => void }) {
  return new Promise<GitResult>((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: opts.cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
      stdio: ['ignore', 'ignore', 'pipe'],
      signal: opts.signal,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr = (stderr + s).slice(-20_000);
      opts.onStderr?.(s);
    });
    child.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error('git is not installed'));
      else reject(e);
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** The last line git printed, for a one-line error. */
function lastLine(stderr: string): string {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.at(-1) ?? 'no output';
}

/** git's "Receiving objects:  45% (123/456)" progress, split on the \r it redraws with. */
export function parseGitProgress(text: string): { stage: string; percent: number } | undefined {
  let found: { stage: string; percent: number } | undefined;
  for (const m of text.matchAll(/(?:remote: )?([A-Z][a-z]+(?: [a-z]+)*):\s+(\d{1,3})%/g)) {
    found = { stage: m[1]!, percent: Number(m[2]) };
  }
  return found;
}

/** `git -C dir` for a checkout Stacklab made, whoever owns it. */
function inRepo(dir: string, ...args: string[]): string[] {
  return ['-c', `safe.directory=${dir}`, '-C', dir, ...args];
}

async function headRev(dir: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('git', inRepo(dir, 'rev-parse', 'HEAD'), { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      out += s;
    });
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => resolve(code === 0 ? out.trim() : undefined));
  });
}

async function cloneOne(ws: Workspace, repo: RepoRecord, options: CloneOptions): Promise<void> {
  const dest = path.join(ws.dir, repo.dir);
  const report = (p: Omit<CloneProgress, 'repo'>) => options.onProgress?.({ repo: repo.name, ...p });
  const signal = options.signal;
  if (!existsSync(path.join(dest, '.git'))) {
    report({
      phase: 'cloning',
      percent: 0,
      message: `cloning ${repo.name} (${repo.branch}) from ${repo.source}`,
    });
    const r = await git(
      ['clone', '--progress', '--single-branch', '--branch', repo.branch, '--', repo.source, dest],
      {
        signal,
        onStderr: (s) => {
          const p = parseGitProgress(s);
          if (p)
            report({
              phase: 'cloning',
              percent: p.percent,
              message: `${repo.name}: ${p.stage} ${p.percent}%`,
            });
        },
      },
    );
    if (r.code !== 0)
      throw new Error(`cloning ${repo.name} from ${repo.source} failed: ${lastLine(r.stderr)}`);
  }
  const want = repo.rev;
  const head = await headRev(dest);
  if (head === want) {
    report({ phase: 'ready', percent: 100, message: `${repo.name} at ${want.slice(0, 12)}` });
    return;
  }
  report({ phase: 'checkout', message: `${repo.name}: checking out ${want}` });
  // A revision newer than the clone (pin moved on): fetch the branch first.
  const has = await git(inRepo(dest, 'cat-file', '-e', `${want}^{commit}`), { signal });
  if (has.code !== 0) {
    const f = await git(inRepo(dest, 'fetch', '--progress', 'origin', repo.branch), { signal });
    if (f.code !== 0) throw new Error(`fetching ${repo.name} ${repo.branch} failed: ${lastLine(f.stderr)}`);
  }
  const c = await git(inRepo(dest, 'checkout', '--quiet', '--detach', want), { signal });
  if (c.code !== 0) throw new Error(`${repo.name}: cannot check out ${want}: ${lastLine(c.stderr)}`);
  report({ phase: 'ready', percent: 100, message: `${repo.name} at ${want.slice(0, 12)}` });
}

/** Clone (or bring to the pinned revision) every repository of the workspace, one at a time. */
export async function cloneLayers(ws: Workspace, options: CloneOptions = {}): Promise<void> {
  for (const repo of ws.record.repos) {
    await cloneOne(ws, repo, options);
  }
}
