// KnottyParser against bitbake's own output: the lines field notes §5 lists, and real runs
// captured from bitbake 2.8 (scarthgap) under a pty and through a pipe
// (test/fixtures/bitbake/, see the README there for how they were made).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type BuildProgress,
  KnottyParser,
  splitTaskString,
  stripAnsi,
} from '../../electron/engine/build/progress.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'bitbake');
const fixture = (name: string) => readFileSync(path.join(fixtures, name), 'utf8');

/** Feed text in pieces of varying size (a pty delivers whatever it has), deterministically. */
function feedInPieces(parser: KnottyParser, text: string, seed = 7): void {
  let x = seed;
  for (let i = 0; i < text.length; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (x % 97);
    parser.feed(text.slice(i, i + n));
    i += n;
  }
}

function run(text: string, exitCode: number, pieces = true) {
  const events: BuildProgress[] = [];
  const lines: string[] = [];
  const parser = new KnottyParser(
    (p) => events.push(p),
    (l) => lines.push(l),
  );
  if (pieces) feedInPieces(parser, text);
  else parser.feed(text);
  const summary = parser.end(exitCode);
  return { events, lines, summary, parser };
}

/** knotty's own closing count, "Summary: There were N WARNING messages.", from the text. */
function knottyCount(text: string, what: 'WARNING' | 'ERROR'): number {
  const m = new RegExp(`Summary: There (?:was|were) (\\d+) ${what} messages?`).exec(stripAnsi(text));
  return m ? Number(m[1]) : 0;
}

