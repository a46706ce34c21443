// bitbake on another Linux machine over ssh (a build server, or a big desktop next to the
// laptop running Stacklab): same workspace layout, same events as runBitbake.
//
// ssh runs locally with an argument array, but the remote end always hands its command to
// the remote user's shell as one string: every word is single-quoted for that shell, so no
// path or argument is ever interpreted there. `-tt` gives the remote bitbake a tty (knotty's
// live footer, and the Ctrl-C the runner types to cancel arrives as SIGINT). BatchMode:
// no password prompt nobody could answer; use keys or an agent.
//
// The workspace must already exist on the remote host at `remoteDir` (created there with
// the same createWorkspace/cloneLayers, e.g. by the stacklab CLI).
// Not exercised by the tests: there is no ssh server to reach from this machine.
import path from 'node:path';
import { bitbakeEnv } from './buildenv.ts';
import type { LaunchSpec, SessionOptions } from './runner.ts';
import { BitbakeRun } from './runner.ts';
import type { WorkspaceRecord } from './workspace.ts';

export interface RemoteTarget {
  host: string;
  user?: string;
  port?: number;
  /** The workspace directory on the remote host (absolute). */
  remoteDir: string;
  /** The remote workspace's record (read back over ssh, or the one that created it). */
  record: WorkspaceRecord;
}

/** A word for a POSIX shell, single-quoted. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function checkTarget(t: RemoteTarget): void {
  if (!/^[A-Za-z0-9.-]+$/.test(t.host) || t.host.startsWith('-'))
    throw new Error(`'${t.host}' is not a host name`);
  if (t.user !== undefined && !/^[a-z_][a-z0-9_-]*$/i.test(t.user))
    throw new Error(`'${t.user}' is not a user name`);
  if (!path.posix.isAbsolute(t.remoteDir))
    throw new Error(`remote workspace '${t.remoteDir}' must be an absolute path`);
}

/** ssh's argv for one remote bitbake run. Pure. */
export function sshArgv(target: RemoteTarget, args: readonly string[]): string[] {
  checkTarget(target);
  const dir = (rel: string) => path.posix.join(target.remoteDir, rel);
  const env = bitbakeEnv({
    oeRoot: dir(target.record.oeRoot),
    bitbakeDir: dir(target.record.bitbakeDir),
    buildDir: dir(target.record.buildDir),
    base: { PATH: '/usr/local/bin:/usr/bin:/bin' },
  });
  const keep = [
    'PATH',
    'BUILDDIR',
    'BBPATH',
    'PYTHONPATH',
    'BB_ENV_PASSTHROUGH_ADDITIONS',
    'OE_ADDED_PATHS',
    'LANG',
  ];
  const words = [
    'cd',
    dir(target.record.buildDir),
    '&&',
    'exec',
    'env',
    ...keep.filter((k) => env[k] !== undefined).map((k) => `${k}=${env[k]}`),
    'bitbake',
    ...args,
  ];
  // '&&' must stay an operator for the remote shell; everything else is quoted.
  const command = words.map((w) => (w === '&&' ? w : shellQuote(w))).join(' ');
  return [
    '-tt',
    '-o',
    'BatchMode=yes',
    ...(target.port ? ['-p', String(target.port)] : []),
    '--',
    target.user ? `${target.user}@${target.host}` : target.host,
    command,
  ];
}

/** Run bitbake in a workspace on a remote Linux host. */
export function runBitbakeRemote(target: RemoteTarget, options: SessionOptions): BitbakeRun {
  const spec: LaunchSpec = {
    file: 'ssh',
    args: sshArgv(target, options.args),
    env: Object.fromEntries(
      Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
    ),
    cwd: process.cwd(),
    lockKey: `${target.host}:${target.remoteDir}`,
  };
  return new BitbakeRun(spec, options);
}
