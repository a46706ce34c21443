// Reads bitbake's knotty console output, as it comes from a pty, into progress events and
// a failure summary. On a terminal knotty redraws: progress bars end in \r and start over,
// and the footer ("Setscene tasks: …", "Currently 2 running tasks (5 of 90)", one line per
// running task) is erased with cursor-up/erase-down escapes and drawn again. So the input
// is cut at every \r or \n, escapes are dropped, and each piece is read as one line.
// Formats: bitbake lib/bb/ui/knotty.py and runqueue.py, sstate.bbclass (field notes §5).
import path from 'node:path';

export type BuildPhase = 'parsing' | 'setscene' | 'tasks' | 'done' | 'failed';

export interface BuildProgress {
  phase: BuildPhase;
  /** 0–100: of the current bar while parsing, of the task (or setscene) queue after. */
  percent: number;
  done: number;
  total: number;
  /** Running tasks as knotty names them, e.g. "quilt-native-0.67-r0 do_fetch". */
  currentTasks: string[];
  /** What bitbake is doing, e.g. "Parsing recipes", "Running tasks". */
  label: string;
}

export interface TaskFailure {
  /** e.g. "do_fetch". */
  task: string;
  /** As bitbake names it in its messages ("quilt-native-0.67-r0"), else from the recipe file. */
  recipe: string;
  /** The task's recipe file (with bitbake's "virtual:native:"/"mc:x86:" prefixes removed). */
  recipeFile?: string;
  /** The task's log: "ERROR: Logfile of failure stored in: …". */
  logPath?: string;
  /** The first error line about this task. */
  line: string;
}

export interface ParseStats {
  files: number;
  cached: number;
  parsed: number;
  targets: number;
  skipped: number;
  masked: number;
  errors: number;
}

export interface BuildSummary {
  failures: TaskFailure[];
  /** Every ERROR line, first line of each message. */
  errors: string[];
  warnings: number;
  parse?: ParseStats;
  tasks?: { attempted: number; notRerun: number; failed: number };
  sstate?: { wanted: number; local: number; mirrors: number; missed: number; current: number };
  interrupted: boolean;
}