describe('field notes §5 lines', () => {
  it('follows a whole build from parsing to success', () => {
    const parser = new KnottyParser();
    const seen: BuildProgress[] = [];
    const p = new KnottyParser((e) => seen.push(e));
    const text = [
      'Parsing recipes: 42% |####    | ETA: 0:00:12\r',
      'Parsing recipes: 100% |########| Time: 0:00:45\r\r\n',
      'Parsing of 920 .bb files complete (0 cached, 920 parsed). 1878 targets, 58 skipped, 0 masked, 0 errors.\r\n',
      'NOTE: Running setscene task 12 of 345 (/p/meta/recipes-core/zlib/zlib_1.3.1.bb:do_populate_sysroot_setscene)\r\n',
      'Sstate summary: Wanted 345 Local 12 Mirrors 0 Missed 333 Current 0 (3% match, 3% complete)\r\n',
      'Setscene tasks: 12 of 345\r\n',
      'NOTE: Running task 123 of 4567 (/path/recipe.bb:do_compile)\r\n',
      'Currently 4 running tasks (123 of 4567)\r\n',
      "NOTE: Tasks Summary: Attempted 4567 tasks of which 12 didn't need to be rerun and all succeeded.\r\n",
    ];
    // A bar still being drawn (no \r yet) already counts.
    p.feed('Parsing recipes:  7% |#   | ETA:');
    expect(seen.at(-1)).toMatchObject({ phase: 'parsing', percent: 7 });
    p.feed(' 0:00:30\r');
    p.feed(text[0]!);
    expect(seen.at(-1)).toMatchObject({ phase: 'parsing', percent: 42, label: 'Parsing recipes' });
    p.feed(text[1]! + text[2]!);
    expect(seen.at(-1)).toMatchObject({ phase: 'parsing', percent: 100 });
    p.feed(text[3]!);
    expect(seen.at(-1)).toMatchObject({ phase: 'setscene', done: 12, total: 345, percent: 3 });
    p.feed(text[4]! + text[5]!);
    p.feed(text[6]!);
    expect(seen.at(-1)).toMatchObject({ phase: 'tasks', done: 123, total: 4567, percent: 2 });
    p.feed(text[7]! + text[8]!);
    const summary = p.end(0);
    expect(seen.at(-1)).toMatchObject({ phase: 'done', percent: 100, currentTasks: [] });
    expect(summary.parse).toEqual({
      files: 920,
      cached: 0,
      parsed: 920,
      targets: 1878,
      skipped: 58,
      masked: 0,
      errors: 0,
    });
    expect(summary.sstate).toEqual({ wanted: 345, local: 12, mirrors: 0, missed: 333, current: 0 });
    expect(summary.tasks).toEqual({ attempted: 4567, notRerun: 12, failed: 0 });
    expect(summary.failures).toEqual([]);
    expect(parser.progress.phase).toBe('parsing'); // an untouched parser has not started
  });

  it('turns a failed task into one failure with task, recipe, log and the first error', () => {
    const p = new KnottyParser();
    p.feed(
      [
        'ERROR: busybox-1.36.1-r0 do_fetch: Fetcher failure: Unable to resolve host',
        'ERROR: busybox-1.36.1-r0 do_fetch: Bitbake Fetcher Error: FetchError(...)',
        'ERROR: Logfile of failure stored in: /b/tmp/work/core2-64-poky-linux/busybox/1.36.1/temp/log.do_fetch.1234',
        "ERROR: Task (/p/meta/recipes-core/busybox/busybox_1.36.1.bb:do_fetch) failed with exit code '1'",
        "NOTE: Tasks Summary: Attempted 10 tasks of which 9 didn't need to be rerun and 1 failed.",
        '',
        'Summary: 1 task failed:',
        '  /p/meta/recipes-core/busybox/busybox_1.36.1.bb:do_fetch',
        '    log: /b/tmp/work/core2-64-poky-linux/busybox/1.36.1/temp/log.do_fetch.1234',
        'Summary: There were 3 ERROR messages, returning a non-zero exit code.',
        '',
      ].join('\n'),
    );
    const s = p.end(1);
    expect(s.failures).toEqual([
      {
        task: 'do_fetch',
        recipe: 'busybox-1.36.1-r0',
        recipeFile: '/p/meta/recipes-core/busybox/busybox_1.36.1.bb',
        logPath: '/b/tmp/work/core2-64-poky-linux/busybox/1.36.1/temp/log.do_fetch.1234',
        line: 'ERROR: busybox-1.36.1-r0 do_fetch: Fetcher failure: Unable to resolve host',
      },
    ]);
    expect(s.tasks).toEqual({ attempted: 10, notRerun: 9, failed: 1 });
    expect(p.progress.phase).toBe('failed');
  });

  it('names tasks of virtual and multiconfig recipes by their file', () => {
    expect(splitTaskString('mc:x86:virtual:native:/p/quilt_0.67.bb:do_fetch')).toEqual({
      recipeFile: '/p/quilt_0.67.bb',
      task: 'do_fetch',
    });
    expect(splitTaskString('/b/build/../layers/poky/meta/x_1.0.bb:do_install')).toEqual({
      recipeFile: '/b/layers/poky/meta/x_1.0.bb',
      task: 'do_install',
    });
    expect(splitTaskString('not a task')).toBeUndefined();
  });

  it('strips colours, cursor moves and file:// hyperlinks', () => {
    expect(stripAnsi('\x1b[1;31mERROR\x1b[0m: \x1b[31mboom\x1b[0m')).toBe('ERROR: boom');
    expect(stripAnsi('\x1b[3A\x1b[JSetscene tasks: 1 of 1')).toBe('Setscene tasks: 1 of 1');
    expect(stripAnsi('    log: \x1b]8;;file:///l/log.do_fetch.1\x1b\\/l/log.do_fetch.1\x1b]8;;\x1b\\')).toBe(
      '    log: /l/log.do_fetch.1',
    );
  });
});

