// `stacklab stack up|down`: a whole emulation stack from the command line.
import { createEngine } from '../engine/index.ts';
import { loadStack } from '../engine/stack/model.ts';
import { runInGuest } from '../engine/vm/guest-shell.ts';
import { alive, liveEntries } from '../engine/vm/process.ts';
import type { Command } from './commands.ts';
import { UsageError } from './usage-error.ts';

export const stackCommands: Record<string, Command> = {
  'stack up': {
    summary: 'boot a stack (a preset: seed, rpi3; or a .yaml stack file)',
    usage: `usage: stacklab stack up <preset|file.yaml> [--run-at DEPTH CMD] [--json]
  --run-at N CMD   when every layer is up, run CMD at depth N (1 = the outer guest), print its
                   output, shut the stack down from the inside out, exit with CMD's status`,
    options: { 'run-at': { type: 'string' }, timeout: { type: 'string' } },
    async run(values, positionals) {
      const [target, ...cmd] = positionals;
      if (!target) throw new UsageError('expected a preset name or a stack file');
      const runAt = values['run-at'] === undefined ? undefined : Number(values['run-at']);
      if (runAt !== undefined && (!Number.isInteger(runAt) || runAt < 1))
        throw new UsageError('--run-at takes a depth: 1, 2, …');
      if (runAt !== undefined && cmd.length === 0) throw new UsageError('--run-at needs a command to run');
      const spec = loadStack(target);
      const engine = await createEngine();
      const t0 = Date.now();
      const say = (m: string) =>
        process.stderr.write(`[stack ${spec.name} +${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}\n`);
      engine.hub.on('progress', (p) => {
        if (p.taskId === `stack-${spec.name}` && p.message) say(p.message);
      });
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        say('shutting down from the inside out');
        void engine.stacks.down(spec.name).catch(() => undefined);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        const stack = await engine.stacks.up(spec);
        const timeoutMs = Number(values.timeout ?? 600) * 1000;
        if (runAt !== undefined) {
          const layer = stack.vms.find((v) => v.depth === runAt);
          if (!layer)
            throw new Error(`stack ${spec.name} has no layer at depth ${runAt} (it has ${stack.vms.length})`);
          const r = await runInGuest(layer.vm.consoles[0]!, cmd.join(' '), { timeoutMs });
          say(`${layer.spec.name} answered after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          if (values.json)
            console.log(
              JSON.stringify({ stack: spec.name, depth: runAt, status: r.status, output: r.output }),
            );
          else process.stdout.write(r.output);
          await engine.stacks.down(spec.name);
          return r.status;
        }
        for (const v of stack.vms)
          say(
            `${'  '.repeat(v.depth - 1)}${v.spec.name}: ${v.vm.state} (${v.vm.plan.arch}, ${v.vm.plan.board})`,
          );
        say('up — Ctrl-C (or "stacklab stack down") shuts it down');
        await Promise.all(stack.vms.map((v) => v.vm.waitExit()));
        return 0;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await engine.dispose();
      }
    },
  },

  'stack down': {
    summary: 'shut a running stack down from the inside out',
    usage: 'usage: stacklab stack down <preset|file.yaml>',
    options: {},
    async run(_values, positionals) {
      const [target] = positionals;
      if (!target) throw new UsageError('expected the stack to shut down');
      const spec = loadStack(target);
      // The process that booted the stack holds the agent; ask it to shut down in order.
      const entry = liveEntries().find((e) => e.vmId === `${spec.name}-${spec.vm.name}`);
      if (!entry) throw new Error(`stack ${spec.name} is not up`);
      process.kill(entry.ownerPid, 'SIGTERM');
      const deadline = Date.now() + 60_000;
      while (alive(entry.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (alive(entry.pid)) throw new Error(`stack ${spec.name} did not shut down within 60 s`);
      console.log(`stack ${spec.name} is down`);
      return 0;
    },
  },
};
