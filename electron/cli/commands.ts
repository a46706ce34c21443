// The CLI's commands. Each one drives the engine exactly as the app does.
import type { ParseArgsConfig } from 'node:util';
import { runInGuest } from '../engine/vm/guest-shell.ts';
import { liveEntries } from '../engine/vm/process.ts';
import type { Vm } from '../engine/vm/vm.ts';
import { buildCommands } from './build-commands.ts';
import { diskCommands } from './disk-commands.ts';
import { doctor, printDoctor } from './doctor.ts';
import { flashCommands } from './flash-commands.ts';
import { stopByRegistry } from './remote-stop.ts';
import { stackCommands } from './stack-commands.ts';
import { UsageError } from './usage-error.ts';
import { usermodeCommands } from './usermode-commands.ts';
import { withEngine } from './with-engine.ts';

type Values = Record<string, unknown>;

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number>;
}

const print = (json: unknown, human: string, asJson: unknown) =>
  console.log(asJson ? JSON.stringify(json, null, 2) : human);

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`);
  return positionals[0]!;
}

function intOption(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive whole number`);
  return n;
}

function onSignals(handler: () => void): () => void {
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Attaches this terminal to the VM's first console until the VM ends. Ctrl-] stops the VM. */
async function attachConsole(vm: Vm): Promise<void> {
  const ch = vm.consoles[0];
  if (!ch) return vm.waitExit();
  process.stderr.write(`[stacklab] console of ${vm.id} — press Ctrl-] to stop the VM\n`);
  process.stdout.write(ch.history());
  const onData = (b: Buffer) => process.stdout.write(b);
  ch.on('data', onData);
  const stdin = process.stdin;
  if (stdin.isTTY) stdin.setRawMode(true);
  const onInput = (b: Buffer) => {
    if (b.includes(0x1d)) void vm.stop({ timeoutMs: 10_000 });
    else ch.write(b);
  };
  stdin.on('data', onInput);
  stdin.resume();
  await vm.waitExit();
  ch.off('data', onData);
  stdin.off('data', onInput);
  if (stdin.isTTY) stdin.setRawMode(false);
  stdin.pause();
}

export const commands: Record<string, Command> = {
  doctor: {
    summary: 'list QEMU binaries, versions, boards and working accelerators',
    usage: 'usage: stacklab doctor [--json]',
    options: {},
    async run(values) {
      const report = await doctor();
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else printDoctor(report);
      return report.ok ? 0 : 1;
    },
  },

  'images list': {
    summary: 'list the images Stacklab knows',
    usage: 'usage: stacklab images list [--json]',
    options: {},
    async run(values) {
      return withEngine(async (e) => {
        const list = await e.library.summaries();
        const human = list.length
          ? list
              .map(
                (i) =>
                  `${i.id.padEnd(24)} ${i.arch.padEnd(8)} ${i.board.padEnd(8)} ${i.source.padEnd(6)} ${
                    i.bootable ? '' : `not bootable: ${i.whyNot}`
                  }`,
              )
              .join('\n')
          : 'no images yet: run "npm run guests" to build the demo guests';
        print(list, human, values.json);
        return 0;
      });
    },
  },

  boot: {
    summary: 'boot an image (console in this terminal, --headless, or --run CMD)',
    usage: `usage: stacklab boot <image|deploy-dir|qemuboot.conf> [--headless] [--run CMD] [--mem MiB] [--smp N] [--json]
  --run CMD   boot, log in, run CMD, print its output, shut down; exits with CMD's status`,
    options: {
      headless: { type: 'boolean' },
      run: { type: 'string' },
      mem: { type: 'string' },
      smp: { type: 'string' },
      timeout: { type: 'string' },
    },
    async run(values, positionals) {
      const target = one(positionals, 'image');
      const memMiB = intOption(values.mem, 'mem');
      const smp = intOption(values.smp, 'smp');
      const timeoutMs = (intOption(values.timeout, 'timeout') ?? 300) * 1000;
      return withEngine(async (e) => {
        const image = await e.library.resolve(target);
        const vm = await e.supervisor.boot(image, { memMiB, smp });
        const off = onSignals(() => void vm.stop({ timeoutMs: 5000 }));
        try {
          if (typeof values.run === 'string') {
            const ch = vm.consoles[0];
            if (!ch) throw new Error(`${vm.id} has no serial console to run commands on`);
            const r = await runInGuest(ch, values.run, { timeoutMs });
            if (values.json)
              console.log(JSON.stringify({ vm: vm.summary(), status: r.status, output: r.output }));
            else process.stdout.write(r.output);
            // The command left us at a shell: a clean power-off is one line away.
            ch.write('sync; poweroff -f\r');
            await Promise.race([vm.waitExit(), new Promise((r) => setTimeout(r, 5000))]);
            await vm.stop({ force: true });
            return r.status;
          }
          const s = vm.summary();
          if (values.headless) {
            print(
              s,
              `${s.id} booting (pid ${s.pid}, ${s.accel})${s.sshPort ? `, ssh on 127.0.0.1:${s.sshPort}` : ''}\n$ ${s.commandLine}\nCtrl-C stops it.`,
              values.json,
            );
            await vm.waitExit();
          } else await attachConsole(vm);
          return vm.state === 'crashed' ? 1 : 0;
        } finally {
          off();
        }
      });
    },
  },

  ps: {
    summary: 'list running VMs (from every Stacklab process of this user)',
    usage: 'usage: stacklab ps [--json]',
    options: {},
    async run(values) {
      const list = liveEntries().map((e) => ({
        vm: e.vmId,
        image: e.imageId,
        pid: e.pid,
        startedAt: e.startedAt,
      }));
      const human = list.length
        ? list
            .map(
              (v) =>
                `${v.vm.padEnd(24)} pid ${String(v.pid).padEnd(8)} up ${Math.round((Date.now() - v.startedAt) / 1000)} s`,
            )
            .join('\n')
        : 'no VMs running';
      print(list, human, values.json);
      return 0;
    },
  },

  stop: {
    summary: 'stop a running VM (graceful; --force quits at once)',
    usage: 'usage: stacklab stop <vm> [--force]',
    options: { force: { type: 'boolean' } },
    async run(values, positionals) {
      const vmId = one(positionals, 'VM');
      const how = await stopByRegistry(vmId, Boolean(values.force));
      print({ vm: vmId, how }, `${vmId} stopped (${how})`, values.json);
      return 0;
    },
  },

  ...usermodeCommands,
  ...stackCommands,
  ...diskCommands,
  ...flashCommands,
  ...buildCommands,

  serve: {
    summary: 'lab mode: serve the app to a browser on 127.0.0.1',
    usage: 'usage: stacklab serve [--port N]',
    options: { port: { type: 'string' } },
    async run(values) {
      const { runServe } = await import('../lab/serve-command.ts');
      await runServe({ port: intOption(values.port, 'port') });
      return 0;
    },
  },
};
