// Runs bitbake in a workspace under a pty, so knotty draws its live progress (bars, the
// running-task footer) for the UI's terminal, while KnottyParser turns the same output into
// progress events and, at the end, a failure summary.
//
// - The environment is the one oe-init-build-env would set (buildenv.ts); nothing is
//   sourced through a shell and bitbake gets an argument array.
// - bitbake refuses to run as root (OE-core's sanity check "Do not use Bitbake as root"),
//   so the runner refuses first, with the reason. An engine that itself runs as root (CI,
//   a container) names an unprivileged user in `runAs`; bitbake then runs through
//   `setpriv --reuid --regid --init-groups` with that user's HOME and a plain PATH.
// - cancel(): Ctrl-C (SIGINT), which knotty turns into a graceful stop (no new tasks,
//   running ones finish); after cancelGraceMs a second Ctrl-C (knotty's forced stop, which
//   kills the running tasks); after killAfterMs more, SIGKILL to the whole process group.
//   The Ctrl-C is typed into the pty rather than sent with kill(): the terminal turns it
//   into SIGINT for bitbake's process group, and the same keystroke travels through
//   `docker run -it` and `ssh -tt` (container.ts, remote.ts), where kill() would only hit
//   the local client.
// - Linux only: macOS and Windows builds go through container.ts or remote.ts.
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pty from 'node-pty';
import { bitbakeEnv } from './buildenv.ts';
import type { BuildProgress, BuildSummary, TaskFailure } from './progress.ts';
import { KnottyParser } from './progress.ts';
import type { Workspace } from './workspace.ts';

export interface SessionOptions {
  /** bitbake's arguments, e.g. ['stacklab-host-image'], ['-p'], ['-c', 'fetch', 'quilt-native']. */
  args: string[];
  cols?: number;
  rows?: number;
  /** After the first Ctrl-C, how long running tasks get to finish. */
  cancelGraceMs?: number;
  /** After the second Ctrl-C, how long before the process is killed. */
  killAfterMs?: number;
  /** Lines kept for BuildResult.tail. */
  tailLines?: number;
}

export interface RunOptions extends SessionOptions {
  /** Only when this process runs as root: the unprivileged user to run bitbake as. */
  runAs?: string;
  /** Extra environment (only variables bitbake passes through reach the build). */
  env?: Record<string, string>;
}

/** How to start bitbake: here, in a container, or over ssh. */
export interface LaunchSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Only one run at a time per key (the build directory). */
  lockKey: string;
  /** The last resort when two Ctrl-Cs did not end it; default: SIGKILL to the process group. */
  forceStop?: (pid: number) => void;
}

export interface BuildResult {
  ok: boolean;
  exitCode: number | null;
  signal: number | null;
  cancelled: boolean;
  argv: string[];
  durationMs: number;
  progress: BuildProgress;
  summary: BuildSummary;
  /** The first failed task, when a task failed. */
  failure?: TaskFailure;
  /** One line for people: what happened. */
  message: string;
  /** The last lines of output, escapes removed. */
  tail: string[];
}

interface RunEvents {
  /** Raw pty output, escapes included: feed it to the terminal. */
  data: [string];
  /** One line, escapes removed (progress-bar redraws left out). */
  line: [string];
  progress: [BuildProgress];
  exit: [BuildResult];
}

const active = new Set<string>();

interface Account {
  uid: number;
  gid: number;
  home: string;
}

function lookupUser(name: string): Account {
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) throw new Error(`'${name}' is not a user name`);
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`no user '${name}' on this system (create it, e.g. useradd --create-home ${name})`);
  }
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
}

