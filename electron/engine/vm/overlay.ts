// Every VM writes to a qcow2 overlay whose backing file is the base image, so the base
// is never written and creating one costs the same for a 100 MiB or a 100 GiB image.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface OverlaySpec {
  qemuImg: string;
  base: string;
  baseFormat: 'raw' | 'qcow2';
  path: string;
  /** Virtual size of the overlay; defaults to the base's. Pi SD cards need a power of two. */
  sizeBytes?: number;
}

export async function imageInfo(
  qemuImg: string,
  file: string,
): Promise<{ virtualSize: number; format: string; backing?: string }> {
  const { stdout } = await run(qemuImg, ['info', '--output=json', '-U', file]);
  const j = JSON.parse(stdout) as { 'virtual-size': number; format: string; 'backing-filename'?: string };
  return { virtualSize: j['virtual-size'], format: j.format, backing: j['backing-filename'] };
}

export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Creates the overlay unless it already exists (a VM keeps its disk across boots). */
export async function ensureOverlay(spec: OverlaySpec): Promise<{ created: boolean }> {
  if (existsSync(spec.path)) {
    const info = await imageInfo(spec.qemuImg, spec.path);
    if (spec.sizeBytes && info.virtualSize < spec.sizeBytes)
      await resizeOverlay(spec.qemuImg, spec.path, spec.sizeBytes);
    return { created: false };
  }
  const args = ['create', '-q', '-f', 'qcow2', '-F', spec.baseFormat, '-b', spec.base, spec.path];
  if (spec.sizeBytes) args.push(String(spec.sizeBytes));
  try {
    await run(spec.qemuImg, args);
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? e)
      .trim()
      .split('\n')
      .pop();
    throw new Error(`could not create the VM's disk overlay: ${msg}`);
  }
  return { created: true };
}

export async function resizeOverlay(qemuImg: string, path: string, sizeBytes: number): Promise<void> {
  await run(qemuImg, ['resize', '-q', '-f', 'qcow2', path, String(sizeBytes)]);
}
