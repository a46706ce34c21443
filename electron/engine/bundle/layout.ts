// Where things live inside a bundled QEMU. One layout for every host OS so discovery,
// the argv builder and doctor agree:
//   <root>/bin/            qemu-system-*, qemu-img, qemu-*-static (Windows: *.exe beside their DLLs)
//   <root>/lib/            shared libraries (Linux .so, macOS .dylib), rpath'd from bin/
//   <root>/share/qemu/     firmware, option ROMs, keymaps: passed to QEMU with -L
//   <root>/manifest.json   what the bundle holds, with a sha256 per file
import path from 'node:path';

export const MANIFEST_NAME = 'manifest.json';

/** The bundle for one host: `<resources>/qemu/<platform>-<arch>`, with Node's names (linux/darwin/win32, x64/arm64). */
export function bundleRootFor(
  resourcesDir: string,
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): string {
  return path.join(resourcesDir, 'qemu', `${platform}-${arch}`);
}

export function bundleBinDir(bundleRoot: string): string {
  return path.join(bundleRoot, 'bin');
}

/** Firmware and ROM directory: QEMU must be started with `-L <this>` when it runs from the bundle. */
export function bundleDataDir(bundleRoot: string): string {
  return path.join(bundleRoot, 'share', 'qemu');
}

/** Absolute path of a bundled program, e.g. bundleExecutable(root, 'qemu-img'). */
export function bundleExecutable(
  bundleRoot: string,
  name: string,
  platform: NodeJS.Platform = process.platform,
): string {
  return path.join(bundleBinDir(bundleRoot), platform === 'win32' ? `${name}.exe` : name);
}

/** The arguments a QEMU from this bundle needs in front of everything else. */
export function bundleQemuArgs(bundleRoot: string): string[] {
  return ['-L', bundleDataDir(bundleRoot)];
}
