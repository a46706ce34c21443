// `stacklab build`: its arguments, and what it prints (the bar, plain lines, the failure
// summary, `build status`). The footer lines are ones knotty drew in a real run here.
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildCommands, parseBuildArgs } from '../../electron/cli/build-commands.ts';
import {
  isFooterLine,
  phaseText,
  plainProgress,
  plainProgressKey,
  progressBar,
  statusLines,
  summaryLines,
} from '../../electron/cli/build-output.ts';
import { UsageError } from '../../electron/cli/usage-error.ts';
import type { BuildInfo } from '../../electron/common/contract.ts';

/** The command line as main.ts parses it, then parseBuildArgs. */
function parse(argv: string[], cwd = '/home/me') {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...buildCommands.build!.options, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  return parseBuildArgs(values, positionals, cwd);
}

function info(over: Partial<BuildInfo> = {}): BuildInfo {
  return {
    id: 'stacklab-guest-image-qemux86-64-a1b2c3',
    image: 'stacklab-guest-image',
    machine: 'qemux86-64',
    release: 'scarthgap',
    dir: '/w/guest',
    runner: 'host',
    offline: true,
    state: 'running',
    progress: {
      phase: 'parsing',
      label: 'Parsing recipes',
      percent: 42,
      done: 42,
      total: 100,
      currentTasks: [],
    },
    warnings: [],
    startedAt: 1_000_000,
    imported: [],
    ...over,
  };
}

