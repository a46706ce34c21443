// The catalogue: images one click can fetch. Built in: the official Yocto release images
// for qemuarm64 and qemux86-64; the demo guests (already on disk, from guests.json); and
// any catalogue JSON the user adds by URL or path, in the same format as the built-in
// table (like Raspberry Pi Imager's --repo). The format is the zod schema below and is
// documented in docs/catalogue.md.
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { guestsDir } from '../paths.ts';
import { fetchText } from './http.ts';

const Hex64 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits');
const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http or https URL' });

export const CatalogueFileSchema = z
  .object({
    role: z.enum(['kernel', 'rootfs', 'disk', 'qemuboot', 'dtb', 'initrd', 'bios', 'other']),
    /** Name as published (and, minus a compression suffix, as stored in the deploy dir). */
    name: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^/\\]+$/, 'must be a file name, not a path')
      .refine((n) => n !== '.' && n !== '..', 'must be a file name'),
    /** Absolute URL; defaults to the image's baseUrl + name. */
    url: HttpUrl.optional(),
    /** Digest of the file as published (compressed), when known in advance. */
    sha256: Hex64.optional(),
    /** A published checksum file ("<hex>  <name>"), e.g. <url>.sha256sum. */
    sha256Url: HttpUrl.optional(),
    /** Older releases publish <url>.md5sum only. */
    md5Url: HttpUrl.optional(),
    sizeBytes: z.number().int().positive().optional(),
  })
  .strict()
  .refine((f) => f.sha256 || f.sha256Url || f.md5Url, 'needs sha256, sha256Url or md5Url');

export const CatalogueImageSchema = z
  .object({
    id: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9._:@+-]+$/, 'ids are letters, digits and ._:@+-'),
    name: z.string().min(1).max(200),
    description: z.string().max(2000).optional(),
    machine: z.string().min(1).max(64),
    arch: z.enum(['aarch64', 'x86_64', 'arm', 'riscv64']),
    board: z.string().min(1).max(64),
    release: z.string().max(64).optional(),
    baseUrl: HttpUrl.refine((u) => u.endsWith('/'), 'must end with /').optional(),
    files: z.array(CatalogueFileSchema).min(1).max(32),
  })
  .strict()
  .refine((img) => img.files.every((f) => f.url || img.baseUrl), {
    message: 'every file needs a url, or the image a baseUrl',
    path: ['files'],
  })
  .refine((img) => img.files.some((f) => f.role === 'rootfs' || f.role === 'disk'), {
    message: 'needs a file with role rootfs or disk',
    path: ['files'],
  });

export const CatalogueSchema = z
  .object({
    version: z.literal(1),
    name: z.string().min(1).max(200),
    images: z.array(CatalogueImageSchema).max(1000),
  })
  .strict()
  .refine((c) => new Set(c.images.map((i) => i.id)).size === c.images.length, {
    message: 'image ids must be unique',
    path: ['images'],
  });

export type CatalogueFile = z.infer<typeof CatalogueFileSchema>;
export type CatalogueImage = z.infer<typeof CatalogueImageSchema>;
export type Catalogue = z.infer<typeof CatalogueSchema>;

/** One file to fetch, with its URL and how to check it resolved. */
export interface ResolvedFile extends CatalogueFile {
  url: string;
}

/** A catalogue entry as the library shows it. Demo guests carry a deploy dir, not files. */
export interface CatalogueEntry extends Omit<CatalogueImage, 'files' | 'baseUrl'> {
  source: 'yocto' | 'user' | 'demo';
  catalogue: string;
  files: ResolvedFile[];
  deployDir?: string;
}

/** Validates catalogue JSON; throws one line naming the source, the place and the problem. */
export function parseCatalogue(json: unknown, source: string): Catalogue {
  const r = CatalogueSchema.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? `${formatPath(issue.path)}: ` : '';
  throw new Error(`catalogue ${source}: ${where}${issue.message}`.replace(/\s*\n\s*/g, ' '));
}

function formatPath(p: PropertyKey[]): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('');
}

export function parseCatalogueText(text: string, source: string): Catalogue {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`catalogue ${source}: not JSON (${(err as Error).message})`);
  }
  return parseCatalogue(json, source);
}

