// Runs a short-lived QEMU helper command (version, machine list) and collects its output.
// Argument arrays only, never a shell; a timeout so a wedged binary cannot stall discovery.
import { execFile } from 'node:child_process';

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function runCapture(bin: string, args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      {
        timeout: timeoutMs,
        maxBuffer: 8 * 1024 * 1024,
        windowsHide: true,
        env: { ...process.env, LC_ALL: 'C' },
      },
      (err, stdout, stderr) => {
        if (err) {
          const first = firstLine(stderr) || err.message.split('\n')[0];
          reject(new Error(`${bin} ${args.join(' ')} failed: ${first}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

export function firstLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? ''
  );
}
