// A stack: the host, a VM on it, and VMs nested inside that VM, to any depth. Saved as a
// small YAML file people can read, share and open again; validated with one-line errors.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';

const Name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'names are lower-case letters, digits and dashes, up to 31 characters');

export interface StackVmSpec {
  name: string;
  image: string;
  memMiB?: number;
  smp?: number;
  nested?: StackVmSpec[];
}

const VmSpec: z.ZodType<StackVmSpec> = z.lazy(() =>
  z
    .object({
      name: Name,
      image: z.string().min(1).max(200),
      memMiB: z.number().int().min(64).max(65536).optional(),
      smp: z.number().int().min(1).max(16).optional(),
      nested: z.array(VmSpec).max(4).optional(),
    })
    .strict(),
);

export const StackSpec = z
  .object({
    name: Name,
    title: z.string().max(120).optional(),
    description: z.string().max(2000).optional(),
    vm: VmSpec,
  })
  .strict();
export type StackSpec = z.infer<typeof StackSpec>;

export const PRESETS: Record<string, StackSpec> = {
  seed: {
    name: 'seed',
    title: 'Seed stack',
    description:
      'The experiment Stacklab grew from: this x86-64 PC emulates a 64-bit Arm machine (qemuarm64), which emulates an x86-64 machine (qemux86-64), with a shell at the bottom.',
    vm: {
      name: 'arm64',
      image: 'demo-qemuarm64-host',
      nested: [{ name: 'x86', image: 'demo-qemux86-64', memMiB: 256, smp: 1 }],
    },
  },
  rpi3: {
    name: 'rpi3',
    title: 'Raspberry Pi 3B',
    description: 'A Raspberry Pi 3 Model B SD card image booted on QEMU’s raspi3b board.',
    vm: { name: 'pi', image: 'demo-raspberrypi3-64' },
  },
};

function explain(e: z.ZodError, where: string): Error {
  const first = e.issues[0];
  const at = first?.path.length ? ` at ${first.path.join('.')}` : '';
  return new Error(`${where}${at}: ${first?.message ?? 'invalid stack'}`);
}

export function parseStack(text: string, where = 'stack file'): StackSpec {
  let data: unknown;
  try {
    data = YAML.parse(text);
  } catch (e) {
    throw new Error(`${where} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = StackSpec.safeParse(data);
  if (!r.success) throw explain(r.error, where);
  const names = new Set<string>();
  const walk = (v: StackVmSpec) => {
    if (names.has(v.name)) throw new Error(`${where}: two VMs are called "${v.name}"`);
    names.add(v.name);
    for (const n of v.nested ?? []) walk(n);
  };
  walk(r.data.vm);
  return r.data;
}

/** A preset name, or a path to a .yaml stack file. */
export function loadStack(presetOrFile: string): StackSpec {
  const preset = PRESETS[presetOrFile];
  if (preset) return preset;
  let text: string;
  try {
    text = readFileSync(presetOrFile, 'utf8');
  } catch {
    throw new Error(
      `"${presetOrFile}" is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a readable stack file`,
    );
  }
  return parseStack(text, path.basename(presetOrFile));
}

export function saveStack(spec: StackSpec, file: string): void {
  writeFileSync(
    file,
    `# Stacklab stack — open it with: stacklab stack up ${path.basename(file)}\n${YAML.stringify(spec)}`,
  );
}

/** Every VM in the stack with its depth (1 = on the host) and parent, outermost first. */
export function flatten(spec: StackSpec): Array<{ vm: StackVmSpec; depth: number; parent?: StackVmSpec }> {
  const out: Array<{ vm: StackVmSpec; depth: number; parent?: StackVmSpec }> = [];
  const walk = (vm: StackVmSpec, depth: number, parent?: StackVmSpec) => {
    out.push({ vm, depth, parent });
    for (const n of vm.nested ?? []) walk(n, depth + 1, vm);
  };
  walk(spec.vm, 1);
  return out;
}
