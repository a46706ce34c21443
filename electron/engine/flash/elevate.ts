// Writing a block device needs administrator rights. Stacklab never elevates silently: the
// caller shows the reason first, then the OS's own dialog asks — and only the one flash
// command runs elevated (the same CLI, re-run with the resolved image path), never the app.
//
//  - Linux (implemented): pkexec, polkit's front end. The desktop's polkit agent shows its
//    password dialog naming the exact command ("…/stacklab.mjs flash <image> /dev/sdX
//    --yes --json --elevated"); its wording comes from polkit's generic exec action, so
//    the reason is printed by the caller just before. pkexec gives the child a clean
//    environment and root's HOME, which the flash command does not need.
//  - macOS (not implemented): osascript -e 'do shell script "<quoted argv>" with prompt
//    "<reason>" with administrator privileges' — the prompt text can carry the reason.
//    Raw devices are /dev/rdiskN; the disk must be unmounted with diskutil first (etcher-sdk
//    does that through mountutils).
//  - Windows (not implemented): UAC, by starting the helper with the "runas" verb
//    (ShellExecuteEx, or PowerShell Start-Process -Verb RunAs); the consent dialog names the
//    program, so the reason is shown in Stacklab's window first. Writes go to
//    \\.\PhysicalDriveN after diskpart clean (etcher-sdk does that too).
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface ElevationPlan {
  command: string;
  args: string[];
  /** Said to the user before the OS asks for a password. */
  reason: string;
}

/** True when this process may not write `device` (and is not already root). */
export function needsElevation(device: string): boolean {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return false;
  try {
    accessSync(device, constants.W_OK);
    return false;
  } catch {
    return true;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  for (const p of [`/usr/bin/${name}`, `/bin/${name}`]) if (existsSync(p)) return p;
  return undefined;
}

/**
 * How to run `argv` (arguments to the stacklab CLI) elevated. `cli` is the program that
 * runs the CLI: [node, bin/stacklab.mjs] by default, which is how this process was started.
 */
export function elevationPlan(
  argv: string[],
  reason: string,
  opts: { cli?: string[]; platform?: NodeJS.Platform; env?: NodeJS.ProcessEnv } = {},
): ElevationPlan {
  const platform = opts.platform ?? process.platform;
  const cli = opts.cli ?? [process.execPath, process.argv[1] ?? ''];
  if (platform !== 'linux')
    throw new Error(
      `${reason}; asking for administrator rights is only built for Linux so far: run Stacklab as an administrator`,
    );
  const pkexec = onPath('pkexec', opts.env);
  if (!pkexec)
    throw new Error(
      `${reason}, and pkexec (polkit) is not installed: install polkit, or run this command with sudo`,
    );
  return { command: pkexec, args: [...cli, ...argv], reason };
}

/** Runs the plan; each stdout line goes to `onLine`, stderr passes through. Resolves with the exit status. */
export function runElevated(plan: ElevationPlan, onLine: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(plan.command, plan.args, { stdio: ['inherit', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout }).on('line', onLine);
    child.on('error', reject);
    child.on('close', (code) => {
      // pkexec: 126 = the user dismissed the dialog, 127 = not authorised.
      if (code === 126 || code === 127)
        reject(new Error('administrator rights were not granted; nothing was written'));
      else resolve(code ?? 1);
    });
  });
}
