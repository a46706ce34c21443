// What `stacklab build` prints: a one-line progress bar on a terminal, plain lines
// otherwise, the failure summary and the `build status` listing. Pure functions of a
// BuildInfo, so the tests check exactly what people read.
import type { BuildInfo } from '../common/contract.ts';

/** "Parsing recipes", "Running tasks 12/1480", "Setscene tasks 3/40" (bars have no count). */
export function phaseText(p: BuildInfo['progress']): string {
  const counted = (p.phase === 'tasks' || p.label === 'Setscene tasks') && p.total > 0;
  return counted ? `${p.label} ${p.done}/${p.total}` : p.label;
}

/** One terminal line: `[#######.............]  35% Parsing recipes`, cut to `width`. */
export function progressBar(info: BuildInfo, width = 80): string {
  const p = info.progress;
  const cells = 20;
  const pct = Math.max(0, Math.min(100, Math.floor(p.percent)));
  const filled = Math.round((pct / 100) * cells);
  let line = `[${'#'.repeat(filled)}${'.'.repeat(cells - filled)}] ${String(pct).padStart(3)}% ${phaseText(p)}`;
  const task = p.currentTasks[0];
  if (p.phase === 'tasks' && task) line += ` · ${task}`;
  return line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line;
}

/**
 * knotty's live footer, which it redraws after every event even on a pty: useful on a
 * screen, noise in a log (the progress lines say the same once).
 */
export function isFooterLine(line: string): boolean {
  return /^(?:Setscene tasks: \d+ of \d+|Currently\s+\d+ running tasks|No currently running tasks|Waiting for \d+ running tasks? to finish:|\d+: .+ - (?:\d+h)?(?:\d+m)?\d+s \(pid \d+\))/.test(
    line,
  );
}

/** A plain line for logs (no terminal): printed when the phase changes or every 10 %. */
export function plainProgress(info: BuildInfo): string {
  return `[build ${info.id}] ${Math.floor(info.progress.percent)}% ${phaseText(info.progress)}`;
}

/** The key for deciding whether a plain progress line is worth printing again. */
export function plainProgressKey(info: BuildInfo): string {
  const p = info.progress;
  if (p.phase === 'preparing') return `${p.phase}:${p.label.replace(/\d+%/, '')}`;
  return `${info.state}:${p.phase}:${p.label}:${Math.floor(p.percent / 10)}`;
}

/** What a finished build says: one headline, then the failed task, its log, the line that matters. */
export function summaryLines(info: BuildInfo): string[] {
  if (info.state === 'succeeded')
    return [`built ${info.image} for ${info.machine}: ${info.message ?? 'done'}`];
  if (info.state === 'cancelled')
    return [`build ${info.id} cancelled; run the same command again to carry on`];
  const f = info.failure;
  // The log has its own line below: the headline need not carry it too.
  const headline = (info.message ?? info.state).replace(f?.logPath ? ` (log: ${f.logPath})` : '', '');
  const lines = [`build failed: ${headline}`];
  const more = (info.failedTasks ?? 0) > 1 ? ` (the first of ${info.failedTasks} failed tasks)` : '';
  if (f) lines.push(`  failed task: ${f.recipe ? `${f.recipe} ` : ''}${f.task}${more}`);
  if (f?.logPath) lines.push(`  log:         ${f.logPath}`);
  if (info.keyLine) lines.push(`  error:       ${info.keyLine}`);
  lines.push(`  workspace:   ${info.dir} (run the same command again to retry)`);
  return lines;
}

function age(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** `stacklab build status`: running builds first, then the latest finished ones. */
export function statusLines(list: BuildInfo[], now = Date.now(), limit = 10): string[] {
  if (list.length === 0) return ['no builds yet: stacklab build <image> starts one'];
  const live = (b: BuildInfo) => b.state === 'preparing' || b.state === 'running' || b.state === 'importing';
  const shown = [...list.filter(live), ...list.filter((b) => !live(b))].slice(0, limit);
  const out: string[] = [];
  for (const b of shown) {
    const what = `${b.image} ${b.machine} ${b.release}`;
    const where = live(b)
      ? `${Math.floor(b.progress.percent)}% ${phaseText(b.progress)}`
      : age(b.endedAt ?? b.startedAt, now);
    out.push(`${b.id.padEnd(44)} ${b.state.padEnd(10)} ${what.padEnd(44)} ${where}`);
    if (!live(b) && b.message) out.push(`    ${b.message}`);
    if (b.state === 'failed' && b.keyLine) out.push(`    ${b.keyLine}`);
  }
  if (list.length > shown.length)
    out.push(`(${list.length - shown.length} older builds not shown; --json lists all)`);
  return out;
}
