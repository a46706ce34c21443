// The environment `. oe-init-build-env <builddir>` would leave behind, computed instead of
// sourced: no shell runs, and the runner hands this straight to bitbake.
//
// What the script does (oe-init-build-env + scripts/oe-buildenv-internal, identical in
// scarthgap, walnascar and whinlatter's openembedded-core):
//   OEROOT      the directory holding oe-init-build-env (poky, or openembedded-core)
//   BITBAKEDIR  $OEROOT/bitbake, else $OEROOT/../bitbake (the split layout)
//   BUILDDIR    the build directory, exported (runqemu and devtool read it)
//   BBPATH      = BUILDDIR, exported: bitbake finds conf/bblayers.conf through it
//   PYTHONPATH  = $BITBAKEDIR/lib:$PYTHONPATH
//   PATH        = $OEROOT/scripts:$BITBAKEDIR/bin:$PATH, recorded in OE_ADDED_PATHS
//   BB_ENV_PASSTHROUGH_ADDITIONS  the caller's list plus MACHINE DISTRO ... BB_LOGCONFIG,
//               sorted and de-duplicated: which variables bitbake lets through from the
//               environment into the build
//   BBSERVER    unset (it would point bitbake at some other running server)
//   then oe-setup-builddir copies template conf files when conf/ lacks them (Stacklab
//   writes its own) and the shell cd's into BUILDDIR (the runner's cwd).
// bitbake itself also insists on a UTF-8 locale and on en_US.UTF-8 being installed
// (bb.utils.check_system_locale), so LANG is set to it when the caller has no UTF-8 locale.
import path from 'node:path';

export const PASSTHROUGH_OE = [
  'MACHINE',
  'DISTRO',
  'TCMODE',
  'TCLIBC',
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'FTPS_PROXY',
  'ftps_proxy',
  'ALL_PROXY',
  'all_proxy',
  'NO_PROXY',
  'no_proxy',
  'SSH_AGENT_PID',
  'SSH_AUTH_SOCK',
  'BB_SRCREV_POLICY',
  'SDKMACHINE',
  'BB_NUMBER_THREADS',
  'BB_NO_NETWORK',
  'PARALLEL_MAKE',
  'GIT_PROXY_COMMAND',
  'SOCKS5_PASSWD',
  'SOCKS5_USER',
  'SCREENDIR',
  'STAMPS_DIR',
  'BBPATH_EXTRA',
  'BB_SETSCENE_ENFORCE',
  'BB_LOGCONFIG',
] as const;

export interface BuildEnvInput {
  oeRoot: string;
  bitbakeDir: string;
  buildDir: string;
  /** The environment to start from (process.env, or a clean one for another user). */
  base: NodeJS.ProcessEnv;
}

function isUtf8Locale(v: string | undefined): boolean {
  return !!v && /utf-?8/i.test(v);
}

export function bitbakeEnv({ oeRoot, bitbakeDir, buildDir, base }: BuildEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  delete env.BBSERVER;

  const added = `${path.join(oeRoot, 'scripts')}:${path.join(bitbakeDir, 'bin')}:`;
  // Like the script: drop an earlier run's additions before prepending ours.
  let basePath = env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  if (env.OE_ADDED_PATHS) basePath = basePath.split(env.OE_ADDED_PATHS).join('');
  env.PATH = `${added}${basePath}`;
  env.OE_ADDED_PATHS = added;

  env.BUILDDIR = buildDir;
  env.BBPATH = buildDir;
  env.PYTHONPATH = env.PYTHONPATH
    ? `${path.join(bitbakeDir, 'lib')}:${env.PYTHONPATH}`
    : path.join(bitbakeDir, 'lib');

  const passthrough = new Set([
    ...(env.BB_ENV_PASSTHROUGH_ADDITIONS ?? '').split(/\s+/).filter(Boolean),
    ...PASSTHROUGH_OE,
  ]);
  env.BB_ENV_PASSTHROUGH_ADDITIONS = [...passthrough].sort().join(' ');

  if (!isUtf8Locale(env.LC_ALL) && !isUtf8Locale(env.LANG)) {
    delete env.LC_ALL;
    env.LANG = 'en_US.UTF-8';
  }
  return env;
}