describe('parseBuildArgs', () => {
  it("fills in the image's first machine and the default release", () => {
    expect(parse(['stacklab-host-image'])).toEqual({
      image: 'stacklab-host-image',
      machine: 'qemuarm64',
      release: 'scarthgap',
      dir: undefined,
      runner: undefined,
      offline: false,
    });
  });

  it('takes --machine, --release, --dir (relative to the current folder), --runner, --offline', () => {
    expect(
      parse([
        'stacklab-rpi-image',
        '--machine',
        'raspberrypi4-64',
        '--release',
        'whinlatter',
        '--dir',
        'ws/pi',
        '--runner',
        'container',
        '--offline',
      ]),
    ).toEqual({
      image: 'stacklab-rpi-image',
      machine: 'raspberrypi4-64',
      release: 'whinlatter',
      dir: '/home/me/ws/pi',
      runner: 'container',
      offline: true,
    });
    expect(parse(['core-image-minimal', '--dir', '/abs/x']).dir).toBe('/abs/x');
  });

  it('refuses bad input with one line each (usage errors: exit status 2)', () => {
    const bad = (argv: string[]) => {
      try {
        parse(argv);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad([])).toMatch(/^expected one image to build \(stacklab-guest-image, /);
    expect(bad(['a', 'b'])).toMatch(/^expected one image to build/);
    expect(bad(['nope'])).toMatch(
      /^unknown image 'nope' \(choose stacklab-guest-image, stacklab-host-image, /,
    );
    expect(bad(['stacklab-host-image', '--machine', 'qemux86-64'])).toBe(
      'stacklab-host-image is not built for qemux86-64 (choose qemuarm64)',
    );
    expect(bad(['stacklab-guest-image', '--release', 'kirkstone'])).toBe(
      "unknown Yocto release 'kirkstone' (choose scarthgap, walnascar, whinlatter)",
    );
    expect(bad(['stacklab-guest-image', '--runner', 'ssh'])).toMatch(/^--runner is host .* or container/);
    expect(bad(['stacklab-guest-image', '--dir', ''])).toBe('--dir needs a folder');
  });
});

describe('what stacklab build prints', () => {
  it('draws one bar line, cut to the terminal width', () => {
    expect(progressBar(info())).toBe('[########............]  42% Parsing recipes');
    const tasks = info({
      progress: {
        phase: 'tasks',
        label: 'Running tasks',
        percent: 3,
        done: 150,
        total: 4537,
        currentTasks: ['quilt-native-0.67-r0 do_fetch'],
      },
    });
    expect(progressBar(tasks, 120)).toBe(
      '[#...................]   3% Running tasks 150/4537 · quilt-native-0.67-r0 do_fetch',
    );
    expect(progressBar(tasks)).toHaveLength(80);
    expect(progressBar(tasks, 40)).toHaveLength(40);
    expect(progressBar(tasks, 40).endsWith('…')).toBe(true);
  });

  it('counts tasks but not bars (whose done is a percentage)', () => {
    const p = info().progress;
    expect(phaseText({ ...p, phase: 'setscene', label: 'Initialising tasks', done: 44, total: 100 })).toBe(
      'Initialising tasks',
    );
    expect(phaseText({ ...p, phase: 'setscene', label: 'Setscene tasks', done: 12, total: 345 })).toBe(
      'Setscene tasks 12/345',
    );
  });

  it('prints plain progress lines only when the phase changes or another 10 % is done', () => {
    const at = (percent: number, label = 'Parsing recipes') =>
      plainProgressKey(info({ progress: { ...info().progress, percent, label } }));
    expect(at(41)).toBe(at(49));
    expect(at(49)).not.toBe(at(50));
    expect(at(50)).not.toBe(at(50, 'Loading cache'));
    const prep = (label: string) =>
      plainProgressKey(
        info({ state: 'preparing', progress: { ...info().progress, phase: 'preparing', label } }),
      );
    expect(prep('poky: Receiving objects 12%')).toBe(prep('poky: Receiving objects 87%'));
    expect(plainProgress(info())).toBe('[build stacklab-guest-image-qemux86-64-a1b2c3] 42% Parsing recipes');
  });

  it("leaves knotty's redrawn footer out of plain logs", () => {
    for (const l of [
      'Setscene tasks: 2000 of 2000',
      'Currently  1 running tasks (20 of 4537)   0% |        |',
      'No currently running tasks (2 of 4537)   0% |         |',
      '0: gnu-config-native-20240101+git-r0 do_recipe_qa - 0s (pid 13320)',
      '1: quilt-native-0.67-r0 do_fetch - 1m3s (pid 13321)',
      'Waiting for 0 running tasks to finish:',
      'Waiting for 1 running task to finish:',
    ]) {
      expect(isFooterLine(l), l).toBe(true);
    }
    for (const l of [
      "NOTE: Tasks Summary: Attempted 22 tasks of which 0 didn't need to be rerun and 1 failed.",
      "ERROR: Task (/w/quilt-native_0.67.bb:do_fetch) failed with exit code '1'",
      'Parsing of 925 .bb files complete (0 cached, 925 parsed). 1883 targets, 50 skipped, 0 masked, 0 errors.',
    ]) {
      expect(isFooterLine(l), l).toBe(false);
    }
  });

  it('sums a failure up: headline, failed task, log, the line that matters, where to retry', () => {
    const failed = info({
      state: 'failed',
      message: 'quilt-native-0.67-r0 do_fetch failed (log: /w/log.do_fetch.13321)',
      failure: {
        task: 'do_fetch',
        recipe: 'quilt-native-0.67-r0',
        logPath: '/w/log.do_fetch.13321',
        line: 'ERROR: …',
      },
      keyLine:
        'network access is off (BB_NO_NETWORK) and https://x/quilt-0.67.tar.gz is not in the download cache',
      exitCode: 1,
      failedTasks: 1,
    });
    expect(summaryLines(failed)).toEqual([
      'build failed: quilt-native-0.67-r0 do_fetch failed',
      '  failed task: quilt-native-0.67-r0 do_fetch',
      '  log:         /w/log.do_fetch.13321',
      '  error:       network access is off (BB_NO_NETWORK) and https://x/quilt-0.67.tar.gz is not in the download cache',
      '  workspace:   /w/guest (run the same command again to retry)',
    ]);
    expect(summaryLines({ ...failed, failedTasks: 2 })[1]).toBe(
      '  failed task: quilt-native-0.67-r0 do_fetch (the first of 2 failed tasks)',
    );
    expect(summaryLines(info({ state: 'cancelled' }))).toEqual([
      'build stacklab-guest-image-qemux86-64-a1b2c3 cancelled; run the same command again to carry on',
    ]);
    expect(summaryLines(info({ state: 'succeeded', message: 'in the library as x' }))[0]).toBe(
      'built stacklab-guest-image for qemux86-64: in the library as x',
    );
  });

  it('lists running builds first, then finished ones with what happened', () => {
    const now = 10_000_000;
    const lines = statusLines(
      [
        info({
          id: 'b-failed',
          state: 'failed',
          endedAt: now - 120_000,
          message: 'x do_fetch failed',
          keyLine: 'no net',
        }),
        info({ id: 'b-running', startedAt: 5 }),
        info({
          id: 'b-lost',
          state: 'lost',
          endedAt: undefined,
          startedAt: now - 3 * 3600_000,
          message: 'its process ended',
        }),
      ],
      now,
    );
    expect(lines[0]).toMatch(
      /^b-running +running +stacklab-guest-image qemux86-64 scarthgap +42% Parsing recipes$/,
    );
    expect(lines[1]).toMatch(/^b-failed +failed .* 2 min ago$/);
    expect(lines[2]).toBe('    x do_fetch failed');
    expect(lines[3]).toBe('    no net');
    expect(lines[4]).toMatch(/^b-lost +lost .* 3 h ago$/);
    expect(statusLines([])).toEqual(['no builds yet: stacklab build <image> starts one']);
    expect(
      statusLines(
        Array.from({ length: 12 }, (_, i) => info({ id: `b${i}`, state: 'failed' })),
        now,
      ).at(-1),
    ).toBe('(2 older builds not shown; --json lists all)');
  });
});