// CSI (colours, cursor moves, erase), OSC (titles, knotty's file:// hyperlinks) ending in BEL
// or ST, charset selection, and the remaining two-character escapes.
const ANSI =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()*+][0-9A-Za-z]|\x1b[ -/]*[0-~]|[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

const RE = {
  bar: /^(.+?):\s+(\d{1,3})%\s*\|/,
  // Without a tty: "Parsing recipes...done.", "Initialising tasks...done."
  dots: /^(Loading cache|Parsing recipes|Initialising tasks|Checking sstate mirror object availability)\.\.\./,
  parseDone:
    /Parsing of (\d+) \.bb files complete \((\d+) cached, (\d+) parsed\)\. (\d+) targets, (\d+) skipped, (\d+) masked, (\d+) errors\./,
  runningSetscene: /^NOTE: Running setscene task (\d+) of (\d+) \((.+)\)$/,
  runningTask: /^NOTE: Running (?:noexec )?task (\d+) of (\d+) \((.+)\)$/,
  setsceneFooter: /^Setscene tasks: (\d+) of (\d+)/,
  currently: /^(?:Currently\s+(\d+) running tasks|No currently running tasks) \((\d+) of (\d+)\)/,
  quietFooter: /^Running tasks \((\d+) of (\d+), (\d+) of (\d+)\)/,
  footerTask: /^(\d+): (.+?) - (?:\d+h)?(?:\d+m)?\d+s \(pid \d+\)/,
  taskStarted: /^NOTE: recipe (\S+): task (do_\S+): Started$/,
  taskEnded: /^NOTE: recipe (\S+): task (do_\S+): (?:Succeeded|Failed)$/,
  // Not anchored: without a tty it follows "Initialising tasks..." on the same line.
  sstate: /Sstate summary: Wanted (\d+) Local (\d+) Mirrors (\d+) Missed (\d+) Current (\d+)/,
  tasksSummary:
    /^NOTE: Tasks Summary: Attempted (\d+) tasks of which (\d+) didn't need to be rerun and (?:all succeeded|(\d+) failed)\./,
  logfile: /^ERROR: Logfile of failure stored in: (\S+)/,
  taskFailed: /^ERROR: Task \((.+)\) failed with exit code '(-?\d+)'/,
  recipeError: /^ERROR: (\S+) (do_[A-Za-z0-9_-]+): (.*)$/,
  error: /^ERROR: /,
  warning: /^WARNING: /,
  summaryFailed: /^Summary: \d+ tasks? failed:$/,
  summaryLog: /^\s+log: (\S+)$/,
  interrupted:
    /^(?:Keyboard Interrupt, closing down|Second Keyboard Interrupt, stopping|Execution was interrupted)/,
};

/** "mc:x86:virtual:native:/p/quilt_0.67.bb:do_fetch" → file and task. */
export function splitTaskString(s: string): { recipeFile: string; task: string } | undefined {
  const m = /^(.*):(do_[A-Za-z0-9_-]+)$/.exec(s.trim());
  if (!m) return undefined;
  const file = m[1]!.replace(/^(?:mc:[^:]*:)?(?:(?:virtual|multilib):[^:]*:)*/, '');
  return { recipeFile: path.posix.normalize(file), task: m[2]! };
}

function recipeFromFile(file: string): string {
  const base = file.split('/').at(-1) ?? file;
  return base.replace(/\.bb$/, '').replace(/_[^_]*$/, '');
}

/** The task name a log file is for: ".../temp/log.do_fetch.1234" → "do_fetch". */
function taskFromLog(logPath: string): string | undefined {
  return /\/log\.(do_[A-Za-z0-9_-]+)\.\d+$/.exec(logPath)?.[1];
}

export class KnottyParser {
  private raw = '';
  private progressState: BuildProgress = {
    phase: 'parsing',
    percent: 0,
    done: 0,
    total: 0,
    currentTasks: [],
    label: 'Starting bitbake',
  };
  private lastEmitted = '';
  private running = new Set<string>();
  private footerTasks: string[] | undefined;
  private failures: TaskFailure[] = [];
  private errors: string[] = [];
  private warnings = 0;
  private parse?: ParseStats;
  private tasks?: BuildSummary['tasks'];
  private sstate?: BuildSummary['sstate'];
  private interrupted = false;
  private inSummary = false;
  private summaryTask: TaskFailure | null = null;
  private sawTasks = false;

  constructor(
    private readonly onProgress: (p: BuildProgress) => void = () => {},
    private readonly onLine: (line: string) => void = () => {},
  ) {}

  get progress(): BuildProgress {
    return { ...this.progressState, currentTasks: [...this.progressState.currentTasks] };
  }

  /** Feed output as it arrives; pieces may split lines and escapes anywhere. */
  feed(chunk: string): void {
    this.raw += chunk;
    // Escapes never contain \r or \n, so everything up to the last one is whole.
    let cut = Math.max(this.raw.lastIndexOf('\n'), this.raw.lastIndexOf('\r'));
    // Output that never ends its line (it should not happen) is read once it is this long.
    if (cut < 0 && this.raw.length > 65_536) cut = this.raw.length;
    if (cut < 0) {
      this.peek();
      this.emit();
      return;
    }
    const whole = this.raw.slice(0, cut);
    this.raw = this.raw.slice(cut + 1);
    for (const piece of whole.split(/\r\n|\n|\r/)) this.line(stripAnsi(piece).trimEnd());
    this.peek();
    this.emit();
  }

  /** End of output: read what is left and settle the phase from the exit code. */
  end(exitCode: number | null): BuildSummary {
    if (this.raw) {
      this.line(stripAnsi(this.raw).trimEnd());
      this.raw = '';
    }
    const failed = exitCode !== 0 || this.failures.length > 0 || this.interrupted;
    this.set({
      phase: failed ? 'failed' : 'done',
      percent: failed ? this.progressState.percent : 100,
      currentTasks: [],
      label: failed ? (this.interrupted ? 'Interrupted' : 'Failed') : 'Done',
    });
    this.emit();
    return this.summary();
  }

  summary(): BuildSummary {
    return {
      failures: this.failures.map((f) => ({ ...f })),
      errors: [...this.errors],
      warnings: this.warnings,
      parse: this.parse,
      tasks: this.tasks,
      sstate: this.sstate,
      interrupted: this.interrupted,
    };
  }

  // A progress bar being drawn has no \r after it yet; read its percentage early.
  private peek(): void {
    const tail = stripAnsi(this.raw);
    if (RE.bar.test(tail)) this.bar(tail);
  }

  private set(p: Partial<BuildProgress>): void {
    this.progressState = { ...this.progressState, ...p };
  }

  private emit(): void {
    const key = JSON.stringify(this.progressState);
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.onProgress(this.progress);
  }

  private bar(line: string): boolean {
    const m = RE.bar.exec(line);
    if (!m) return false;
    const label = m[1]!.trim();
    const percent = Math.min(100, Number(m[2]));
    if (/^\d+: /.test(label)) return false; // a running task's own bar, in the footer
    if (/^(Loading cache|Parsing recipes)/.test(label)) {
      this.set({ phase: 'parsing', percent, label, done: percent, total: 100 });
    } else if (
      !this.sawTasks &&
      /^(Initialising tasks|Checking sstate mirror object availability|Computing)/.test(label)
    ) {
      this.set({ phase: 'setscene', percent, label, done: percent, total: 100 });
    }
    return true;
  }

  // Tried in order; the first whose pattern matches handles the line.
  private readonly rules: [RegExp, (m: RegExpExecArray) => void][] = [
    [
      RE.dots,
      (m) => {
        if (/^(Loading cache|Parsing recipes)/.test(m[1]!)) this.set({ phase: 'parsing', label: m[1]! });
        else if (!this.sawTasks) this.set({ phase: 'setscene', label: m[1]! });
      },
    ],
    [
      RE.footerTask,
      (m) => {
        this.footerTasks ??= [];
        this.footerTasks.push(m[2]!);
        this.set({ currentTasks: [...this.footerTasks] });
      },
    ],
    [
      RE.currently,
      (m) => {
        // The running tasks follow this line, one per line; none when it says "No".
        this.footerTasks = m[1] ? [] : undefined;
        if (!m[1]) this.set({ currentTasks: [] });
        this.tasksAt(Number(m[2]), Number(m[3]));
      },
    ],
    [
      RE.setsceneFooter,
      (m) => {
        this.footerTasks = undefined;
        this.setsceneAt(Number(m[1]), Number(m[2]));
      },
    ],
    [
      RE.quietFooter,
      (m) => {
        this.setsceneAt(Number(m[1]), Number(m[2]));
        this.tasksAt(Number(m[3]), Number(m[4]));
      },
    ],
    [
      RE.parseDone,
      (m) => {
        const n = m.slice(1, 8).map(Number);
        this.parse = {
          files: n[0]!,
          cached: n[1]!,
          parsed: n[2]!,
          targets: n[3]!,
          skipped: n[4]!,
          masked: n[5]!,
          errors: n[6]!,
        };
        this.set({ phase: 'parsing', percent: 100, done: 100, total: 100, label: 'Parsing recipes' });
      },
    ],
    [RE.runningSetscene, (m) => this.setsceneAt(Number(m[1]), Number(m[2]))],
    [RE.runningTask, (m) => this.tasksAt(Number(m[1]), Number(m[2]))],
    [
      RE.taskStarted,
      (m) => {
        this.running.add(`${m[1]} ${m[2]}`);
        this.set({ currentTasks: [...this.running] });
      },
    ],
    [
      RE.taskEnded,
      (m) => {
        this.running.delete(`${m[1]} ${m[2]}`);
        this.set({ currentTasks: [...this.running] });
      },
    ],
    [
      RE.sstate,
      (m) => {
        const n = m.slice(1, 6).map(Number);
        this.sstate = { wanted: n[0]!, local: n[1]!, mirrors: n[2]!, missed: n[3]!, current: n[4]! };
      },
    ],
    [
      RE.tasksSummary,
      (m) => {
        this.tasks = { attempted: Number(m[1]), notRerun: Number(m[2]), failed: m[3] ? Number(m[3]) : 0 };
      },
    ],
    [
      RE.interrupted,
      () => {
        this.interrupted = true;
      },
    ],
    [
      RE.summaryFailed,
      () => {
        this.summaryTask = null;
        this.inSummary = true;
      },
    ],
  ];

  private line(line: string): void {
    if (!line.trim()) return;
    const isBar = this.bar(line);
    if (isBar && !RE.currently.test(line)) return; // redraws are not log lines
    this.onLine(line);
    if (this.inSummary && this.summaryLine(line)) return;
    for (const [re, handle] of this.rules) {
      const m = re.exec(line);
      if (!m) continue;
      handle(m);
      // "Initialising tasks...Sstate summary: …" (no tty) holds two facts.
      if (re === RE.dots) continue;
      return;
    }
    if (RE.warning.test(line)) this.warnings++;
    else if (RE.error.test(line)) this.error(line);
  }

  /** knotty's closing "Summary: N task(s) failed:" block: task strings, each with its log. */
  private summaryLine(line: string): boolean {
    const log = RE.summaryLog.exec(line);
    if (log) {
      if (this.summaryTask && !this.summaryTask.logPath) this.summaryTask.logPath = log[1];
      return true;
    }
    const t = /^\s+(\S.*)$/.exec(line);
    const split = t ? splitTaskString(t[1]!) : undefined;
    if (split) {
      this.summaryTask = this.failureFor(split.task, { recipeFile: split.recipeFile });
      return true;
    }
    this.inSummary = false;
    return false;
  }

  private error(line: string): void {
    this.errors.push(line);
    const log = RE.logfile.exec(line);
    if (log) {
      const logPath = log[1]!;
      const task = taskFromLog(logPath);
      // The log names the task; it belongs to the latest failure of that task without one.
      const f = [...this.failures].reverse().find((x) => x.task === task && !x.logPath);
      if (f) f.logPath = logPath;
      else if (task) this.failures.push({ task, recipe: '', logPath, line });
      return;
    }
    const failed = RE.taskFailed.exec(line);
    if (failed) {
      const split = splitTaskString(failed[1]!);
      if (split) this.failureFor(split.task, { recipeFile: split.recipeFile }, line);
      return;
    }
    const recipe = RE.recipeError.exec(line);
    if (recipe) this.failureFor(recipe[2]!, { recipe: recipe[1]! }, line);
  }

  /** The failure record for a task, matched by recipe name or file, created if new. */
  private failureFor(
    task: string,
    who: { recipe?: string; recipeFile?: string },
    line?: string,
  ): TaskFailure {
    const fileRecipe = who.recipeFile ? recipeFromFile(who.recipeFile) : undefined;
    let f = this.failures.find(
      (x) =>
        x.task === task &&
        ((who.recipe && x.recipe === who.recipe) ||
          (who.recipeFile && x.recipeFile === who.recipeFile) ||
          (!x.recipeFile &&
            who.recipeFile &&
            fileRecipe &&
            (x.recipe === '' || x.recipe.startsWith(fileRecipe))) ||
          (!x.recipe && who.recipe)),
    );
    if (!f) {
      f = { task, recipe: who.recipe ?? fileRecipe ?? '', line: line ?? `${who.recipeFile}:${task}` };
      this.failures.push(f);
    }
    if (who.recipe && !f.recipe) f.recipe = who.recipe;
    if (who.recipeFile && !f.recipeFile) f.recipeFile = who.recipeFile;
    return f;
  }

  private setsceneAt(done: number, total: number): void {
    if (this.sawTasks) return;
    this.set({
      phase: 'setscene',
      label: 'Setscene tasks',
      done,
      total,
      percent: total ? Math.min(100, Math.floor((100 * done) / total)) : 100,
    });
  }

  private tasksAt(done: number, total: number): void {
    if (total === 0) return;
    this.sawTasks = true;
    this.set({
      phase: 'tasks',
      label: 'Running tasks',
      done,
      total,
      percent: Math.min(100, Math.floor((100 * done) / total)),
    });
  }
}