/** Throws when the workspace is not ready for bitbake (layers not cloned, no conf). */
export function checkWorkspace(ws: Workspace, args: readonly string[]): void {
  if (!existsSync(path.join(ws.bitbakeDir, 'bin', 'bitbake'))) {
    throw new Error(`no bitbake in ${ws.bitbakeDir}: clone the workspace's layers first`);
  }
  if (!existsSync(path.join(ws.buildDir, 'conf', 'local.conf'))) {
    throw new Error(`no conf/local.conf in ${ws.buildDir}: create the workspace first`);
  }
  for (const a of args) {
    if (typeof a !== 'string' || a.length === 0 || a.includes('\0'))
      throw new Error('bitbake arguments must be non-empty strings');
  }
}

export function checkRunnable(
  ws: Workspace,
  options: Pick<RunOptions, 'runAs' | 'args'>,
): Account | undefined {
  if (process.platform !== 'linux') {
    throw new Error(
      'bitbake runs on Linux only: build through a container (container.ts) or a remote Linux host (remote.ts)',
    );
  }
  checkWorkspace(ws, options.args);
  const root = process.getuid?.() === 0;
  if (options.runAs) {
    if (!root) throw new Error('runAs needs root (to switch user); run bitbake as yourself instead');
    const account = lookupUser(options.runAs);
    if (account.uid === 0) throw new Error(`'${options.runAs}' is root: bitbake refuses to run as root`);
    return account;
  }
  if (root) {
    throw new Error(
      'bitbake refuses to run as root (OE-core sanity check "Do not use Bitbake as root"): run Stacklab as a normal user',
    );
  }
  return undefined;
}

/** The environment bitbake starts with. */
function runEnv(ws: Workspace, account: Account | undefined, options: RunOptions): Record<string, string> {
  let base: NodeJS.ProcessEnv = process.env;
  if (account && options.runAs) {
    // Another user's process gets a clean environment: root's PATH may hold tools that
    // user cannot read (bitbake links every HOSTTOOLS entry it finds into tmp/hosttools).
    base = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: account.home,
      USER: options.runAs,
      LOGNAME: options.runAs,
      LANG: process.env.LANG,
      LC_ALL: process.env.LC_ALL,
    };
    for (const k of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
      if (process.env[k]) base[k] = process.env[k];
    }
  }
  const env = bitbakeEnv({ oeRoot: ws.oeRoot, bitbakeDir: ws.bitbakeDir, buildDir: ws.buildDir, base });
  env.TERM = 'xterm-256color';
  return { ...env, ...options.env };
}

