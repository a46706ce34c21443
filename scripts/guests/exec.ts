// Running host tools for the guest builder: argument arrays only (never a shell), output
// captured, and a one-line error naming the command when it fails.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export interface RunOptions {
  cwd?: string;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Let the tool's stderr through to ours (long-running tools that print their own progress). */
  inheritStderr?: boolean;
  /** Write stdout to this file descriptor instead of capturing it. */
  stdoutFd?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** The same output undecoded, for binary output. */
  stdoutBytes: Buffer;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [
        opts.input === undefined ? 'ignore' : 'pipe',
        opts.stdoutFd ?? 'pipe',
        opts.inheritStderr ? 'inherit' : 'pipe',
      ],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      const stdout = stdoutBytes.toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr, stdoutBytes });
      const why =
        lastLine(stderr) || lastLine(stdout) || (signal ? `killed by ${signal}` : `exit code ${code}`);
      reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')}${args.length > 6 ? ' …' : ''} failed: ${why}`));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim();
}

/** Where a tool lives on PATH (or in the sbin directories ordinary users often lack on PATH). */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
