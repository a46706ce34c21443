// Bundles the Node side with esbuild: the Electron main process and the CLI as ES modules,
// the preload as CommonJS (sandboxed preloads cannot be ESM). npm packages stay external
// in main and CLI (resolved from node_modules at run time, where electron-builder packs
// them and node-pty's native addon lives); the preload gets everything bundled except
// `electron`, because a sandboxed preload can require nothing else.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const at = (p: string) => path.join(root, p);

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
};

/** Exported so the shell test can build the real preload into a temporary directory. */
export function preloadOptions(outfile: string): BuildOptions {
  return {
    ...common,
    entryPoints: [at('electron/preload/preload.ts')],
    outfile,
    format: 'cjs',
    target: 'chrome130',
    minify: true, // zod comes along with the contract's method list; the preload runs on every load
    external: ['electron'],
  };
}

export async function buildNode(): Promise<void> {
  // Settle all three so one broken bundle does not hide whether the others build.
  const results = await Promise.allSettled([
    build({
      ...common,
      entryPoints: [at('electron/main/main.ts')],
      outfile: at('out/main/main.mjs'),
      format: 'esm',
      target: 'node22', // Electron 41's Node
      packages: 'external',
    }),
    build(preloadOptions(at('out/preload/preload.cjs'))),
    build({
      ...common,
      entryPoints: [at('electron/cli/main.ts')],
      outfile: at('out/cli/main.mjs'),
      format: 'esm',
      target: 'node20',
      packages: 'external',
    }),
  ]);
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [['main', 'preload', 'cli'][i]] : []));
  if (failed.length) throw new Error(`esbuild failed for ${failed.join(', ')} (errors above)`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  buildNode().then(
    () =>
      console.log(
        `built out/main/main.mjs, out/preload/preload.cjs, out/cli/main.mjs in ${Date.now() - t0} ms`,
      ),
    (e: unknown) => {
      console.error(`build-node: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      process.exit(1);
    },
  );
}