export class BitbakeRun extends EventEmitter<RunEvents> {
  readonly argv: string[];
  readonly pid: number;
  readonly done: Promise<BuildResult>;
  private readonly term: pty.IPty;
  private readonly parser: KnottyParser;
  private readonly tail: string[] = [];
  private readonly started = Date.now();
  private cancelled = false;
  private exited = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly spec: LaunchSpec,
    private readonly options: SessionOptions,
  ) {
    super();
    if (active.has(spec.lockKey)) throw new Error(`a bitbake run is already going on in ${spec.lockKey}`);
    this.argv = [spec.file, ...spec.args];
    const keep = options.tailLines ?? 200;
    this.parser = new KnottyParser(
      (p) => this.emit('progress', p),
      (line) => {
        this.tail.push(line);
        if (this.tail.length > keep) this.tail.shift();
        this.emit('line', line);
      },
    );
    this.term = pty.spawn(spec.file, spec.args, {
      name: 'xterm-256color',
      cols: options.cols ?? 120,
      rows: options.rows ?? 30,
      cwd: spec.cwd,
      env: spec.env,
    });
    active.add(spec.lockKey);
    this.pid = this.term.pid;
    this.done = new Promise((resolve) => {
      this.term.onData((d) => {
        this.parser.feed(d);
        this.emit('data', d);
      });
      this.term.onExit(({ exitCode, signal }) => {
        this.exited = true;
        for (const t of this.timers) clearTimeout(t);
        active.delete(spec.lockKey);
        const result = this.finish(exitCode, signal || null);
        this.emit('exit', result);
        resolve(result);
      });
    });
  }

  get progress(): BuildProgress {
    return this.parser.progress;
  }

  resize(cols: number, rows: number): void {
    if (!this.exited) this.term.resize(cols, rows);
  }

  /** Flow control for the terminal view (field notes §6): stop reading bitbake's output.
   *  bitbake blocks once the pty buffer fills, so pause only while the view catches up. */
  pause(): void {
    if (!this.exited) this.term.pause();
  }

  resume(): void {
    if (!this.exited) this.term.resume();
  }

  /** Stop the build: graceful first, forced if it takes too long. Resolves with the result. */
  cancel(): Promise<BuildResult> {
    if (this.exited || this.cancelled) return this.done;
    this.cancelled = true;
    const grace = this.options.cancelGraceMs ?? 120_000;
    const kill = this.options.killAfterMs ?? 30_000;
    this.interrupt();
    this.timers.push(
      setTimeout(() => {
        this.interrupt();
        this.timers.push(setTimeout(() => this.forceStop(), kill));
      }, grace),
    );
    return this.done;
  }

  /** Cancel without the grace period (a second Ctrl-C from the user): knotty's forced stop
   *  now, which kills the running tasks, then SIGKILL after killAfterMs. */
  hurry(): Promise<BuildResult> {
    if (this.exited) return this.done;
    this.cancelled = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.interrupt();
    this.timers.push(setTimeout(() => this.forceStop(), this.options.killAfterMs ?? 30_000));
    return this.done;
  }

  private interrupt(): void {
    if (!this.exited) this.term.write('\x03');
  }

  private forceStop(): void {
    if (this.exited) return;
    if (this.spec.forceStop) {
      this.spec.forceStop(this.pid);
      return;
    }
    try {
      // The pty made bitbake a session (and group) leader: -pid reaches what it started.
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  private finish(exitCode: number, signal: number | null): BuildResult {
    const code = signal ? null : exitCode;
    const summary = this.parser.end(code);
    const failure = summary.failures[0];
    const ok = code === 0 && !this.cancelled && summary.failures.length === 0;
    let message: string;
    if (ok) message = `bitbake ${this.options.args.join(' ')} succeeded`;
    else if (this.cancelled) message = 'build cancelled';
    else if (failure) {
      message = `${failure.recipe || failure.recipeFile || 'a recipe'} ${failure.task} failed${failure.logPath ? ` (log: ${failure.logPath})` : ''}`;
    } else if (summary.errors[0]) message = summary.errors[0].replace(/^ERROR:\s*/, '');
    else message = `bitbake exited with ${signal ? `signal ${signal}` : `code ${exitCode}`}`;
    return {
      ok,
      exitCode: code,
      signal,
      cancelled: this.cancelled,
      argv: this.argv,
      durationMs: Date.now() - this.started,
      progress: this.parser.progress,
      summary,
      failure,
      message,
      tail: [...this.tail],
    };
  }
}

/** Start bitbake in a workspace on this machine. Throws a one-line error when it cannot run. */
export function runBitbake(ws: Workspace, options: RunOptions): BitbakeRun {
  const account = checkRunnable(ws, options);
  const env = runEnv(ws, account, options);
  const spec: LaunchSpec = account
    ? {
        file: 'setpriv',
        args: [
          `--reuid=${account.uid}`,
          `--regid=${account.gid}`,
          '--init-groups',
          '--',
          'bitbake',
          ...options.args,
        ],
        env,
        cwd: ws.buildDir,
        lockKey: ws.buildDir,
      }
    : { file: 'bitbake', args: [...options.args], env, cwd: ws.buildDir, lockKey: ws.buildDir };
  return new BitbakeRun(spec, options);
}

/** Build the workspace's image. */
export function buildImage(
  ws: Workspace,
  options: Omit<RunOptions, 'args'> & { args?: string[] } = {},
): BitbakeRun {
  return runBitbake(ws, { ...options, args: options.args ?? [ws.image] });
}
