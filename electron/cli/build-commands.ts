// `stacklab build <image>` and `stacklab build status`: the same builds the app runs, from
// a terminal. On a TTY one progress line is redrawn in place with bitbake's warnings and
// errors printed above it; otherwise every bitbake line is printed as is, with a progress
// line at each phase and every 10 %. Ctrl-C cancels (bitbake's own graceful stop), a
// second Ctrl-C stops the running tasks; the summary of a failure goes to stderr.
import path from 'node:path';
import type { BuildInfo } from '../common/contract.ts';
import { DEFAULT_RELEASE, type RunnerKind } from '../engine/build/builds.ts';
import { RELEASES } from '../engine/build/releases.ts';
import { IMAGE_TARGETS } from '../engine/build/targets.ts';
import {
  isFooterLine,
  plainProgress,
  plainProgressKey,
  progressBar,
  statusLines,
  summaryLines,
} from './build-output.ts';
import type { Command } from './commands.ts';
import { UsageError } from './usage-error.ts';
import { withEngine } from './with-engine.ts';

export interface BuildArgs {
  image: string;
  machine: string;
  release: string;
  dir?: string;
  runner?: RunnerKind;
  offline: boolean;
}

/** The command line → a build request, with the defaults filled in. Throws UsageError. */
export function parseBuildArgs(
  values: Record<string, unknown>,
  positionals: string[],
  cwd = process.cwd(),
): BuildArgs {
  const images = IMAGE_TARGETS.map((t) => t.image).join(', ');
  if (positionals.length !== 1) throw new UsageError(`expected one image to build (${images})`);
  const image = positionals[0]!;
  const target = IMAGE_TARGETS.find((t) => t.image === image);
  if (!target) throw new UsageError(`unknown image '${image}' (choose ${images})`);
  const machine = typeof values.machine === 'string' ? values.machine : target.machines[0]!;
  if (!target.machines.includes(machine)) {
    throw new UsageError(`${image} is not built for ${machine} (choose ${target.machines.join(', ')})`);
  }
  const release = typeof values.release === 'string' ? values.release : DEFAULT_RELEASE;
  if (!(RELEASES as readonly string[]).includes(release)) {
    throw new UsageError(`unknown Yocto release '${release}' (choose ${RELEASES.join(', ')})`);
  }
  let runner: RunnerKind | undefined;
  if (values.runner !== undefined) {
    if (values.runner !== 'host' && values.runner !== 'container') {
      throw new UsageError('--runner is host (bitbake on this machine) or container (docker or podman)');
    }
    runner = values.runner;
  }
  if (values.dir !== undefined && (typeof values.dir !== 'string' || values.dir === '')) {
    throw new UsageError('--dir needs a folder');
  }
  return {
    image,
    machine,
    release,
    dir: typeof values.dir === 'string' ? path.resolve(cwd, values.dir) : undefined,
    runner,
    offline: Boolean(values.offline),
  };
}

const USAGE = `usage: stacklab build <image> [--machine M] [--release R] [--dir DIR] [--runner host|container] [--offline] [--json]
       stacklab build status [--json]

images:
${IMAGE_TARGETS.map((t) => `  ${t.image.padEnd(24)} ${t.summary} (${t.machines.join(', ')})`).join('\n')}

  --machine M   Yocto MACHINE (default: the image's first)
  --release R   ${RELEASES.join(', ')} (default ${DEFAULT_RELEASE})
  --dir DIR     the workspace folder (default: one per image, machine and release in the data dir)
  --runner      host: bitbake on this Linux machine; container: in a Yocto build container
  --offline     build only from the download cache (BB_NO_NETWORK)
Layers are cloned from the network, or from local checkouts named by POKY_DIR, META_OE_DIR,
META_RPI_DIR (OE_CORE_DIR, BITBAKE_DIR, META_YOCTO_DIR for whinlatter). As root, bitbake
runs as the unprivileged user named in STACKLAB_BUILD_USER.
Ctrl-C cancels (running tasks finish); a second Ctrl-C stops them. Exit status: 0 built and
in the library, 1 failed, 130 cancelled.`;

