// manifest.json of a QEMU bundle: written by scripts/bundle/*, read by verify.ts at start-up.
// It crosses a process (and machine) boundary, so it is validated, not trusted.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { MANIFEST_NAME } from './layout.ts';

export const MANIFEST_SCHEMA = 1;

/** A bundle-relative path with forward slashes that cannot climb out of the bundle. */
const RelPath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === ''),
    {
      message: 'file paths must be relative, use / and stay inside the bundle',
    },
  );

export const ManifestFile = z.object({
  path: RelPath,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
  /** Permission bits, e.g. 0o755 = 493. Windows bundles record what Node reports and verify ignores it. */
  mode: z.number().int().min(0).max(0o7777),
});
export type ManifestFile = z.infer<typeof ManifestFile>;

export const Manifest = z.object({
  schema: z.literal(MANIFEST_SCHEMA),
  qemuVersion: z.string().min(1), // e.g. "7.2.19"
  qemuVersionLine: z.string(), // what `qemu-system-x86_64 --version` printed first
  platform: z.enum(['linux', 'darwin', 'win32']),
  arch: z.string().min(1), // Node's process.arch: x64, arm64
  systemTargets: z.array(z.string()), // aarch64, arm, x86_64
  userTargets: z.array(z.string()), // qemu-<t>-static (Linux only)
  createdAt: z.string(),
  /** Where the files came from: distribution packages with exact versions, or pinned upstream downloads. */
  source: z.object({
    kind: z.enum(['debian', 'homebrew', 'upstream-installer']),
    packages: z.record(z.string(), z.string()),
  }),
  /** Linux: the newest GLIBC_x.y symbol version any bundled file needs from the host. */
  minGlibc: z.string().optional(),
  files: z.array(ManifestFile),
});
export type Manifest = z.infer<typeof Manifest>;

/** Reads and validates `<root>/manifest.json`; throws a one-line Error naming what is wrong. */
export async function readManifest(bundleRoot: string): Promise<Manifest> {
  const file = path.join(bundleRoot, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `${MANIFEST_NAME}: missing (not a Stacklab QEMU bundle)`
        : `${MANIFEST_NAME}: ${code}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${MANIFEST_NAME}: not valid JSON (file damaged)`);
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${MANIFEST_NAME}: ${issue?.path.join('.') || 'root'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
