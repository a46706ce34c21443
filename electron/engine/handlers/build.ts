// The contract's build.* requests, on the Builds service. The live bitbake output is a
// terminal (term.open with target kind 'build'), wired in index.ts with the other terminals.

import type { Builds } from '../build/builds.ts';
import type { Handlers } from '../engine.ts';

type BuildHandlers = Pick<
  Handlers,
  'build.targets' | 'build.start' | 'build.status' | 'build.list' | 'build.cancel'
>;

export function buildHandlers(builds: Builds): BuildHandlers {
  return {
    'build.targets': async () => builds.targets(),
    'build.start': async (p) => builds.start(p),
    'build.status': async (p) => builds.get(p.buildId),
    'build.list': async () => builds.list(),
    'build.cancel': async (p) => {
      builds.cancel(p.buildId);
      return { ok: true as const };
    },
  };
}