/** Loads a user catalogue from an http(s) URL or a local path. */
export async function loadCatalogue(where: string, signal?: AbortSignal): Promise<Catalogue> {
  if (/^https?:\/\//i.test(where))
    return parseCatalogueText(await fetchText(where, { signal, maxBytes: 4 << 20 }), where);
  const text = await fs.readFile(where, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`catalogue ${where}: cannot read it (${err.code ?? err.message})`);
  });
  return parseCatalogueText(text, where);
}

export function resolveFiles(img: CatalogueImage): ResolvedFile[] {
  return img.files.map((f) => ({ ...f, url: f.url ?? new URL(f.name, img.baseUrl).toString() }));
}

export function entriesOf(
  cat: Catalogue,
  source: CatalogueEntry['source'],
  catalogue: string,
): CatalogueEntry[] {
  return cat.images.map(({ files: _f, baseUrl: _b, ...rest }, i) => ({
    ...rest,
    source,
    catalogue,
    files: resolveFiles(cat.images[i]!),
  }));
}

// ---- the official Yocto release images ----

export const YOCTO_BASE = 'https://downloads.yoctoproject.org/releases/yocto';

/**
 * Point releases pinned to the newest whose release notes are in yocto-docs
 * (documentation/migration-guides/release-notes-X.Y.Z.rst on master, July 2026):
 * 4.0.35 (kirkstone, which reached end of life in April 2026), 5.0.19 (scarthgap LTS),
 * 5.2.4 (walnascar's last) and 5.3.4 (whinlatter). Checksums are .sha256sum files, which
 * the autobuilder has published since 2020 (.md5sum before: all of these are later).
 */
export const YOCTO_RELEASES = [
  { codename: 'kirkstone', version: '4.0.35', naming: 'plain' },
  { codename: 'scarthgap', version: '5.0.19', naming: 'rootfs' },
  { codename: 'walnascar', version: '5.2.4', naming: 'rootfs' },
  { codename: 'whinlatter', version: '5.3.4', naming: 'rootfs-zst' },
] as const;

export type YoctoRelease = (typeof YOCTO_RELEASES)[number];

export const YOCTO_MACHINES = {
  qemuarm64: { arch: 'aarch64', board: 'virt', kernel: 'Image-qemuarm64.bin' },
  'qemux86-64': { arch: 'x86_64', board: 'q35', kernel: 'bzImage-qemux86-64.bin' },
} as const;

export type YoctoMachine = keyof typeof YOCTO_MACHINES;

/** The autobuilder's arch-qemu template builds these three (and -dev/-sdk variants) for both machines. */
export const YOCTO_IMAGES = {
  'core-image-minimal': 'A small image that just boots to a shell.',
  'core-image-full-cmdline': 'A console-only image with more of a full Linux system (bash, coreutils, …).',
  'core-image-sato': 'An X11 image with the Sato mobile-style desktop (needs a graphical display).',
} as const;

export type YoctoImage = keyof typeof YOCTO_IMAGES;

/**
 * The deploy-dir names of one release: up to 4.0 `<image>-<machine>.ext4` and
 * `.qemuboot.conf`; from 4.3 `.rootfs` joins the link name; 5.3 publishes ext4.zst.
 */
export function yoctoFileNames(release: YoctoRelease, image: YoctoImage, machine: YoctoMachine) {
  const stem = `${image}-${machine}`;
  const rootfs =
    release.naming === 'plain'
      ? `${stem}.ext4`
      : release.naming === 'rootfs'
        ? `${stem}.rootfs.ext4`
        : `${stem}.rootfs.ext4.zst`;
  const qemuboot = release.naming === 'plain' ? `${stem}.qemuboot.conf` : `${stem}.rootfs.qemuboot.conf`;
  return { kernel: YOCTO_MACHINES[machine].kernel, rootfs, qemuboot };
}

export function yoctoBaseUrl(release: YoctoRelease, machine: YoctoMachine): string {
  return `${YOCTO_BASE}/yocto-${release.version}/machines/qemu/${machine}/`;
}

