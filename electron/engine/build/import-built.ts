// A finished build's image into the library, through the same import path as a user's own
// files: qemu machines by their qemuboot.conf (kernel, rootfs and boot settings together),
// Raspberry Pi ones by their .wic (boot partition, kernel and device tree read from it).
// Only the image asked for is imported; a multiconfig's guest image stays in the workspace.

import { importImage } from '../images/import.ts';
import type { ImageRecord } from '../images/record.ts';
import type { Store } from '../images/store.ts';
import { type BuiltImage, findBuiltImages } from './built-images.ts';
import type { Workspace } from './workspace.ts';

export interface ImportBuiltOptions {
  store: Store;
  /** Only files written at or after this time (ms): what this build produced. */
  since?: number;
  description?: string;
}

/** The workspace's own image (its image and machine, default configuration), if deployed. */
export function ownBuiltImage(ws: Workspace, since = 0): BuiltImage | undefined {
  return findBuiltImages(ws).find(
    (b) => b.image === ws.image && b.machine === ws.machine && !b.multiconfig && b.builtAt >= since,
  );
}

export async function importBuiltImage(ws: Workspace, opts: ImportBuiltOptions): Promise<ImageRecord> {
  const built = ownBuiltImage(ws, opts.since);
  if (!built) {
    throw new Error(
      `bitbake finished but ${ws.image} for ${ws.machine} is not in ${ws.buildDir}/tmp/deploy/images/${ws.machine}`,
    );
  }
  const file = built.kind === 'qemu' ? built.files.qemuboot : built.files.wic;
  if (!file) throw new Error(`${ws.image}: the deploy directory has no qemuboot.conf or .wic to import`);
  return importImage(file, {
    store: opts.store,
    id: `${ws.image}-${ws.machine}`,
    name: `${ws.image} (${ws.machine})`,
    description: opts.description,
    source: 'build',
  });
}
