// Yocto builds as the app and the CLI drive them: pick (release, machine, image), and the
// engine writes the workspace, clones the layers, runs bitbake under a pty, and puts the
// finished image in the library. Each build has an id, a state that front ends follow
// through `build.changed` events (throttled: knotty redraws its bars many times a second),
// a record on disk for `stacklab build status` in other processes, and its raw bitbake
// output in a Channel, which a terminal attaches to with the usual flow control.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BuildInfo, BuildTargets } from '../../common/contract.ts';
import type { EventHub } from '../engine.ts';
import type { Library } from '../library.ts';
import { attachChannel, type SourceEvents, type TermSource } from '../term/sources.ts';
import { Channel } from '../vm/channel.ts';
import { type BuildAccount, buildAccount, checkReachable, handOver } from './build-user.ts';
import { findContainerEngine, runBitbakeInContainer } from './container.ts';
import { importBuiltImage } from './import-built.ts';
import { keyLine } from './key-line.ts';
import type { BuildProgress } from './progress.ts';
import { BuildRecords, isLive } from './records.ts';
import { RELEASE_TABLE, RELEASES, type RepoName, releaseInfo } from './releases.ts';
import { type BitbakeRun, buildImage } from './runner.ts';
import { IMAGE_TARGETS, imageTarget } from './targets.ts';
import {
  checkDiskSpace,
  cloneLayers,
  createWorkspace,
  defaultWorkspaceDir,
  RECORD_FILE,
  sharedCacheDirs,
  type Workspace,
  type WorkspaceChoice,
} from './workspace.ts';

export type RunnerKind = BuildInfo['runner'];

export interface StartRequest {
  image: string;
  machine: string;
  release: string;
  dir?: string;
  runner?: RunnerKind;
  offline?: boolean;
}

export interface BuildsOptions {
  hub: EventHub;
  library: Library;
  home: string;
  env?: NodeJS.ProcessEnv;
  /** Milliseconds between progress events per build (state changes go out at once). */
  throttleMs?: number;
}

interface Build {
  info: BuildInfo;
  ws: Workspace;
  channel: Channel;
  abort: AbortController;
  account?: BuildAccount;
  run?: BitbakeRun;
  cancelRequested: boolean;
  timer?: NodeJS.Timeout;
  done: Promise<BuildInfo>;
  resolve(info: BuildInfo): void;
}

interface BuildsEvents {
  /** One clean line of bitbake output (escapes removed, bar redraws left out). */
  line: [buildId: string, line: string];
  changed: [BuildInfo];
}

export const DEFAULT_RELEASE = 'scarthgap';

/** Local checkouts or mirrors to clone layers from instead of the network (docs/yocto.md). */
export function layerSources(env: NodeJS.ProcessEnv): Partial<Record<RepoName, string>> {
  const vars: Record<RepoName, string> = {
    poky: 'POKY_DIR',
    'meta-openembedded': 'META_OE_DIR',
    'meta-raspberrypi': 'META_RPI_DIR',
    'openembedded-core': 'OE_CORE_DIR',
    bitbake: 'BITBAKE_DIR',
    'meta-yocto': 'META_YOCTO_DIR',
  };
  const out: Partial<Record<RepoName, string>> = {};
  for (const [repo, v] of Object.entries(vars) as [RepoName, string][]) {
    if (env[v]) out[repo] = path.resolve(env[v]);
  }
  return out;
}

function defaultRunner(): RunnerKind {
  return process.platform === 'linux' ? 'host' : 'container';
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 500);
}

/** The contract's progress from the knotty parser's. */
function fromKnotty(p: BuildProgress): BuildInfo['progress'] {
  return {
    phase: p.phase,
    label: p.label,
    percent: p.percent,
    done: p.done,
    total: p.total,
    currentTasks: p.currentTasks.slice(0, 16),
  };
}

