// `stacklab customise`, `stacklab drives` and `stacklab flash`: try an image customised in
// a VM, then write exactly those bytes to an SD card. Writing never happens without --yes,
// and asking for administrator rights is never silent.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { customiseVm, flashSourceFor, resetCustomisation } from '../engine/customise/vm.ts';
import { chooseTarget, type Drive, formatBytes, listDrives } from '../engine/flash/drives.ts';
import { elevationPlan, needsElevation, runElevated } from '../engine/flash/elevate.ts';
import { type FlashProgress, flash, imageSize } from '../engine/flash/flash.ts';
import type { Command } from './commands.ts';
import { UsageError } from './usage-error.ts';
import { withEngine } from './with-engine.ts';

/** Everything goes through process.stdout so progress and results interleave in order. */
const out = (line: string) => process.stdout.write(`${line}\n`);

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A secret from a file: its first line (a trailing newline is not part of a password). */
function secretFile(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (!line) throw new UsageError(`the ${what} file ${file} is empty`);
  return line;
}

/** The customisation spec from the command line, before the engine validates it. */
export function specFromOptions(v: Record<string, unknown>): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  if (v.hostname !== undefined) spec.hostname = str(v.hostname);
  if (v.user !== undefined || v['password-file'] !== undefined) {
    if (v.user === undefined) throw new UsageError('--password-file needs --user NAME');
    if (v['password-file'] === undefined)
      throw new UsageError('--user needs --password-file F (a file holding the password)');
    spec.user = { name: str(v.user), password: secretFile(str(v['password-file'])!, 'password') };
  }
  if (v['ssh-key'] !== undefined) {
    const f = str(v['ssh-key'])!;
    try {
      spec.sshAuthorizedKey = readFileSync(f, 'utf8');
    } catch (e) {
      throw new UsageError(
        `cannot read the SSH key file ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }
  if (v.ssh !== undefined) spec.ssh = Boolean(v.ssh);
  const wifi = ['wifi-ssid', 'wifi-passphrase-file', 'wifi-country'].filter((k) => v[k] !== undefined);
  if (wifi.length > 0) {
    if (wifi.length < 3)
      throw new UsageError('Wi-Fi needs all of --wifi-ssid S --wifi-passphrase-file F --wifi-country CC');
    spec.wifi = {
      ssid: str(v['wifi-ssid']),
      passphrase: secretFile(str(v['wifi-passphrase-file'])!, 'Wi-Fi passphrase'),
      country: str(v['wifi-country']),
    };
  }
  if (v.timezone !== undefined) spec.timezone = str(v.timezone);
  if (v.keyboard !== undefined) spec.keyboard = str(v.keyboard);
  return spec;
}

function humanProgress(p: FlashProgress): string {
  const pct = p.percentage === undefined ? '' : `${p.percentage.toFixed(0).padStart(3)}% `;
  const speed = p.speed > 0 ? `${formatBytes(p.speed)}/s` : '';
  const eta =
    p.eta !== undefined && Number.isFinite(p.eta) && p.phase !== 'finished'
      ? `, ${Math.ceil(p.eta)} s left`
      : '';
  return `${p.phase.padEnd(9)} ${pct}${formatBytes(p.position)}${p.total ? ` of ${formatBytes(p.total)}` : ''} ${speed}${eta}`;
}

/** Progress on stdout: JSON lines for scripts, one rewritten line on a terminal, else a line every few seconds. */
function progressPrinter(json: boolean): { onProgress: (p: FlashProgress) => void; done: () => void } {
  let lastAt = 0;
  let lastPhase = '';
  const tty = process.stdout.isTTY;
  return {
    onProgress(p) {
      const now = Date.now();
      const changed = p.phase !== lastPhase;
      if (!changed && p.phase !== 'finished' && now - lastAt < (json ? 500 : tty ? 200 : 5000)) return;
      lastAt = now;
      lastPhase = p.phase;
      if (json) process.stdout.write(`${JSON.stringify({ event: 'progress', ...p })}\n`);
      else if (tty) process.stdout.write(`\r\x1b[K${humanProgress(p)}`);
      else process.stdout.write(`${humanProgress(p)}\n`);
    },
    done() {
      if (!json && tty) process.stdout.write('\n');
    },
  };
}

/** An image file, or a library image: its customised working base if it has one, else its own disk. */
async function resolveSource(
  target: string,
): Promise<{ path: string; customised: boolean; imageId?: string }> {
  if (existsSync(target) && statSync(target).isFile())
    return { path: path.resolve(target), customised: false };
  return withEngine(async (e) => {
    const src = await flashSourceFor(e, target);
    return { path: src.path, customised: src.customised, imageId: target };
  });
}

function describeDrive(d: Drive): string {
  const flags = [
    d.system ? 'system' : '',
    d.removable ? 'removable' : 'fixed',
    d.readOnly ? 'read-only' : '',
    d.virtual ? 'virtual' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const size = d.size ? formatBytes(d.size) : 'no size';
  return `${d.device.padEnd(14)} ${size.padStart(9)}  ${(d.description || '-').slice(0, 32).padEnd(32)} ${flags}${
    d.mountpoints.length ? `  mounted at ${d.mountpoints.join(', ')}` : ''
  }`;
}

export const flashCommands: Record<string, Command> = {
  customise: {
    summary: 'customise an image before its first boot (hostname, user, SSH key, Wi-Fi, …)',
    usage: `usage: stacklab customise <image> [--hostname H] [--user NAME --password-file F] [--ssh-key FILE] [--ssh]
       [--wifi-ssid S --wifi-passphrase-file F --wifi-country CC] [--timezone TZ] [--keyboard LAYOUT]
       [--reset-disk] [--json]
       stacklab customise <image> --reset
  The image's VM boots the customised copy from then on ("stacklab boot <image>");
  "stacklab flash <image> <drive>" writes exactly that copy. Secrets are read from files.
  --reset-disk  the VM has a disk from earlier runs: start it afresh with the customisation
  --reset       drop the customisation and the VM's disk (back to the pristine image)`,
    options: {
      hostname: { type: 'string' },
      user: { type: 'string' },
      'password-file': { type: 'string' },
      'ssh-key': { type: 'string' },
      ssh: { type: 'boolean' },
      'wifi-ssid': { type: 'string' },
      'wifi-passphrase-file': { type: 'string' },
      'wifi-country': { type: 'string' },
      timezone: { type: 'string' },
      keyboard: { type: 'string' },
      'reset-disk': { type: 'boolean' },
      reset: { type: 'boolean' },
    },
    async run(values, positionals) {
      if (positionals.length !== 1) throw new UsageError('expected exactly one image');
      const image = positionals[0]!;
      if (values.reset) {
        const r = await withEngine((e) => resetCustomisation(e, image));
        if (values.json) out(JSON.stringify(r));
        else out(r.dropped ? `${r.vmId}: customisation and disk dropped` : `${r.vmId} had no customisation`);
        return 0;
      }
      const spec = specFromOptions(values);
      if (Object.keys(spec).length === 0)
        throw new UsageError('nothing to customise: give at least one option (see --help)');
      const r = await withEngine((e) =>
        customiseVm(e, image, spec, { resetDisk: Boolean(values['reset-disk']) }),
      );
      if (values.json) out(JSON.stringify(r, null, 2));
      else {
        out(`${r.vmId} customised${r.cached ? ' (made before, reused)' : ''}: ${r.why}`);
        for (const c of r.changes) out(`  ${c}`);
        for (const n of r.notes) out(`  note: ${n}`);
        out(
          `Boot it with "stacklab boot ${r.imageId}"; "stacklab flash ${r.imageId} <drive> --yes" writes this copy.`,
        );
      }
      return 0;
    },
  },

  drives: {
    summary: 'list drives an image could be written to',
    usage: 'usage: stacklab drives [--json]',
    options: {},
    async run(values) {
      const drives = await listDrives();
      if (values.json) out(JSON.stringify(drives, null, 2));
      else if (drives.length === 0) out('no drives found');
      else for (const d of drives) out(describeDrive(d));
      return 0;
    },
  },

  flash: {
    summary: 'write an image (or a customised VM disk) to an SD card, verified',
    usage: `usage: stacklab flash <image|file> <drive> --yes [--no-verify] [--json]
       stacklab flash <image|file> --to-file OUT [--json]
  <image> is a library image (its customised copy when it has one) or an image file,
  compressed or not (.img .wic .xz .gz .bz2 .zst .zip). <drive> is a device from
  "stacklab drives". Everything on the drive is replaced: nothing is written without --yes.
  Writing a drive needs administrator rights; Stacklab asks the system for them (pkexec)
  and says why first. --json prints one JSON object per line.`,
    options: {
      yes: { type: 'boolean' },
      'no-verify': { type: 'boolean' },
      'to-file': { type: 'string' },
      elevated: { type: 'boolean' },
    },
    async run(values, positionals) {
      const toFile = str(values['to-file']);
      if (positionals.length !== (toFile ? 1 : 2))
        throw new UsageError(
          toFile
            ? 'expected one image with --to-file'
            : 'expected an image and a drive (see "stacklab drives")',
        );
      const json = Boolean(values.json);
      const verify = !values['no-verify'];
      const src = await resolveSource(positionals[0]!);
      const printer = progressPrinter(json);
      const say = (line: string) => process.stderr.write(`[stacklab] ${line}\n`);
      if (src.customised) say(`writing the customised copy of ${src.imageId} (the bytes its VM booted)`);

      if (toFile) {
        const r = await flash({
          source: src.path,
          target: { file: toFile },
          verify,
          onProgress: printer.onProgress,
        });
        printer.done();
        if (json) out(JSON.stringify({ event: 'done', source: src.path, ...r }));
        else
          out(
            `wrote ${formatBytes(r.imageBytes)} to ${toFile}${r.verified ? ', verified' : ''} in ${(r.durationMs / 1000).toFixed(1)} s`,
          );
        return 0;
      }

      const device = positionals[1]!;
      // Refuse an unsuitable drive before asking anything else; never write without --yes.
      const size = await imageSize(src.path);
      let drive: Drive;
      try {
        drive = chooseTarget(
          await listDrives(),
          device,
          { path: src.path, bytes: size },
          Boolean(values.yes),
        );
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOTCONFIRMED')
          throw new UsageError((e as Error).message.replace(/confirm to write it$/, 'add --yes to write it'));
        throw e;
      }

      if (needsElevation(drive.raw)) {
        if (values.elevated)
          throw new Error(`still not allowed to write ${drive.device} with administrator rights`);
        const reason = `writing ${drive.device} replaces the whole card, which only an administrator may do`;
        say(`${reason}; the system will ask for your password to run only this flash command`);
        const argv = [
          'flash',
          src.path,
          drive.device,
          '--yes',
          '--json',
          '--elevated',
          ...(verify ? [] : ['--no-verify']),
        ];
        const plan = elevationPlan(argv, reason);
        let failure: string | undefined;
        const code = await runElevated(plan, (line) => {
          let msg: { event?: string } & Record<string, unknown>;
          try {
            msg = JSON.parse(line);
          } catch {
            return; // not ours (the elevated process's stderr goes straight through)
          }
          if (msg.event === 'progress') printer.onProgress(msg as unknown as FlashProgress);
          else if (msg.event === 'done') {
            printer.done();
            if (json) out(line);
            else out(`wrote ${drive.device}; it is unmounted and can be removed`);
          } else if (msg.event === 'error') failure = String(msg.message);
        });
        if (failure) throw new Error(failure);
        return code;
      }

      try {
        const r = await flash({
          source: src.path,
          target: { device: drive.device },
          verify,
          onProgress: printer.onProgress,
        });
        printer.done();
        if (json) out(JSON.stringify({ event: 'done', source: src.path, ...r }));
        else
          out(
            `wrote ${formatBytes(r.imageBytes)} to ${drive.device}${r.verified ? ', verified' : ''} in ${(r.durationMs / 1000).toFixed(1)} s; it is unmounted and can be removed`,
          );
        return 0;
      } catch (e) {
        // The elevated child reports its failure as a line the parent relays.
        if (values.elevated)
          out(JSON.stringify({ event: 'error', message: (e as Error).message.split('\n')[0] }));
        throw e;
      }
    },
  },
};
