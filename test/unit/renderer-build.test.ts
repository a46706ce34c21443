// The Build panel's logic: a form choice that always fits the targets, the folder check,
// what the progress bar and its caption say in each phase, and the summary card.
import { describe, expect, it } from 'vitest';
import type { BuildInfo, BuildTargets } from '../../electron/common/contract.ts';
import {
  choiceOf,
  dirProblem,
  fixChoice,
  isLiveBuild,
  machinesFor,
  progressView,
  stateLabel,
  summaryCard,
  summaryFor,
} from '../../renderer/src/lib/build.ts';

const targets: BuildTargets = {
  releases: [
    { name: 'scarthgap', version: '5.0' },
    { name: 'walnascar', version: '5.2' },
  ],
  images: [
    { image: 'stacklab-guest-image', summary: 'Small guest', machines: ['qemux86-64', 'qemuarm64'] },
    { image: 'stacklab-host-image', summary: 'The seed stack', machines: ['qemuarm64'] },
  ],
  defaults: { release: 'scarthgap', runner: 'host' },
};

function build(over: Partial<BuildInfo> = {}): BuildInfo {
  return {
    id: 'b1',
    image: 'stacklab-guest-image',
    machine: 'qemux86-64',
    release: 'scarthgap',
    dir: '/w/guest',
    runner: 'host',
    offline: false,
    state: 'running',
    progress: {
      phase: 'parsing',
      label: 'Parsing recipes',
      percent: 42.7,
      done: 42,
      total: 100,
      currentTasks: [],
    },
    warnings: [],
    startedAt: 1,
    imported: [],
    ...over,
  };
}

describe('the choice', () => {
  it('starts at the first image, its first machine and the default release', () => {
    expect(fixChoice(targets)).toEqual({
      image: 'stacklab-guest-image',
      machine: 'qemux86-64',
      release: 'scarthgap',
      dir: '',
      offline: false,
    });
  });

  it('keeps what still fits when the image changes, and fixes what does not', () => {
    expect(
      fixChoice(targets, { image: 'stacklab-guest-image', machine: 'qemuarm64', release: 'walnascar' }),
    ).toMatchObject({
      machine: 'qemuarm64',
      release: 'walnascar',
    });
    expect(fixChoice(targets, { image: 'stacklab-host-image', machine: 'qemux86-64' }).machine).toBe(
      'qemuarm64',
    );
    expect(fixChoice(targets, { image: 'gone', release: 'kirkstone' })).toMatchObject({
      image: 'stacklab-guest-image',
      release: 'scarthgap',
    });
    expect(fixChoice(targets, { dir: '/w', offline: true })).toMatchObject({ dir: '/w', offline: true });
    expect(machinesFor(targets, 'stacklab-host-image')).toEqual(['qemuarm64']);
    expect(summaryFor(targets, 'stacklab-host-image')).toBe('The seed stack');
    expect(machinesFor(targets, 'gone')).toEqual([]);
  });

  it('wants a full path for the workspace folder, or nothing (the default)', () => {
    expect(dirProblem('')).toBeUndefined();
    expect(dirProblem('  ')).toBeUndefined();
    expect(dirProblem('/home/me/yocto')).toBeUndefined();
    expect(dirProblem('C:\\yocto')).toBeUndefined();
    expect(dirProblem('yocto/ws')).toBe(
      'The workspace folder must be a full path (starting with /), not "yocto/ws".',
    );
  });

  it('builds again exactly what was built', () => {
    expect(choiceOf(build({ offline: true }))).toEqual({
      image: 'stacklab-guest-image',
      machine: 'qemux86-64',
      release: 'scarthgap',
      dir: '/w/guest',
      offline: true,
    });
  });
});

