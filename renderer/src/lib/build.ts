// The Build panel's logic, free of Svelte and the DOM: the choice a form can hold, what
// the progress bar says, and the summary card of a finished build.
import type { BuildInfo, BuildTargets } from '../../../electron/common/contract.ts';

export interface BuildChoice {
  image: string;
  machine: string;
  release: string;
  /** Empty: the engine's default folder for this choice. */
  dir: string;
  offline: boolean;
}

export function isLiveBuild(state: BuildInfo['state']): boolean {
  return state === 'preparing' || state === 'running' || state === 'importing';
}

export function machinesFor(targets: BuildTargets, image: string): string[] {
  return targets.images.find((t) => t.image === image)?.machines ?? [];
}

export function summaryFor(targets: BuildTargets, image: string): string {
  return targets.images.find((t) => t.image === image)?.summary ?? '';
}

/** A valid choice closest to `want`: an image the targets list, a machine it is built for. */
export function fixChoice(targets: BuildTargets, want: Partial<BuildChoice> = {}): BuildChoice {
  const image = targets.images.find((t) => t.image === want.image)?.image ?? targets.images[0]?.image ?? '';
  const machines = machinesFor(targets, image);
  const machine = want.machine && machines.includes(want.machine) ? want.machine : (machines[0] ?? '');
  const release = targets.releases.some((r) => r.name === want.release)
    ? want.release!
    : targets.defaults.release;
  return { image, machine, release, dir: want.dir ?? '', offline: want.offline ?? false };
}

/** One line when the workspace folder cannot be right; the engine checks the rest (a file, other files). */
export function dirProblem(dir: string): string | undefined {
  const d = dir.trim();
  if (d === '') return undefined;
  if (!(d.startsWith('/') || /^[A-Za-z]:[\\/]/.test(d))) {
    return `The workspace folder must be a full path (starting with /), not "${d}".`;
  }
  return undefined;
}

export interface ProgressView {
  /** 0–100, for the bar. */
  percent: number;
  /** "Parsing recipes", "Running tasks 12 of 1480". */
  text: string;
  /** What is running, when bitbake says. */
  detail: string;
}

const PHASE_TITLE: Record<BuildInfo['progress']['phase'], string> = {
  preparing: 'Preparing',
  parsing: 'Parsing',
  setscene: 'Setscene',
  tasks: 'Tasks',
  importing: 'Importing',
  done: 'Done',
  failed: 'Stopped',
};

export function progressView(info: BuildInfo): ProgressView {
  const p = info.progress;
  const percent = Math.max(0, Math.min(100, Math.floor(p.percent)));
  // Parsing and "Initialising tasks" are bars (done = percent): no count to show.
  const counted = (p.phase === 'tasks' || p.label === 'Setscene tasks') && p.total > 0;
  const text = counted ? `${p.label} ${p.done} of ${p.total}` : p.label;
  const detail = p.currentTasks.length ? p.currentTasks.slice(0, 3).join(' · ') : '';
  return { percent, text: `${PHASE_TITLE[p.phase]}: ${text}`, detail };
}

export function stateLabel(state: BuildInfo['state']): string {
  switch (state) {
    case 'preparing':
      return 'Preparing';
    case 'running':
      return 'Building';
    case 'importing':
      return 'Adding to the library';
    case 'succeeded':
      return 'Built';
    case 'failed':
      return 'Failed';
    case 'cancelled':
      return 'Cancelled';
    case 'lost':
      return 'Lost';
  }
}

export interface SummaryCard {
  title: string;
  rows: Array<{ label: string; value: string }>;
}

/** "x do_fetch failed (log: /p)" → "x do_fetch failed" when the log has its own row. */
function withoutLog(message: string, logPath: string | undefined): string {
  return logPath ? message.replace(` (log: ${logPath})`, '') : message;
}

/** The card a finished build shows: what failed, where its log is, the line that matters. */
export function summaryCard(info: BuildInfo): SummaryCard | undefined {
  if (isLiveBuild(info.state)) return undefined;
  if (info.state === 'succeeded') {
    return {
      title: `Built ${info.image} for ${info.machine}`,
      rows: info.imported.map((id) => ({ label: 'In the library', value: id })),
    };
  }
  const rows: SummaryCard['rows'] = [];
  const f = info.failure;
  const more = (info.failedTasks ?? 0) > 1 ? ` (the first of ${info.failedTasks} failed tasks)` : '';
  if (f) rows.push({ label: 'Failed task', value: `${f.recipe ? `${f.recipe} ` : ''}${f.task}${more}` });
  if (f?.logPath) rows.push({ label: 'Log', value: f.logPath });
  if (info.keyLine) rows.push({ label: 'Error', value: info.keyLine });
  rows.push({ label: 'Workspace', value: info.dir });
  const title =
    info.state === 'cancelled'
      ? 'Build cancelled'
      : info.state === 'lost'
        ? `Build lost: ${info.message ?? 'its process ended'}`
        : `Build failed: ${withoutLog(info.message ?? 'bitbake stopped', f?.logPath)}`;
  return { title, rows };
}

/** The choice that built `info`, for "Build again". */
export function choiceOf(info: BuildInfo): BuildChoice {
  return {
    image: info.image,
    machine: info.machine,
    release: info.release,
    dir: info.dir,
    offline: info.offline,
  };
}
