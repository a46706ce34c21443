import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../electron/engine/index.ts';
import { loadStack, PRESETS, parseStack } from '../../electron/engine/stack/model.ts';
import { runInGuest } from '../../electron/engine/vm/guest-shell.ts';
import { demoGuests, NO_GUESTS, runCli, tempHome } from '../helpers/cli.ts';
import { qemuPidsWith } from '../helpers/processes.ts';

const guests = demoGuests();
const hasHost = guests?.some((g) => g.name === 'demo-qemuarm64-host');
if (!hasHost) console.warn(`skipping stack tests: ${NO_GUESTS}`);
const homes: string[] = [];
afterAll(() => {
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});
const home = () => {
  const h = tempHome();
  homes.push(h);
  return h;
};

describe('stack files', () => {
  it('round-trips the presets and refuses bad files with one line', () => {
    expect(loadStack('seed').vm.nested?.[0]?.image).toBe('demo-qemux86-64');
    expect(() => parseStack('name: x\nvm: {name: a}\n', 'bad.yaml')).toThrow(/^bad.yaml at vm.image: /);
    expect(() =>
      parseStack('name: x\nvm: {name: a, image: i, nested: [{name: a, image: j}]}\n', 'dup.yaml'),
    ).toThrow(/two VMs are called "a"/);
    expect(() => parseStack(': : :', 'junk.yaml')).toThrow(/junk.yaml is not valid YAML/);
    expect(() => loadStack('/no/such/stack.yaml')).toThrow(/neither a preset/);
    expect(Object.keys(PRESETS)).toEqual(['seed', 'rpi3']);
  });
});

describe.skipIf(!hasHost)('the seed stack in real QEMU', () => {
  it('--run-at 1 prints aarch64 and --run-at 2 prints x86_64', async () => {
    const env = { ...process.env, STACKLAB_HOME: home() };
    const one = await runCli(['stack', 'up', 'seed', '--run-at', '1', 'uname -m'], {
      env,
      timeoutMs: 900_000,
    });
    expect(one.stdout.trim()).toBe('aarch64');
    expect(one.code).toBe(0);
    const two = await runCli(['stack', 'up', 'seed', '--run-at', '2', 'uname -m'], {
      env,
      timeoutMs: 1_500_000,
    });
    expect(two.stdout.trim()).toBe('x86_64');
    expect(two.code).toBe(0);
    expect(qemuPidsWith(env.STACKLAB_HOME)).toEqual([]);
  }, 1_200_000);

  it('killing the parent QEMU marks the nested layer lost, leaves nothing, and the stack boots again', async () => {
    const mine = home();
    const engine = await createEngine({ env: { ...process.env, STACKLAB_HOME: mine } });
    try {
      const stack = await engine.stacks.up(loadStack('seed'));
      const [outer, inner] = stack.vms;
      expect(inner?.depth).toBe(2);
      // An x86-64 guest inside arm64 boots on microvm, with no default devices (nested-machine.ts).
      expect(inner!.vm.plan.commandLine).toContain("'-machine' 'microvm,x-option-roms=off'");
      expect(inner!.vm.plan.commandLine).toContain("'-nodefaults'");
      expect(inner!.vm.plan.commandLine).toContain("'-device' 'virtio-blk-device,drive=disk0'");
      // The parent's own shell still answers while the nested guest boots.
      const r = await runInGuest(outer!.vm.consoles[0]!, 'stacklab-agent status', { timeoutMs: 300_000 });
      expect(r.output).toMatch(/^x86 running \d+/m);
      // The layer tax: the same benchmark on the host, in user mode, in the guest and in the nested guest.
      const tax = (await engine.dispatcher.dispatch('stack.layerTax', { name: 'seed' })) as Array<{
        kind: string;
        seconds: number;
        factor: number;
      }>;
      expect(tax.map((t) => t.kind)).toEqual(['host', 'usermode', 'guest', 'nested']);
      for (const t of tax) expect(t.seconds).toBeGreaterThan(0);
      expect(tax[2]!.factor).toBeGreaterThan(1);
      expect(tax[3]!.seconds).toBeGreaterThan(tax[2]!.seconds);
      console.log(
        `layer tax: ${tax.map((t) => `${t.kind} ${t.seconds.toFixed(2)} s (×${t.factor.toFixed(1)})`).join(', ')}`,
      );
      process.kill(outer!.vm.pid!, 'SIGKILL');
      await inner!.vm.waitExit();
      expect(inner!.vm.state).toBe('lost');
      expect(outer!.vm.state).toBe('crashed');
      expect(qemuPidsWith(mine)).toEqual([]);
      // And up again, reaching the parent's shell.
      const again = await engine.stacks.up(loadStack('seed'));
      const echo = await runInGuest(again.vms[0]!.vm.consoles[0]!, 'echo again', { timeoutMs: 300_000 });
      expect(echo.output.trim()).toBe('again');
    } finally {
      await engine.dispose();
    }
    expect(qemuPidsWith(mine)).toEqual([]);
  }, 1_200_000);
});