describe('real bitbake output (scarthgap, multiconfig workspace, no network)', () => {
  it('parse: percentages climb to 100 and the parse statistics come out', () => {
    const text = fixture('parse-multiconfig.pty.txt');
    const { events, summary, lines } = run(text, 0);
    const parsing = events.filter((e) => e.phase === 'parsing' && e.label === 'Parsing recipes');
    expect(parsing.length).toBeGreaterThan(20);
    for (let i = 1; i < parsing.length; i++)
      expect(parsing[i]!.percent).toBeGreaterThanOrEqual(parsing[i - 1]!.percent);
    expect(parsing.at(-1)!.percent).toBe(100);
    expect(summary.parse).toEqual({
      files: 1850,
      cached: 0,
      parsed: 1850,
      targets: 3766,
      skipped: 109,
      masked: 0,
      errors: 0,
    });
    expect(summary.errors).toEqual([]);
    expect(events.at(-1)!.phase).toBe('done');
    // Bar redraws are not log lines; the result line is.
    expect(lines.some((l) => l.startsWith('Parsing recipes:'))).toBe(false);
    expect(lines).toContain('Loaded 0 entries from dependency cache.');
  });

  it('task graph: loads the cache and finishes clean', () => {
    const { summary, events, lines } = run(fixture('graph-host-image.pty.txt'), 0);
    expect(summary.failures).toEqual([]);
    expect(summary.errors).toEqual([]);
    expect(lines).toContain("NOTE: Task dependencies saved to 'task-depends.dot'");
    expect(events.some((e) => e.label === 'Loading cache' && e.percent === 100)).toBe(true);
    expect(events.at(-1)!.phase).toBe('done');
  });

  it('fetch failure through a pty: the footer redraws give running tasks, the end gives the failure', () => {
    const text = fixture('fetch-failure.pty.txt');
    const whole = run(text, 1, false);
    const pieces = run(text, 1, true);
    // However the pty cut the stream, the result is the same.
    expect(pieces.summary).toEqual(whole.summary);
    expect(pieces.lines).toEqual(whole.lines);

    const { summary, events } = pieces;
    expect(summary.failures).toHaveLength(1);
    const f = summary.failures[0]!;
    expect(f.task).toBe('do_fetch');
    expect(f.recipe).toBe('quilt-native-0.67-r0');
    expect(f.recipeFile).toMatch(
      /^\/\S+\/layers\/poky\/meta\/recipes-devtools\/quilt\/quilt-native_0\.67\.bb$/,
    );
    expect(f.recipeFile).not.toContain('/../');
    expect(f.logPath).toMatch(/\/tmp\/work\/x86_64-linux\/quilt-native\/0\.67\/temp\/log\.do_fetch\.\d+$/);
    expect(f.line).toMatch(/^ERROR: quilt-native-0.67-r0 do_fetch: Fetcher failure: /);
    expect(summary.tasks).toEqual({ attempted: 2, notRerun: 0, failed: 1 });
    expect(summary.warnings).toBe(knottyCount(text, 'WARNING'));
    // knotty counts the build's error messages, not the two lines it adds itself per failed task.
    const own = /^ERROR: (Logfile of failure stored in|Task \(.*\) failed with exit code)/;
    expect(summary.errors.filter((e) => !own.test(e))).toHaveLength(knottyCount(text, 'ERROR'));
    expect(summary.errors.filter((e) => own.test(e))).toHaveLength(2);
    // The uninative loader's failed download is an error without a task.
    expect(summary.errors[0]).toMatch(/^ERROR: Fetcher failure: Fetch command /);

    expect(events.some((e) => e.phase === 'setscene' && e.label === 'Initialising tasks')).toBe(true);
    expect(events.some((e) => e.currentTasks.includes('quilt-native-0.67-r0 do_fetch'))).toBe(true);
    expect(events.some((e) => e.phase === 'tasks' && e.total === 2)).toBe(true);
    expect(events.at(-1)).toMatchObject({ phase: 'failed', currentTasks: [] });
  });

  it('fetch failure through a pipe (no tty): same failure, from "Running task" and task start/end lines', () => {
    const text = fixture('fetch-failure.pipe.txt');
    const { summary, events } = run(text, 1);
    expect(summary.failures).toHaveLength(1);
    expect(summary.failures[0]).toMatchObject({ task: 'do_fetch', recipe: 'quilt-native-0.67-r0' });
    expect(summary.failures[0]!.logPath).toMatch(/log\.do_fetch\.\d+$/);
    expect(summary.sstate).toEqual({ wanted: 0, local: 0, mirrors: 0, missed: 0, current: 1 });
    expect(events.some((e) => e.phase === 'tasks' && e.done === 2 && e.total === 2)).toBe(true);
    expect(events.some((e) => e.currentTasks.includes('quilt-native-0.67-r0 do_fetch'))).toBe(true);
    expect(summary.warnings).toBe(knottyCount(text, 'WARNING'));
  });

  it('a task that succeeds while bitbake still exits 1 (an error outside any task)', () => {
    const text = fixture('listtasks.pty.txt');
    const { summary, events, lines } = run(text, 1);
    expect(summary.failures).toEqual([]);
    expect(summary.tasks).toEqual({ attempted: 1, notRerun: 0, failed: 0 });
    expect(summary.errors).toHaveLength(knottyCount(text, 'ERROR'));
    expect(events.some((e) => e.currentTasks.includes('quilt-native-0.67-r0 do_listtasks'))).toBe(true);
    expect(events.at(-1)!.phase).toBe('failed');
    expect(lines.some((l) => l.startsWith('do_fetch '))).toBe(true); // the task's own output
  });
});
