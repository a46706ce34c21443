// Whether real bitbake can run here, for the tests that drive it (integration and e2e):
// a poky checkout in POKY_DIR, Linux, an unprivileged build user when the tests run as
// root, the en_US.UTF-8 locale and the host tools poky's bitbake.conf lists.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const isRoot = process.getuid?.() === 0;
export const buildUser = process.env.STACKLAB_BUILD_USER ?? 'stacklab-build';
/** Who bitbake runs as in tests: the build user when root, else ourselves. */
export const runAs = isRoot ? buildUser : undefined;

export function userExists(name: string): boolean {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasLocale(): boolean {
  try {
    return /^en_US\.utf-?8$/im.test(execFileSync('locale', ['-a'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

/** HOSTTOOLS from the checkout's own bitbake.conf, less the ones not on this system's PATH. */
function missingHostTools(poky: string): string[] {
  const conf = readFileSync(path.join(poky, 'meta/conf/bitbake.conf'), 'utf8');
  const tools = new Set<string>();
  for (const m of conf.matchAll(/^HOSTTOOLS \+= " \\\n([\s\S]*?)^"/gm)) {
    for (const t of m[1]!.split(/[\s\\]+/)) if (t) tools.add(t);
  }
  const dirs = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  return [...tools].filter((t) => !dirs.some((d) => existsSync(path.join(d, t))));
}

/** Why bitbake cannot run here, or undefined when it can. */
export function bitbakeSkipReason(poky = process.env.POKY_DIR): string | undefined {
  if (!poky) return 'POKY_DIR is not set (a poky checkout with the scarthgap branch)';
  if (process.platform !== 'linux') return 'bitbake runs on Linux only';
  if (isRoot && !userExists(buildUser)) {
    return `running as root and there is no user '${buildUser}' to run bitbake as (useradd --create-home ${buildUser})`;
  }
  if (!hasLocale()) return 'the en_US.UTF-8 locale is not installed (bitbake exits without it)';
  const missing = missingHostTools(poky);
  if (missing.length) return `host tools bitbake needs are missing: ${missing.join(' ')}`;
  return undefined;
}
