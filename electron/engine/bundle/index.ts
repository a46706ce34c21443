// What the engine, discovery and doctor use of the bundled QEMU.
import { existsSync } from 'node:fs';
import { bundleRootFor } from './layout.ts';
import { type BundleCheck, verifyBundle } from './verify.ts';

export {
  bundleBinDir,
  bundleDataDir,
  bundleExecutable,
  bundleQemuArgs,
  bundleRootFor,
  MANIFEST_NAME,
} from './layout.ts';
export { type Manifest, readManifest } from './manifest.ts';
export {
  type BundleCheck,
  bundleProblemSummary,
  clearVerifyCache,
  hostGlibcVersion,
  type VerifyOptions,
  verifyBundle,
} from './verify.ts';

export interface BundleStatus {
  root: string;
  /** false on a development checkout without `npm run bundle:qemu`: not an error, QEMU comes from PATH. */
  present: boolean;
  /** null when not present. */
  check: BundleCheck | null;
}

/** The bundle for this host under `resourcesDir` (paths.ts resourcesDir()), checked if it is there. */
export async function inspectBundle(
  resourcesDir: string,
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): Promise<BundleStatus> {
  const root = bundleRootFor(resourcesDir, platform, arch);
  if (!existsSync(root)) return { root, present: false, check: null };
  return { root, present: true, check: await verifyBundle(root, { platform, arch }) };
}
