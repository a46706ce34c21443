// qemu-img, run with argument arrays, its failures turned into one line a person can act
// on. qemu-img takes the image's lock unless told -U, so a disk in use by a running QEMU
// (this engine's or another process's) is refused here rather than corrupted.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The last meaningful line of qemu-img's complaint, without its program-name prefix. */
function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines.at(-1) ?? '').replace(/^qemu-img: /, '');
}

export async function qemuImg(qemuImgPath: string, args: string[], what: string): Promise<string> {
  try {
    const { stdout } = await run(qemuImgPath, args, { maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error(`qemu-img is not installed (looked for ${qemuImgPath}); it is needed to ${what}`);
    const line = lastLine(String(err.stderr ?? err.message));
    if (/lock/i.test(line) && /Failed to get|another process/i.test(line))
      throw new Error(`could not ${what}: the disk is in use by a running QEMU; stop that VM first`);
    throw new Error(`could not ${what}: ${line}`);
  }
}

export interface QcowSnapshotJson {
  id: string;
  name: string;
  'vm-state-size': number;
  'date-sec': number;
  'date-nsec': number;
  'vm-clock-sec': number;
  'vm-clock-nsec': number;
}

export interface ImageInfo {
  virtualSize: number;
  format: string;
  backing?: string;
  backingFormat?: string;
  snapshots: QcowSnapshotJson[];
}

/** `qemu-img info`; `shared` (-U) reads an image a running QEMU holds, for read-only looks. */
export async function imageInfo(
  qemuImgPath: string,
  file: string,
  opts: { shared?: boolean } = {},
): Promise<ImageInfo> {
  const args = ['info', '--output=json', ...(opts.shared ? ['-U'] : []), file];
  const out = await qemuImg(qemuImgPath, args, `read ${path.basename(file)}`);
  const j = JSON.parse(out) as {
    'virtual-size': number;
    format: string;
    'full-backing-filename'?: string;
    'backing-filename'?: string;
    'backing-filename-format'?: string;
    snapshots?: QcowSnapshotJson[];
  };
  return {
    virtualSize: j['virtual-size'],
    format: j.format,
    backing: j['full-backing-filename'] ?? j['backing-filename'],
    backingFormat: j['backing-filename-format'],
    snapshots: j.snapshots ?? [],
  };
}
