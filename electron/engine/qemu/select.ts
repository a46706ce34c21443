// Which QEMU the engine uses: the bundle shipped with the app when it is whole, else the
// configured path, else PATH. A damaged bundle is skipped (never run half-replaced
// binaries) and the reason travels with the choice so doctor and the app can show it.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type BundleStatus, bundleProblemSummary, inspectBundle, verifyBundle } from '../bundle/index.ts';
import { resourcesDir } from '../paths.ts';
import { findQemu, type QemuInstall } from './discovery.ts';

export interface QemuChoice {
  install: QemuInstall;
  bundle: BundleStatus;
  /** One line when the bundle is present but damaged. */
  warning?: string;
}

/** STACKLAB_QEMU_BUNDLE names a bundle root (a relocated bundle, or tests); else the app's own. */
async function bundleStatus(env: NodeJS.ProcessEnv): Promise<BundleStatus> {
  if (!env.STACKLAB_QEMU_BUNDLE) return inspectBundle(resourcesDir());
  const root = path.resolve(env.STACKLAB_QEMU_BUNDLE);
  if (!existsSync(root)) return { root, present: false, check: null };
  return { root, present: true, check: await verifyBundle(root) };
}

export async function selectQemu(
  opts: { env?: NodeJS.ProcessEnv; configuredPath?: string } = {},
): Promise<QemuChoice> {
  const env = opts.env ?? process.env;
  const bundle = await bundleStatus(env);
  const whole = bundle.present && bundle.check?.ok;
  const warning =
    bundle.present && bundle.check && !bundle.check.ok ? bundleProblemSummary(bundle.check) : undefined;
  const install = await findQemu({
    // A damaged bundle is looked for where nothing is, so discovery moves on to the next source.
    bundledDir:
      whole || !bundle.present ? path.join(bundle.root, 'bin') : path.join(bundle.root, 'bin-unusable'),
    configuredPath: opts.configuredPath,
    env,
  });
  if (warning) install.why = `${warning}; ${install.why}`;
  return { install, bundle, warning };
}

export function bundleRootOf(install: QemuInstall): string | undefined {
  return install.source === 'bundled' ? path.dirname(install.dir) : undefined;
}