// What a terminal shows above the bar: problems, milestones, and bitbake's answer to Ctrl-C.
const LOUD =
  /^(?:ERROR|WARNING):|^Parsing of \d+ \.bb files complete|^NOTE: Tasks Summary|^Summary: |Keyboard Interrupt|^Execution was interrupted/;

async function runBuild(args: BuildArgs, json: boolean): Promise<number> {
  return withEngine(async (e) => {
    const tty = Boolean(process.stdout.isTTY) && !json;
    const width = () => Math.max(40, (process.stdout.columns ?? 100) - 1);
    let barShown = false;
    const clearBar = () => {
      if (barShown) process.stdout.write('\r\x1b[2K');
      barShown = false;
    };
    const say = (line: string) => {
      if (json) return;
      clearBar();
      process.stdout.write(`${line}\n`);
    };
    let id = '';
    let lastKey = '';
    let latest: BuildInfo | undefined;
    const draw = (info: BuildInfo) => {
      if (tty) {
        process.stdout.write(`\r\x1b[2K${progressBar(info, width())}`);
        barShown = true;
      } else if (!json) {
        const key = plainProgressKey(info);
        if (key !== lastKey) process.stdout.write(`${plainProgress(info)}\n`);
        lastKey = key;
      }
    };
    // Subscribed before the start: the first events go out while start() returns.
    const offChanged = (() => {
      const h = (info: BuildInfo) => {
        if (info.id !== id) return; // also before start() returns: its first event is drawn later
        latest = info;
        if (info.state === 'preparing' || info.state === 'running' || info.state === 'importing') draw(info);
      };
      e.builds.on('changed', h);
      return () => e.builds.off('changed', h);
    })();
    const onLine = (buildId: string, line: string) => {
      if (buildId !== id || json) return;
      if (!tty) {
        if (!isFooterLine(line)) process.stdout.write(`${line}\n`);
      } else if (LOUD.test(line)) {
        say(line);
        if (latest) draw(latest);
      }
    };
    e.builds.on('line', onLine);
    let interrupts = 0;
    let lastSignal = 0;
    const onSigint = () => {
      // One Ctrl-C can arrive twice: conf's atomically (when-exit) catches the first SIGINT
      // with a once-handler and raises it again. A person's second Ctrl-C comes later.
      if (Date.now() - lastSignal < 400) return;
      lastSignal = Date.now();
      interrupts++;
      if (!id) return;
      say(
        interrupts === 1
          ? 'cancelling: bitbake lets running tasks finish (Ctrl-C again to stop them now)'
          : 'stopping the running tasks now',
      );
      try {
        e.builds.cancel(id);
      } catch {
        // already ending
      }
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    try {
      const started = e.builds.start(args);
      id = started.id;
      say(`build ${id}: ${args.image} for ${args.machine} (${args.release}) in ${started.dir}`);
      for (const w of started.warnings) say(`warning: ${w}`);
      const info = await e.builds.wait(id);
      clearBar();
      if (json) console.log(JSON.stringify(info, null, 2));
      else {
        const lines = summaryLines(info);
        const stream = info.state === 'succeeded' ? process.stdout : process.stderr;
        for (const l of lines) stream.write(`${l}\n`);
      }
      return info.state === 'succeeded' ? 0 : info.state === 'cancelled' ? 130 : 1;
    } finally {
      clearBar();
      offChanged();
      e.builds.off('line', onLine);
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    }
  });
}

export const buildCommands: Record<string, Command> = {
  build: {
    summary: 'build a Yocto image with bitbake; it lands in the library',
    usage: USAGE,
    options: {
      machine: { type: 'string' },
      release: { type: 'string' },
      dir: { type: 'string' },
      runner: { type: 'string' },
      offline: { type: 'boolean' },
    },
    async run(values, positionals) {
      return runBuild(parseBuildArgs(values, positionals), Boolean(values.json));
    },
  },

  'build status': {
    summary: 'running and recent builds, with their state',
    usage: 'usage: stacklab build status [--json]',
    options: {},
    async run(values, positionals) {
      if (positionals.length > 0) throw new UsageError('build status takes no arguments');
      return withEngine(async (e) => {
        const list = e.builds.list();
        if (values.json) console.log(JSON.stringify(list, null, 2));
        else console.log(statusLines(list).join('\n'));
        return 0;
      });
    },
  },
};
