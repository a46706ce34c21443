// Writing one root-only file (binfmt_misc's register/entry files). Root, or a file we may
// write, is written directly; otherwise we ask for rights out loud — pkexec where a desktop
// session can show its password dialog, else `sudo -n` (never a password prompt on a pipe) —
// and if neither works we say so in one line and have changed nothing.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { which } from './find.ts';

export interface RootWriteOptions {
  /** What the write does, for the messages ("registering qemu-aarch64 with binfmt_misc"). */
  why: string;
  /** The command a user can run as root instead, for the refusal message. */
  hint: string;
  env?: NodeJS.ProcessEnv;
  /** Told before we ask pkexec or sudo, so the request is never silent. */
  onNote?: (line: string) => void;
  /** 'never': do not ask for rights; fail at once when we lack them. */
  escalate?: 'auto' | 'never';
}

function writable(file: string): boolean {
  try {
    accessSync(file, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const isRoot = () => typeof process.geteuid === 'function' && process.geteuid() === 0;

/** The way we would ask for root here, or undefined when there is none. */
export function escalationTool(
  env: NodeJS.ProcessEnv = process.env,
): { tool: 'pkexec' | 'sudo'; path: string } | undefined {
  const desktop = Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
  const pkexec = desktop ? which('pkexec', env) : undefined;
  if (pkexec) return { tool: 'pkexec', path: pkexec };
  const sudo = which('sudo', env);
  return sudo ? { tool: 'sudo', path: sudo } : undefined;
}

export async function writeAsRoot(
  file: string,
  data: string,
  opts: RootWriteOptions,
): Promise<'direct' | 'pkexec' | 'sudo'> {
  if (isRoot() || writable(file)) {
    try {
      await writeFile(file, data);
      return 'direct';
    } catch (e) {
      throw new Error(
        `${opts.why} failed: ${(e as NodeJS.ErrnoException).code ?? ''} ${(e as Error).message}`.trim(),
      );
    }
  }
  const env = opts.env ?? process.env;
  const refuse = (reason: string) =>
    new Error(`${opts.why} needs root and ${reason}: run "${opts.hint}" as root — nothing was changed`);
  if (opts.escalate === 'never') throw refuse('asking for it was turned off');
  const how = escalationTool(env);
  if (!how) throw refuse('neither sudo nor pkexec (with a desktop session) is available');
  const tee = which('tee', env);
  if (!tee) throw refuse('tee is not on PATH');
  opts.onNote?.(`${opts.why} needs root: asking through ${how.tool === 'sudo' ? 'sudo -n' : 'pkexec'}`);
  const args = how.tool === 'sudo' ? ['-n', tee, file] : [tee, file];
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(how.path, args, { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', (e) => resolve({ code: -1, stderr: e.message }));
    child.on('close', (c) => resolve({ code: c, stderr: err }));
    child.stdin.on('error', () => {});
    child.stdin.end(data);
  });
  if (code !== 0) {
    const last = stderr.trim().split('\n').pop()?.trim() || `exit status ${code}`;
    throw refuse(`${how.tool} refused (${last})`);
  }
  return how.tool;
}
