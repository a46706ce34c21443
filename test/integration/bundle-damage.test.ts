// A damaged QEMU bundle is named by `stacklab doctor` and by the app (host.qemu), and the
// engine does not run it: it falls back to the system QEMU.
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleRootFor } from '../../electron/engine/bundle/index.ts';
import { createEngine } from '../../electron/engine/index.ts';
import { resourcesDir } from '../../electron/engine/paths.ts';
import { runCli, tempHome } from '../helpers/cli.ts';

const bundle = bundleRootFor(resourcesDir());
const built = existsSync(path.join(bundle, 'manifest.json'));
if (!built) console.warn('skipping bundle damage tests: no bundle built (npm run bundle:qemu)');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!built)('a damaged bundle', () => {
  it('is reported by doctor and by the app, and not used', async () => {
    const tmp = tempHome('stacklab-damaged-');
    dirs.push(tmp);
    const copy = path.join(tmp, 'bundle');
    cpSync(bundle, copy, { recursive: true });
    // One byte changed in place, so only the hash can tell.
    const img = path.join(copy, 'bin', 'qemu-img');
    const bytes = readFileSync(img);
    bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 0xff;
    writeFileSync(img, bytes);
    const env = { ...process.env, STACKLAB_HOME: path.join(tmp, 'home'), STACKLAB_QEMU_BUNDLE: copy };

    const r = await runCli(['doctor', '--json'], { env });
    const report = JSON.parse(r.stdout) as {
      qemu: { source: string; why: string };
      bundle: { ok: boolean; problems: string[] };
    };
    expect(report.bundle.ok).toBe(false);
    expect(report.bundle.problems).toEqual([
      'bin/qemu-img: sha256 differs from the manifest (file changed or damaged)',
    ]);
    expect(report.qemu.source).toBe('system');
    expect(report.qemu.why).toMatch(/bundled QEMU is damaged/);

    const engine = await createEngine({ env });
    try {
      const q = (await engine.dispatcher.dispatch('host.qemu', {})) as { source: string; warning?: string };
      expect(q.source).toBe('system');
      expect(q.warning).toMatch(/^bundled QEMU is damaged \(1 problem\): bin\/qemu-img/);
    } finally {
      await engine.dispose();
    }
  });
});
