// Who runs bitbake. bitbake refuses root, so an engine running as root (CI, a container)
// needs an unprivileged account named in STACKLAB_BUILD_USER; the workspace and the shared
// caches are then handed to that account (chown), and we check it can really reach them:
// a workspace under root's 0700 home would otherwise fail deep inside bitbake.
import { execFile, execFileSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Workspace } from './workspace.ts';

const run = promisify(execFile);

export interface BuildAccount {
  name: string;
  uid: number;
  gid: number;
}

export const ROOT_REFUSAL =
  'bitbake refuses to run as root (OE-core sanity check "Do not use Bitbake as root"): run Stacklab as a normal user, or name an unprivileged account to build as in STACKLAB_BUILD_USER';

/** The account bitbake runs as when the engine is root; undefined when it runs as ourselves. Throws one line. */
export function buildAccount(env: NodeJS.ProcessEnv = process.env): BuildAccount | undefined {
  const root = process.getuid?.() === 0;
  if (!root) return undefined;
  const name = env.STACKLAB_BUILD_USER;
  if (!name) throw new Error(ROOT_REFUSAL);
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name))
    throw new Error(`STACKLAB_BUILD_USER '${name}' is not a user name`);
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      `STACKLAB_BUILD_USER names '${name}', but there is no such user (useradd --create-home ${name})`,
    );
  }
  const f = line.split(':');
  const account = { name, uid: Number(f[2]), gid: Number(f[3]) };
  if (account.uid === 0)
    throw new Error(`STACKLAB_BUILD_USER '${name}' is root: bitbake refuses to run as root`);
  return account;
}

function ownedBy(p: string, a: BuildAccount): boolean {
  try {
    return lstatSync(p).uid === a.uid;
  } catch {
    return true; // nothing there to hand over
  }
}

/**
 * Give the build account what bitbake writes: the workspace (layers cloned and conf written
 * by us, as root) and the shared caches. Trees already owned by it are skipped, so a big
 * build/tmp is not walked on every build.
 */
export async function handOver(ws: Workspace, a: BuildAccount): Promise<void> {
  const owner = `${a.uid}:${a.gid}`;
  const top = [
    ws.dir,
    path.join(ws.dir, 'layers'),
    ws.buildDir,
    path.join(ws.dir, 'stacklab-workspace.json'),
  ];
  await run('chown', [owner, ...top.filter((p) => !ownedBy(p, a))]).catch(() => undefined);
  // Rewritten on every build (and new files are ours): always handed over.
  const always = [path.join(ws.buildDir, 'conf'), path.join(ws.dir, 'layers', 'meta-stacklab')];
  const trees = [
    ...always,
    ...ws.record.repos.map((r) => path.join(ws.dir, r.dir)).filter((p) => !ownedBy(p, a)),
    ...[ws.record.downloadsDir, ws.record.sstateDir].filter((p) => !ownedBy(p, a)),
  ];
  try {
    await run('chown', ['-R', owner, ...trees]);
  } catch (e) {
    throw new Error(
      `cannot hand the workspace to ${a.name}: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`,
    );
  }
}

/** Throws one line naming the first directory the build account cannot enter or write. */
export async function checkReachable(dirs: string[], a: BuildAccount): Promise<void> {
  const as = (args: string[]) =>
    run('setpriv', [`--reuid=${a.uid}`, `--regid=${a.gid}`, '--init-groups', '--', ...args]);
  for (const dir of dirs) {
    try {
      await as(['test', '-w', dir, '-a', '-x', dir]);
      continue;
    } catch {
      // find the culprit below
    }
    let blocked = dir;
    for (let p = path.resolve(dir); ; p = path.dirname(p)) {
      try {
        await as(['test', '-x', p]);
        break;
      } catch {
        blocked = p;
      }
      if (path.dirname(p) === p) break;
    }
    throw new Error(
      blocked === dir
        ? `the build user ${a.name} cannot write to ${dir}`
        : `the build user ${a.name} cannot enter ${blocked}, so it cannot reach ${dir}: choose a workspace folder it can reach`,
    );
  }
}