export function yoctoCatalogue(): Catalogue {
  const images: CatalogueImage[] = [];
  for (const release of YOCTO_RELEASES) {
    for (const machine of Object.keys(YOCTO_MACHINES) as YoctoMachine[]) {
      for (const image of Object.keys(YOCTO_IMAGES) as YoctoImage[]) {
        const names = yoctoFileNames(release, image, machine);
        const baseUrl = yoctoBaseUrl(release, machine);
        const file = (role: CatalogueFile['role'], name: string): CatalogueFile => ({
          role,
          name,
          sha256Url: `${baseUrl}${name}.sha256sum`,
        });
        const m = YOCTO_MACHINES[machine];
        images.push({
          id: `yocto-${release.version}-${image}-${machine}`,
          name: `${image} ${release.version} (${release.codename}, ${machine})`,
          description: `${YOCTO_IMAGES[image]} Official Yocto Project ${release.version} release build.`,
          machine,
          arch: m.arch,
          board: m.board,
          release: release.version,
          baseUrl,
          files: [
            file('kernel', names.kernel),
            file('rootfs', names.rootfs),
            file('qemuboot', names.qemuboot),
          ],
        });
      }
    }
  }
  return parseCatalogue({ version: 1, name: 'Yocto Project releases', images }, 'built-in');
}

// ---- demo guests ----

const GuestIndex = z.array(
  z
    .object({ name: z.string().min(1), description: z.string().optional(), deployDir: z.string().min(1) })
    .loose(),
);

/** The demo guests built by `npm run guests`, from <guestsDir>/guests.json (the lead's format). */
export function demoEntries(env: NodeJS.ProcessEnv = process.env): CatalogueEntry[] {
  const dir = guestsDir(env);
  const index = path.join(dir, 'guests.json');
  if (!existsSync(index)) return [];
  let list: z.infer<typeof GuestIndex>;
  try {
    list = GuestIndex.parse(JSON.parse(readFileSync(index, 'utf8')));
  } catch (err) {
    throw new Error(`${index} is not a list of {name, deployDir}: ${(err as Error).message.split('\n')[0]}`);
  }
  return list.map((g) => {
    const machine = typeof g.machine === 'string' ? g.machine : '';
    const arch = typeof g.arch === 'string' ? g.arch : '';
    return {
      id: g.name,
      name: g.name,
      description: g.description,
      source: 'demo' as const,
      catalogue: 'demo guests',
      machine,
      arch: (['aarch64', 'x86_64', 'arm', 'riscv64'].includes(arch)
        ? arch
        : 'aarch64') as CatalogueImage['arch'],
      board: typeof g.board === 'string' ? g.board : '',
      files: [],
      deployDir: path.resolve(dir, g.deployDir),
    };
  });
}

/** Everything the library can offer to fetch: demo guests, Yocto releases, user catalogues. */
export async function listCatalogue(
  opts: { env?: NodeJS.ProcessEnv; userCatalogues?: string[]; signal?: AbortSignal } = {},
): Promise<{ entries: CatalogueEntry[]; errors: string[] }> {
  const entries: CatalogueEntry[] = [];
  const errors: string[] = [];
  try {
    entries.push(...demoEntries(opts.env));
  } catch (err) {
    errors.push((err as Error).message);
  }
  entries.push(...entriesOf(yoctoCatalogue(), 'yocto', 'Yocto Project releases'));
  for (const where of opts.userCatalogues ?? []) {
    try {
      const cat = await loadCatalogue(where, opts.signal);
      entries.push(...entriesOf(cat, 'user', cat.name));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return { entries, errors };
}

/** The digest in a published checksum file: "<hex>  <name>", "<hex> *<name>" or a bare "<hex>". */
export function parseChecksumFile(text: string, fileName: string, kind: 'sha256' | 'md5'): string {
  const len = kind === 'sha256' ? 64 : 32;
  const re = new RegExp(`^([0-9a-fA-F]{${len}})(?:\\s+\\*?(.+?))?\\s*$`);
  const lines = text.split(/\r?\n/).filter((l) => l.trim());
  const rows = lines.map((l) => re.exec(l.trim())).filter((m): m is RegExpExecArray => m !== null);
  const named = rows.find((m) => m[2] && path.posix.basename(m[2]) === fileName);
  // One row is taken whatever its name: the published name can carry a build timestamp.
  const hit = named ?? (rows.length === 1 ? rows[0] : undefined);
  if (!hit) throw new Error(`the ${kind} checksum file for ${fileName} does not list it`);
  return hit[1]!.toLowerCase();
}