/** Where a build may put its workspace. Throws one line for anything unusable. */
export function checkWorkspaceDir(dir: string): string {
  if (!path.isAbsolute(dir)) throw new Error(`the workspace folder must be an absolute path, not '${dir}'`);
  const abs = path.resolve(dir);
  if (!existsSync(abs)) return abs;
  if (!statSync(abs).isDirectory()) {
    throw new Error(`${abs} is a file, not a folder: choose a folder for the build workspace`);
  }
  if (!existsSync(path.join(abs, RECORD_FILE)) && readdirSync(abs).length > 0) {
    throw new Error(
      `${abs} holds other files and is not a Stacklab workspace: choose an empty or new folder`,
    );
  }
  return abs;
}

export class Builds extends EventEmitter<BuildsEvents> {
  private readonly builds = new Map<string, Build>();
  readonly records: BuildRecords;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: BuildsOptions) {
    super();
    this.env = opts.env ?? process.env;
    this.records = new BuildRecords(path.join(opts.home, 'builds'));
  }

  targets(): BuildTargets {
    let blocked: string | undefined;
    try {
      if (defaultRunner() === 'host') buildAccount(this.env);
      else if (!findContainerEngine()) {
        blocked =
          'bitbake needs Linux: on this system builds run in a container, and neither podman nor docker is installed';
      }
    } catch (e) {
      blocked = oneLine(e);
    }
    return {
      releases: RELEASES.map((r) => ({ name: r, version: RELEASE_TABLE[r].version })),
      images: IMAGE_TARGETS.map((t) => ({ image: t.image, summary: t.summary, machines: [...t.machines] })),
      defaults: { release: DEFAULT_RELEASE, runner: defaultRunner() },
      blocked,
    };
  }

  /** Checks the request, writes the workspace and starts the build; returns at once. Throws one line. */
  start(req: StartRequest): BuildInfo {
    const release = releaseInfo(req.release).release;
    const target = imageTarget(req.image, req.machine);
    const runner = req.runner ?? defaultRunner();
    let account: BuildAccount | undefined;
    if (runner === 'host') {
      if (process.platform !== 'linux') {
        throw new Error(
          'bitbake runs on Linux only: build in a container (runner "container", docker or podman)',
        );
      }
      account = buildAccount(this.env);
    } else if (!findContainerEngine()) {
      throw new Error('neither podman nor docker is installed: install one to build in a container');
    }
    const choice: WorkspaceChoice = { release, machine: req.machine, image: target.image };
    const dir = req.dir === undefined ? defaultWorkspaceDir(choice, this.env) : checkWorkspaceDir(req.dir);
    const busy = this.list().find((b) => isLive(b.state) && b.dir === dir);
    if (busy) throw new Error(`build ${busy.id} is already running in ${dir}`);

    let ws: Workspace;
    try {
      ws = createWorkspace(choice, {
        dir,
        sources: layerSources(this.env),
        ...sharedCacheDirs(this.env),
        offline: req.offline,
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(code ? `cannot set up the workspace in ${dir}: ${code}` : oneLine(e));
    }
    const warnings: string[] = [];
    const disk = checkDiskSpace(dir);
    if (disk.warning) warnings.push(disk.warning);

    const id = `${target.image}-${req.machine}-${randomBytes(3).toString('hex')}`;
    let resolve!: (info: BuildInfo) => void;
    const done = new Promise<BuildInfo>((r) => {
      resolve = r;
    });
    const b: Build = {
      info: {
        id,
        image: target.image,
        machine: req.machine,
        release,
        dir,
        runner,
        offline: req.offline ?? false,
        state: 'preparing',
        progress: {
          phase: 'preparing',
          label: 'Preparing the workspace',
          percent: 0,
          done: 0,
          total: ws.record.repos.length,
          currentTasks: [],
        },
        warnings,
        startedAt: Date.now(),
        imported: [],
      },
      ws,
      // Enough scrollback for a late terminal to see the whole parse and the failure.
      channel: new Channel(`build ${id}`, 2 * 1024 * 1024, {
        write: () => {},
        pause: () => b.run?.pause(),
        resume: () => b.run?.resume(),
      }),
      abort: new AbortController(),
      account,
      cancelRequested: false,
      done,
      resolve,
    };
    this.builds.set(id, b);
    this.publish(b);
    try {
      this.records.prune();
    } catch {
      // Old records are only tidied here; a build does not fail over them.
    }
    void this.run(b, target.summary);
    return b.info;
  }

  get(id: string): BuildInfo {
    const b = this.builds.get(id);
    if (b) return b.info;
    const rec = this.records.read().find((r) => r.id === id);
    if (!rec) throw new Error(`no build ${id}`);
    return rec;
  }

  /** This engine's builds and the recorded ones, newest first. */
  list(): BuildInfo[] {
    const mine = [...this.builds.values()].map((b) => b.info);
    const others = this.records.read().filter((r) => !this.builds.has(r.id));
    return [...mine, ...others].sort((a, b) => b.startedAt - a.startedAt);
  }

  /** Resolves with the final state. */
  wait(id: string): Promise<BuildInfo> {
    const b = this.builds.get(id);
    if (!b) return Promise.resolve(this.get(id));
    return b.done;
  }

  /** First call: Ctrl-C to bitbake (running tasks finish). Again: stop them now, then kill. */
  cancel(id: string): void {
    const b = this.builds.get(id);
    if (!b) {
      const rec = this.records.read().find((r) => r.id === id);
      if (rec && isLive(rec.state))
        throw new Error(`build ${id} runs in another Stacklab process: cancel it there`);
      throw new Error(rec ? `build ${id} is not running (${rec.state})` : `no build ${id}`);
    }
    if (!isLive(b.info.state)) throw new Error(`build ${id} is not running (${b.info.state})`);
    if (b.info.state === 'importing')
      throw new Error(`build ${id} is adding its image to the library: it ends in a moment`);
    if (b.cancelRequested) {
      this.note(b, 'stopping now: running tasks are interrupted');
      void b.run?.hurry();
      return;
    }
    b.cancelRequested = true;
    b.abort.abort();
    if (b.run) {
      this.note(b, 'cancelling: running tasks finish first (cancel again to stop them now)');
      void b.run.cancel();
    }
  }

  /** A terminal source on the build's live output; Ctrl-C typed into it cancels the build. */
  attach(id: string, on: SourceEvents): { source: TermSource; title: string } {
    const b = this.builds.get(id);
    if (!b) {
      const rec = this.records.read().find((r) => r.id === id);
      if (!rec) throw new Error(`no build ${id}`);
      throw new Error(
        `build ${id} ran in another Stacklab process: its logs are in ${rec.dir}/build/tmp/log`,
      );
    }
    const source = attachChannel(b.channel, on);
    return {
      title: `bitbake ${b.info.image} (${b.info.machine}, ${b.info.release})`,
      source: {
        ...source,
        write: (data) => {
          if (data.includes('\x03') && isLive(b.info.state)) this.cancel(id);
        },
        resize: (cols, rows) => b.run?.resize(cols, rows),
      },
    };
  }

  /** Stops every running build quickly (the engine is going away). */
  async dispose(): Promise<void> {
    const live = [...this.builds.values()].filter((b) => isLive(b.info.state));
    for (const b of live) {
      b.cancelRequested = true;
      b.abort.abort();
      void b.run?.hurry();
    }
    await Promise.all(live.map((b) => b.done));
  }

  private async run(b: Build, summary: string): Promise<void> {
    const { ws } = b;
    try {
      for (const w of b.info.warnings) this.note(b, `warning: ${w}`);
      const repos = ws.record.repos;
      let lastNote = '';
      await cloneLayers(ws, {
        signal: b.abort.signal,
        onProgress: (p) => {
          const i = Math.max(
            0,
            repos.findIndex((r) => r.name === p.repo),
          );
          const part = p.phase === 'ready' ? 1 : (p.percent ?? 0) / 100;
          this.progress(b, {
            phase: 'preparing',
            label: p.message,
            percent: Math.floor(((i + part) / repos.length) * 100),
            done: i + (p.phase === 'ready' ? 1 : 0),
            total: repos.length,
            currentTasks: [],
          });
          // The log gets each step once, not every percentage git prints.
          const step = `${p.repo} ${p.phase}`;
          if (step !== lastNote) this.note(b, p.message);
          lastNote = step;
        },
      });
      if (b.abort.signal.aborted) throw new Error('build cancelled');
      if (b.account) {
        await handOver(ws, b.account);
        await checkReachable([ws.buildDir, ws.record.downloadsDir, ws.record.sstateDir], b.account);
      }
      this.setState(b, 'running', {
        phase: 'parsing',
        label: 'Starting bitbake',
        percent: 0,
        done: 0,
        total: 100,
        currentTasks: [],
      });
      this.note(b, `bitbake ${ws.image} in ${ws.buildDir}${b.account ? ` as ${b.account.name}` : ''}`);
      const session = { args: [ws.image], cols: 120, rows: 30, killAfterMs: 15_000 };
      const run =
        b.info.runner === 'container'
          ? runBitbakeInContainer(ws, session)
          : buildImage(ws, { ...session, runAs: b.account?.name });
      b.run = run;
      run.on('data', (d) => b.channel.push(Buffer.from(d, 'utf8')));
      run.on('line', (l) => this.emit('line', b.info.id, l));
      run.on('progress', (p) => this.progress(b, fromKnotty(p)));
      if (b.cancelRequested) void run.cancel();
      const result = await run.done;
      b.run = undefined;
      if (!result.ok) {
        this.finish(b, result.cancelled ? 'cancelled' : 'failed', {
          progress: fromKnotty(result.progress),
          message: result.message,
          exitCode: result.exitCode,
          keyLine: result.cancelled ? undefined : keyLine(result),
          failedTasks: result.summary.failures.length,
          failure: result.failure && {
            task: result.failure.task,
            recipe: result.failure.recipe || result.failure.recipeFile || '',
            logPath: result.failure.logPath,
            line: result.failure.line.slice(0, 2000),
          },
        });
        return;
      }
      this.setState(b, 'importing', {
        ...fromKnotty(result.progress),
        phase: 'importing',
        label: 'Adding the image to the library',
      });
      const record = await importBuiltImage(ws, {
        store: await this.opts.library.openStore(),
        description: `${summary}; built here with Yocto ${b.info.release} (${RELEASE_TABLE[b.info.release as keyof typeof RELEASE_TABLE].version})`,
      });
      this.opts.hub.emit('images.changed', {});
      this.finish(b, 'succeeded', {
        progress: { ...fromKnotty(result.progress), phase: 'done', label: 'Done', percent: 100 },
        message: `built ${ws.image} for ${ws.machine}: in the library as ${record.id}`,
        exitCode: result.exitCode,
        imported: [record.id],
      });
    } catch (e) {
      const cancelled = b.cancelRequested;
      this.finish(b, cancelled ? 'cancelled' : 'failed', {
        message: cancelled ? 'build cancelled' : oneLine(e),
        progress: { ...b.info.progress, phase: 'failed', label: cancelled ? 'Cancelled' : 'Failed' },
      });
    }
  }

  /** A dim line of our own in the build's log, between bitbake's. */
  private note(b: Build, text: string): void {
    b.channel.push(Buffer.from(`\x1b[2m[stacklab] ${text}\x1b[0m\r\n`, 'utf8'));
  }

  private progress(b: Build, p: BuildInfo['progress']): void {
    if (!isLive(b.info.state)) return;
    b.info = { ...b.info, progress: p };
    b.timer ??= setTimeout(() => this.publish(b), this.opts.throttleMs ?? 200);
  }

  private setState(b: Build, state: BuildInfo['state'], progress: BuildInfo['progress']): void {
    b.info = { ...b.info, state, progress };
    this.publish(b);
  }

  private finish(b: Build, state: BuildInfo['state'], extra: Partial<BuildInfo>): void {
    b.info = { ...b.info, ...extra, state, endedAt: Date.now() };
    const m = b.info.message;
    if (m)
      this.note(
        b,
        state === 'succeeded' ? m : `${state}: ${m}${b.info.keyLine ? `\r\n  ${b.info.keyLine}` : ''}`,
      );
    this.publish(b);
    b.channel.end();
    b.resolve(b.info);
  }

  private publish(b: Build): void {
    if (b.timer) clearTimeout(b.timer);
    b.timer = undefined;
    try {
      this.records.write(b.info);
    } catch {
      // The record is for other processes; this build goes on without it.
    }
    this.opts.hub.emit('build.changed', b.info);
    this.emit('changed', b.info);
  }
}
