// Growing an ext2/3/4 file system offline with e2fsprogs: `e2fsck -f` (resize2fs insists
// on a freshly checked file system, and it replays the journal of a guest that was cut
// off), then `resize2fs`. The file given must hold exactly the file system: resize2fs
// accepts `image?offset=N`, but then truncates the image file to the file system's size
// (measured from 0, not from N), which would cut a partitioned image short. So a partition
// is grown in a file of its own (disks/resize.ts). The WASM libext2fs we use for editing
// files (the ext2fs package) has no resize, which lives in resize2fs itself.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const SBIN = [
  '/usr/sbin',
  '/sbin',
  '/usr/local/sbin',
  '/opt/homebrew/opt/e2fsprogs/sbin',
  '/usr/local/opt/e2fsprogs/sbin',
];

/** A program on PATH or in the sbin directories (e2fsprogs lives there and PATH often lacks them). */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const exe = process.platform === 'win32' ? `${name}.exe` : name;
  for (const dir of [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN]) {
    const p = path.join(dir, exe);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export interface E2fsTools {
  e2fsck: string;
  resize2fs: string;
}

export function e2fsTools(env?: NodeJS.ProcessEnv): E2fsTools {
  const e2fsck = findTool('e2fsck', env);
  const resize2fs = findTool('resize2fs', env);
  if (!e2fsck || !resize2fs)
    throw new Error(
      'e2fsprogs (e2fsck and resize2fs) is not installed; it is needed to grow the guest file system',
    );
  return { e2fsck, resize2fs };
}

function tail(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !/^(e2fsck|resize2fs) \d/.test(l))
      .at(-1) ?? ''
  );
}

/** `e2fsck -f -y`: 0 clean, 1 fixed, 2 fixed (reboot advised: nothing is mounted here); 4 and up failed. */
export async function checkFs(
  tools: E2fsTools,
  file: string,
  opts: { repair: boolean } = { repair: true },
): Promise<void> {
  try {
    await run(tools.e2fsck, ['-f', opts.repair ? '-y' : '-n', file], { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    if (typeof err.code === 'number' && err.code > 0 && err.code < 4 && opts.repair) return;
    throw new Error(
      `the guest file system has errors e2fsck could not fix (status ${err.code}): ${tail(`${err.stdout}\n${err.stderr}`)}`,
    );
  }
}

/** Grows the file system in `file` (which holds just that file system) to `bytes`. */
export async function growFs(tools: E2fsTools, file: string, bytes: number): Promise<void> {
  try {
    await run(tools.resize2fs, [file, `${Math.floor(bytes / 1024)}K`], { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(
      `resize2fs could not grow the guest file system: ${tail(`${err.stdout}\n${err.stderr}`)}`,
    );
  }
}
