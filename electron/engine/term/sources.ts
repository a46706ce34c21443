// What a terminal reads from and writes to: the user's shell in a pty on the host, or a
// VM's serial console / HMP monitor Channel. Both look the same to Terminals.
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pty from 'node-pty';
import type { Channel } from '../vm/channel.ts';

export interface SourceEvents {
  data(chunk: Uint8Array): void;
  end(code: number | null): void;
}

export interface TermSource {
  /** Begin delivering data (called once the terminal's bookkeeping exists). */
  start(): void;
  write(data: string): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  /** Stop the source; `end` still fires (once) afterwards. */
  kill(): void;
}

export interface HostShell {
  file: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** The user's login shell, as the OS records it, else $SHELL, else /bin/sh. */
export function defaultHostShell(): HostShell {
  let shell = '';
  try {
    shell = os.userInfo().shell ?? '';
  } catch {
    // No passwd entry (some containers): fall through to $SHELL.
  }
  if (!shell || shell.endsWith('/nologin') || shell.endsWith('/false')) shell = process.env.SHELL ?? '';
  if (!shell) shell = process.platform === 'win32' ? (process.env.COMSPEC ?? 'cmd.exe') : '/bin/sh';
  return { file: shell, args: [], cwd: os.homedir(), env: process.env };
}

const SIGKILL_AFTER_MS = 3000;

export function spawnHostShell(shell: HostShell, cols: number, rows: number, on: SourceEvents): TermSource {
  // A missing shell would otherwise fail inside the forked child, silently.
  if (path.isAbsolute(shell.file)) {
    try {
      accessSync(shell.file, constants.X_OK);
    } catch {
      throw new Error(`${shell.file} is not an executable file`);
    }
  }
  const env: NodeJS.ProcessEnv = { ...shell.env, TERM: 'xterm-256color', COLORTERM: 'truecolor' };
  // A size inherited from our own terminal would fight the pty's real one; Electron's and
  // npm's variables (we may run under `npm start`) would change how tools behave in the shell.
  for (const k of Object.keys(env)) {
    if (k === 'COLUMNS' || k === 'LINES' || k.startsWith('ELECTRON_') || k.startsWith('npm_')) delete env[k];
  }
  const p = pty.spawn(shell.file, shell.args, {
    name: 'xterm-256color',
    cols,
    rows,
    cwd: shell.cwd,
    env,
    // Raw bytes: Terminals decodes them with a streaming decoder it also uses for serial.
    encoding: null,
  });
  let ended = false;
  // With encoding null node-pty hands out Buffers; its typings only know strings.
  p.onData((d) => on.data(d as unknown as Uint8Array));
  p.onExit(({ exitCode, signal }) => {
    ended = true;
    on.end(signal ? null : exitCode);
  });
  return {
    start: () => {},
    write: (data) => p.write(data),
    resize: (c, r) => {
      if (!ended) p.resize(c, r);
    },
    pause: () => p.pause(),
    resume: () => p.resume(),
    kill: () => {
      if (ended) return;
      // node-pty reports exit only once its socket closes, which a paused socket never does.
      p.resume();
      try {
        p.kill('SIGHUP');
      } catch {
        return; // already gone
      }
      // A shell that ignores SIGHUP (trap '' HUP) must not outlive its terminal.
      const pid = p.pid;
      setTimeout(() => {
        if (ended) return;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }, SIGKILL_AFTER_MS).unref();
    },
  };
}

/**
 * A serial console or the HMP monitor. History is replayed first so a late terminal still
 * shows the boot. Resize is accepted and dropped: a UART carries no window size (there is
 * no SIGWINCH over a serial line), so the guest keeps its own idea of rows and columns
 * until someone runs `stty rows R cols C` or `resize` inside it.
 */
export function attachChannel(channel: Channel, on: SourceEvents): TermSource {
  const owner = {};
  const onData = (chunk: Buffer) => on.data(chunk);
  const onClose = () => {
    detach();
    on.end(null);
  };
  const detach = () => {
    channel.off('data', onData);
    channel.off('close', onClose);
    channel.resume(owner);
  };
  let killed = false;
  return {
    start: () => {
      const history = channel.history();
      if (channel.closed) {
        // Still show what the console said last, then report the end on a later turn so
        // the caller has returned the terminal id first.
        setImmediate(() => {
          if (history.length) on.data(history);
          on.end(null);
        });
        return;
      }
      // Replay and subscribe in the same tick: Channel.push stores then emits
      // synchronously, so nothing is lost or repeated between history and live data.
      if (history.length) on.data(history);
      channel.on('data', onData);
      channel.on('close', onClose);
    },
    write: (data) => channel.write(data),
    resize: () => {},
    pause: () => channel.pause(owner),
    resume: () => channel.resume(owner),
    kill: () => {
      if (killed || channel.closed) return;
      killed = true;
      detach();
      on.end(null);
    },
  };
}
