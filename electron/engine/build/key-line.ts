// The one line of a failed build worth showing people. bitbake's own error lines carry the
// whole fetch command (an `export PATH=…` of a dozen directories, then wget's argv), which
// buries the part that matters: which URL failed and why. Pure, so the tests feed it the
// lines real runs printed.
import type { BuildResult } from './runner.ts';

const MAX = 240;

function clip(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > MAX ? `${one.slice(0, MAX - 1)}…` : one;
}

/** "ERROR: quilt-native-0.67-r0 do_fetch: Fetcher failure: …" → the readable core of it. */
export function condenseErrorLine(line: string): string {
  let s = line.replace(/^ERROR:\s*/, '');
  // "<recipe> <do_task>: " — the summary names both already.
  s = s.replace(/^\S+ do_[A-Za-z0-9_-]+: /, '');
  const net = /NetworkAccess\('([^']+)'/.exec(s);
  if (net) return clip(`network access is off (BB_NO_NETWORK) and ${net[1]} is not in the download cache`);
  // Fetcher failure: Fetch command export …; /usr/bin/env wget … 'URL' … failed with exit code N, …
  const cmd = /Fetch command .*?'([a-z][a-z0-9+.-]*:\/\/[^']+)'.*? failed with exit code (\d+)/.exec(s);
  if (cmd) return clip(`fetching ${cmd[1]} failed (exit code ${cmd[2]}: no network, or the file moved)`);
  const url = /Fetcher failure for URL: '([^']+)'\.?\s*(.*)$/.exec(s);
  if (url) return clip(`fetching ${url[1]} failed${url[2] ? `: ${url[2]}` : ''}`);
  return clip(s);
}

const UNINFORMATIVE = /^ERROR: (?:Logfile of failure stored in|Task \(.+\) failed with exit code)/;

/**
 * OE-core's sanity checker prints its finding on the lines after its header, not on the
 * ERROR line: "Following is the list of potential problems / advisories:" then the problem.
 */
function sanityProblem(tail: readonly string[]): string | undefined {
  const i = tail.findIndex((l) => /Following is the list of potential problems/.test(l));
  const problem = i >= 0 ? tail[i + 1]?.trim() : undefined;
  if (!problem) return undefined;
  const text = condenseErrorLine(problem);
  return /connectivity/i.test(problem)
    ? `${text} (no network? an offline build uses the download cache only)`
    : text;
}

/** The line a summary leads with: the failed task's own error, else the first error. */
export function keyLine(result: Pick<BuildResult, 'failure' | 'summary' | 'tail'>): string | undefined {
  const f = result.failure;
  if (!f && /config sanity checker/.test(result.summary.errors[0] ?? '')) {
    const sanity = sanityProblem(result.tail);
    if (sanity) return sanity;
  }
  const errors = result.summary.errors.filter((e) => !UNINFORMATIVE.test(e));
  let line = f && !UNINFORMATIVE.test(f.line) && /^ERROR:/.test(f.line) ? f.line : undefined;
  if (f && !line)
    line = errors.find((e) => e.includes(` ${f.task}: `) && (!f.recipe || e.includes(f.recipe)));
  line ??= errors[0];
  return line ? condenseErrorLine(line) : undefined;
}