describe('the progress bar', () => {
  it('shows the parse percentage while bitbake parses', () => {
    expect(progressView(build())).toEqual({ percent: 42, text: 'Parsing: Parsing recipes', detail: '' });
  });

  it('counts tasks (N of M) and names what runs, but not bars whose done is a percentage', () => {
    const v = progressView(
      build({
        progress: {
          phase: 'tasks',
          label: 'Running tasks',
          percent: 3,
          done: 150,
          total: 4537,
          currentTasks: ['quilt-native-0.67-r0 do_fetch', 'gnu-config-native do_recipe_qa'],
        },
      }),
    );
    expect(v).toEqual({
      percent: 3,
      text: 'Tasks: Running tasks 150 of 4537',
      detail: 'quilt-native-0.67-r0 do_fetch · gnu-config-native do_recipe_qa',
    });
    const init = progressView(
      build({
        progress: {
          phase: 'setscene',
          label: 'Initialising tasks',
          percent: 44,
          done: 44,
          total: 100,
          currentTasks: [],
        },
      }),
    );
    expect(init.text).toBe('Setscene: Initialising tasks');
    expect(progressView(build({ progress: { ...build().progress, percent: 140 } })).percent).toBe(100);
    expect(
      progressView(
        build({
          state: 'preparing',
          progress: { ...build().progress, phase: 'preparing', label: 'poky at 1d54d1c4736a' },
        }),
      ).text,
    ).toBe('Preparing: poky at 1d54d1c4736a');
  });
});

describe('the summary card', () => {
  it('says nothing while the build runs', () => {
    for (const state of ['preparing', 'running', 'importing'] as const) {
      expect(isLiveBuild(state)).toBe(true);
      expect(summaryCard(build({ state }))).toBeUndefined();
    }
  });

  it('names the failed task, its log, the line that matters and the workspace', () => {
    const card = summaryCard(
      build({
        state: 'failed',
        message: 'quilt-native-0.67-r0 do_fetch failed (log: /w/log.do_fetch.1)',
        failure: {
          task: 'do_fetch',
          recipe: 'quilt-native-0.67-r0',
          logPath: '/w/log.do_fetch.1',
          line: 'ERROR: …',
        },
        keyLine: 'network access is off (BB_NO_NETWORK) and https://x/q.tgz is not in the download cache',
      }),
    );
    expect(card).toEqual({
      title: 'Build failed: quilt-native-0.67-r0 do_fetch failed',
      rows: [
        { label: 'Failed task', value: 'quilt-native-0.67-r0 do_fetch' },
        { label: 'Log', value: '/w/log.do_fetch.1' },
        {
          label: 'Error',
          value: 'network access is off (BB_NO_NETWORK) and https://x/q.tgz is not in the download cache',
        },
        { label: 'Workspace', value: '/w/guest' },
      ],
    });
  });

  it('says when more than one task failed', () => {
    const card = summaryCard(
      build({
        state: 'failed',
        failure: { task: 'do_fetch', recipe: 'quilt-native-0.67-r0', line: 'ERROR: …' },
        failedTasks: 2,
      }),
    );
    expect(card?.rows[0]).toEqual({
      label: 'Failed task',
      value: 'quilt-native-0.67-r0 do_fetch (the first of 2 failed tasks)',
    });
  });

  it('covers failures outside a task, cancels, lost builds and successes', () => {
    expect(summaryCard(build({ state: 'failed', message: 'cloning poky failed: x' }))?.rows).toEqual([
      { label: 'Workspace', value: '/w/guest' },
    ]);
    expect(summaryCard(build({ state: 'cancelled' }))?.title).toBe('Build cancelled');
    expect(
      summaryCard(build({ state: 'lost', message: 'the Stacklab process that ran it (pid 9) ended' }))?.title,
    ).toBe('Build lost: the Stacklab process that ran it (pid 9) ended');
    expect(summaryCard(build({ state: 'succeeded', imported: ['stacklab-guest-image-qemux86-64'] }))).toEqual(
      {
        title: 'Built stacklab-guest-image for qemux86-64',
        rows: [{ label: 'In the library', value: 'stacklab-guest-image-qemux86-64' }],
      },
    );
    expect(stateLabel('importing')).toBe('Adding to the library');
    expect(stateLabel('running')).toBe('Building');
  });
});
