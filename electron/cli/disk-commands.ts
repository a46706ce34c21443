// Images and VM disks from the command line: pull/import/rm, snapshots, reset, resize.

import { parseSize } from '../engine/disks/size.ts';
import type { Command } from './commands.ts';
import { UsageError } from './usage-error.ts';
import { withEngine } from './with-engine.ts';

function args(positionals: string[], names: string[]): string[] {
  if (positionals.length !== names.length) throw new UsageError(`expected ${names.join(' ')}`);
  return positionals;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const out = (json: boolean | unknown, data: unknown, human: string) =>
  console.log(json ? JSON.stringify(data, null, 2) : human);

export const diskCommands: Record<string, Command> = {
  'images pull': {
    summary: 'download a catalogue image (checksummed, resumable)',
    usage: 'usage: stacklab images pull <catalogue-id>   (stacklab images catalogue lists them)',
    options: {},
    async run(values, positionals) {
      const [id] = args(positionals, ['<catalogue-id>']);
      return withEngine(async (e) => {
        let last = 0;
        e.hub.on('progress', (p) => {
          if (values.json || Date.now() - last < 500) return;
          last = Date.now();
          const pct = p.total ? ` ${((100 * p.done) / p.total).toFixed(0)} %` : '';
          process.stderr.write(
            `\r${p.label}${pct} ${mib(p.done)}${p.ratePerSec ? ` at ${mib(p.ratePerSec)}/s` : ''}   `,
          );
        });
        const { done } = await e.images.install(id!);
        const img = await done;
        process.stderr.write('\n');
        out(values.json, img, `${img.id}: ${img.arch} ${img.board}, ${mib(img.sizeBytes)}`);
        return 0;
      });
    },
  },
  'images catalogue': {
    summary: 'list what can be downloaded (Yocto releases, your catalogues)',
    usage: 'usage: stacklab images catalogue [--json]',
    options: {},
    async run(values) {
      return withEngine(async (e) => {
        const c = await e.images.catalogue();
        out(
          values.json,
          c,
          [
            ...c.entries.map(
              (x) => `${x.id.padEnd(48)} ${x.arch.padEnd(8)} ${x.installed ? 'installed' : ''}`,
            ),
            ...c.errors,
          ].join('\n'),
        );
        return 0;
      });
    },
  },
  'images import': {
    summary: 'import a deploy dir, .wic(.xz/.bz2/.zst), SD .img.xz, .ext4 or .qcow2',
    usage: 'usage: stacklab images import <path>',
    options: {},
    async run(values, positionals) {
      const [file] = args(positionals, ['<path>']);
      return withEngine(async (e) => {
        const img = await e.images.import(file!);
        out(values.json, img, `${img.id}: ${img.arch} ${img.board}, ${mib(img.sizeBytes)}`);
        return 0;
      });
    },
  },
  'images rm': {
    summary: 'delete a downloaded or imported image (asks for --yes)',
    usage: 'usage: stacklab images rm <image> --yes',
    options: { yes: { type: 'boolean' } },
    async run(values, positionals) {
      const [id] = args(positionals, ['<image>']);
      if (!values.yes) throw new UsageError(`this deletes ${id} from the store; run again with --yes`);
      return withEngine(async (e) => {
        const freed = await e.images.remove(id!);
        out(values.json, { freedBytes: freed }, `${id} deleted, ${mib(freed)} freed`);
        return 0;
      });
    },
  },
  'snapshot list': {
    summary: "list a VM's disk snapshots",
    usage: 'usage: stacklab snapshot list <vm>',
    options: {},
    async run(values, positionals) {
      const [vm] = args(positionals, ['<vm>']);
      return withEngine(async (e) => {
        const list = await e.disks.listSnapshots(vm!);
        out(
          values.json,
          list,
          list
            .map((s) => `${s.name.padEnd(24)} ${s.date} ${s.sizeBytes ? mib(s.sizeBytes) : 'disk only'}`)
            .join('\n') || 'no snapshots',
        );
        return 0;
      });
    },
  },
  'snapshot take': {
    summary: 'snapshot a VM (live when it runs)',
    usage: 'usage: stacklab snapshot take <vm> <name>',
    options: {},
    async run(values, positionals) {
      const [vm, name] = args(positionals, ['<vm>', '<name>']);
      return withEngine(async (e) => {
        const s = await e.disks.takeSnapshot(vm!, name!);
        out(values.json, s, `snapshot ${s.name} of ${vm} taken`);
        return 0;
      });
    },
  },
  'snapshot revert': {
    summary: 'go back to a snapshot (what changed since is lost)',
    usage: 'usage: stacklab snapshot revert <vm> <name>',
    options: {},
    async run(values, positionals) {
      const [vm, name] = args(positionals, ['<vm>', '<name>']);
      return withEngine(async (e) => {
        const s = await e.disks.revertSnapshot(vm!, name!);
        out(values.json, s, `${vm} is back at snapshot ${s.name}`);
        return 0;
      });
    },
  },
  'snapshot delete': {
    summary: 'delete a snapshot',
    usage: 'usage: stacklab snapshot delete <vm> <name>',
    options: {},
    async run(values, positionals) {
      const [vm, name] = args(positionals, ['<vm>', '<name>']);
      return withEngine(async (e) => {
        await e.disks.deleteSnapshot(vm!, name!);
        out(values.json, { ok: true }, `snapshot ${name} of ${vm} deleted`);
        return 0;
      });
    },
  },
  'disk reset': {
    summary: "drop a VM's changes: back to the base image (asks for --yes)",
    usage: 'usage: stacklab disk reset <vm> --yes',
    options: { yes: { type: 'boolean' } },
    async run(values, positionals) {
      const [vm] = args(positionals, ['<vm>']);
      if (!values.yes)
        throw new UsageError(`this drops every change and snapshot of ${vm}; run again with --yes`);
      return withEngine(async (e) => {
        const r = await e.disks.reset(vm!);
        out(values.json, r, `${vm} reset to its base image (${mib(r.freedBytes)} freed)`);
        return 0;
      });
    },
  },
  'disk resize': {
    summary: "grow a VM's disk and its ext4 root file system",
    usage: 'usage: stacklab disk resize <vm> <size, e.g. 4G> [--drop-snapshots]',
    options: { 'drop-snapshots': { type: 'boolean' } },
    async run(values, positionals) {
      const [vm, size] = args(positionals, ['<vm>', '<size>']);
      return withEngine(async (e) => {
        const r = await e.disks.resize(vm!, parseSize(size!), {
          dropSnapshots: Boolean(values['drop-snapshots']),
        });
        out(
          values.json,
          r,
          `${vm}: ${mib(r.previousBytes)} → ${mib(r.sizeBytes)}, file system ${mib(r.filesystemBytes)}`,
        );
        return 0;
      });
    },
  },
  'disk usage': {
    summary: 'how much disk a VM uses',
    usage: 'usage: stacklab disk usage <vm>',
    options: {},
    async run(values, positionals) {
      const [vm] = args(positionals, ['<vm>']);
      return withEngine(async (e) => {
        const u = await e.disks.usage(vm!);
        out(
          values.json,
          u,
          `${vm}: changes ${mib(u.overlayBytes)} over a ${mib(u.baseBytes)} base, ${u.snapshots} snapshot(s)`,
        );
        return 0;
      });
    },
  },
};
