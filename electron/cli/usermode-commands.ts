// `stacklab run` (a command or shell in an image's root filesystem under QEMU user-mode
// emulation, no root, no guest kernel) and `stacklab binfmt status|register|unregister`.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { archNames } from '../common/arch.ts';
import {
  type BinfmtStatus,
  binfmtStatus,
  registerInterpreter,
  unregisterInterpreter,
} from '../engine/usermode/binfmt.ts';
import { prepareRootfs, rootfsForImage } from '../engine/usermode/rootfs.ts';
import { runSpawn, usermodeCommand } from '../engine/usermode/run.ts';
import type { Command } from './commands.ts';
import { UsageError } from './usage-error.ts';

const note = (line: string) => process.stderr.write(`[stacklab] ${line}\n`);

function linuxOnly(): void {
  if (process.platform !== 'linux')
    throw new Error('user-mode emulation needs a Linux host (it borrows the host kernel)');
}

function engineOption(v: unknown): 'auto' | 'proot' | 'qemu' {
  if (v === undefined) return 'auto';
  if (v === 'proot' || v === 'qemu' || v === 'auto') return v;
  throw new UsageError('--engine must be proot, qemu or auto');
}

function printStatus(s: BinfmtStatus): void {
  if (!s.mounted) {
    console.log(s.message);
    return;
  }
  console.log(`binfmt_misc at ${s.dir}: ${s.enabled ? 'enabled' : 'disabled'}`);
  if (s.message) console.log(s.message);
  if (s.entries.length === 0) console.log('no entries registered');
  for (const e of s.entries) {
    const flags = Object.entries(e.flags)
      .filter(([, on]) => on)
      .map(([f]) => f)
      .join('');
    const what = e.arch
      ? `${e.arch} (${archNames(e.arch).label})`
      : e.extension
        ? `.${e.extension} files`
        : 'other';
    console.log(
      `  ${e.name.padEnd(20)} ${(e.enabled ? 'enabled' : 'disabled').padEnd(9)} ${what.padEnd(38)} flags ${(flags || '-').padEnd(5)} ${e.interpreter}`,
    );
  }
}

export const usermodeCommands: Record<string, Command> = {
  run: {
    summary: "run a command (or a shell) in an image's root filesystem under QEMU user mode, no root",
    usage: `usage: stacklab run [--arch ARCH] [--engine proot|qemu] <image|rootfs-dir|rootfs.tar.*|rootfs.ext4> [-- CMD ARGS…]
  Runs CMD (default: an interactive shell) on this Linux host's kernel with QEMU translating
  the foreign instructions. Tarballs and ext4 images are unpacked once into the cache.
  --arch ARCH     what the rootfs must be (aarch64, arm64, armhf, amd64, …); default: detected
  --engine E      proot (chroot-like, the default when installed) or qemu (qemu-user -L only)
  --json          print {arch, engine, status, stdout, stderr} instead of passing output through`,
    options: { arch: { type: 'string' }, engine: { type: 'string' } },
    async run(values, positionals) {
      linuxOnly();
      const [target, ...argv] = positionals;
      if (!target) throw new UsageError('expected a root filesystem or image; see "stacklab run --help"');
      const arch = values.arch as string | undefined;
      const engine = engineOption(values.engine);
      const rootfs = await rootfsForImage(target);
      if (values.json) {
        if (argv.length === 0) throw new UsageError('--json needs a command after --');
        const prepared = await prepareRootfs(rootfs, { onNote: note });
        const spec = await usermodeCommand(prepared.dir, argv, { arch, engine });
        const r = await runSpawn(spec);
        console.log(JSON.stringify({ arch: spec.arch, engine: spec.engine, rootfs: prepared.dir, ...r }));
        return r.status ?? 1;
      }
      const prepared = await prepareRootfs(rootfs, { onNote: note });
      const spec = await usermodeCommand(prepared.dir, argv, { arch, engine });
      // The terminal is handed over as is: the guest program sees our tty, signals and size.
      const child = spawn(spec.file, spec.args, { env: spec.env, cwd: spec.cwd, stdio: 'inherit' });
      const forward = (sig: NodeJS.Signals) => child.kill(sig);
      process.on('SIGTERM', forward);
      process.on('SIGHUP', forward);
      // Ctrl-C reaches the child through the terminal; we only must not die first.
      const ignoreInt = () => {};
      process.on('SIGINT', ignoreInt);
      try {
        return await new Promise<number>((resolve, reject) => {
          child.on('error', (e) => reject(new Error(`could not start ${spec.file}: ${e.message}`)));
          child.on('close', (code, signal) =>
            resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)),
          );
        });
      } finally {
        process.off('SIGTERM', forward);
        process.off('SIGHUP', forward);
        process.off('SIGINT', ignoreInt);
      }
    },
  },

  'binfmt status': {
    summary: 'show binfmt_misc: which foreign programs the kernel hands to which emulator',
    usage: `usage: stacklab binfmt status [--json] [--dir DIR]
  --dir DIR   read another binfmt_misc mount (default /proc/sys/fs/binfmt_misc)`,
    options: { dir: { type: 'string' } },
    async run(values) {
      linuxOnly();
      const s = binfmtStatus(values.dir as string | undefined);
      if (values.json) console.log(JSON.stringify(s, null, 2));
      else printStatus(s);
      return 0;
    },
  },

  'binfmt register': {
    summary: "register QEMU user mode for an architecture's programs (F flag; needs root)",
    usage: `usage: stacklab binfmt register <arch> [--interpreter PATH] [--dir DIR]
  Without root, asks through pkexec (desktop session) or sudo -n, and says so first.
  --interpreter PATH   a static qemu-<arch>-static (default: the bundled one, else PATH)`,
    options: { dir: { type: 'string' }, interpreter: { type: 'string' } },
    async run(values, positionals) {
      linuxOnly();
      if (positionals.length !== 1) throw new UsageError('expected exactly one architecture');
      const e = await registerInterpreter(positionals[0]!, {
        dir: values.dir as string | undefined,
        interpreter: values.interpreter as string | undefined,
        onNote: note,
      });
      if (values.json) console.log(JSON.stringify(e, null, 2));
      else console.log(`registered ${e.name}: ${e.arch} programs now run through ${e.interpreter}`);
      return 0;
    },
  },

  'binfmt unregister': {
    summary: "remove the binfmt_misc entry for an architecture's programs (needs root)",
    usage: 'usage: stacklab binfmt unregister <arch> [--dir DIR]',
    options: { dir: { type: 'string' } },
    async run(values, positionals) {
      linuxOnly();
      if (positionals.length !== 1) throw new UsageError('expected exactly one architecture');
      const e = await unregisterInterpreter(positionals[0]!, {
        dir: values.dir as string | undefined,
        onNote: note,
      });
      if (values.json) console.log(JSON.stringify(e, null, 2));
      else console.log(`removed ${e.name} (${e.interpreter})`);
      return 0;
    },
  },
};
