// `stacklab doctor`: which QEMU is in use and why, what it can emulate, and which
// accelerators really work here (probed by starting a VM, not by looking for /dev/kvm).

import { stacklabHome } from '../engine/paths.ts';
import { probeAccelerators } from '../engine/qemu/accel.ts';
import { listMachines, qemuVersion } from '../engine/qemu/discovery.ts';
import { selectQemu } from '../engine/qemu/select.ts';
import { createSettings } from '../engine/settings.ts';

export interface DoctorReport {
  ok: boolean;
  error?: string;
  qemu?: { source: string; why: string; dir: string };
  bundle?: { root: string; present: boolean; ok?: boolean; version?: string; problems: string[] };
  binaries: Array<{
    name: string;
    path: string;
    version: string;
    machines: string[];
    accels: Array<{ name: string; ok: boolean; reason: string }>;
    best: string;
    why: string;
  }>;
  img?: { path: string; version: string };
}

export async function doctor(env: NodeJS.ProcessEnv = process.env): Promise<DoctorReport> {
  let choice: Awaited<ReturnType<typeof selectQemu>>;
  try {
    choice = await selectQemu({
      env,
      configuredPath: createSettings({ cwd: stacklabHome(env) }).get('qemuPath'),
    });
  } catch (e) {
    return { ok: false, error: (e as Error).message, binaries: [] };
  }
  const install = choice.install;
  const binaries: DoctorReport['binaries'] = [];
  for (const [name, bin] of Object.entries(install.systems)) {
    const [version, machines, accel] = await Promise.all([
      qemuVersion(bin),
      listMachines(bin),
      probeAccelerators(bin),
    ]);
    binaries.push({
      name,
      path: bin,
      version: version.text,
      machines: machines.map((m) => m.name),
      accels: accel.accels,
      best: accel.best,
      why: accel.why,
    });
  }
  const img = install.img ? { path: install.img, version: (await qemuVersion(install.img)).text } : undefined;
  return {
    ok: binaries.length > 0,
    qemu: { source: install.source, why: install.why, dir: install.dir },
    bundle: {
      root: choice.bundle.root,
      present: choice.bundle.present,
      ok: choice.bundle.check?.ok,
      version: choice.bundle.check?.version ?? undefined,
      problems: choice.bundle.check?.problems ?? [],
    },
    binaries,
    img,
  };
}

export function printDoctor(r: DoctorReport): void {
  if (r.error) {
    console.log(`QEMU: not found — ${r.error}`);
    return;
  }
  console.log(`QEMU: ${r.qemu?.source} (${r.qemu?.dir}) — ${r.qemu?.why}`);
  if (r.bundle?.present) {
    console.log(
      r.bundle.ok
        ? `bundle: ${r.bundle.root} — QEMU ${r.bundle.version}, every file matches its manifest`
        : `bundle: ${r.bundle.root} — DAMAGED: ${r.bundle.problems.slice(0, 5).join('; ')}`,
    );
  } else if (r.bundle)
    console.log(`bundle: none in ${r.bundle.root} (a development checkout uses the system QEMU)`);
  for (const b of r.binaries) {
    console.log(`\n${b.name}  ${b.version}\n  ${b.path}`);
    console.log(
      `  boards (${b.machines.length}): ${b.machines.slice(0, 12).join(', ')}${b.machines.length > 12 ? ', …' : ''}`,
    );
    for (const a of b.accels) console.log(`  ${a.ok ? 'ok  ' : 'no  '} ${a.name.padEnd(5)} ${a.reason}`);
    console.log(`  using ${b.best}: ${b.why}`);
  }
  console.log(
    r.img ? `\nqemu-img  ${r.img.version}\n  ${r.img.path}` : '\nqemu-img: not found (needed for VM disks)',
  );
}
