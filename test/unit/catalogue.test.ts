// The built-in Yocto table and the user catalogue format. Exact names are from the
// autobuilder's published layout (field notes §2); one wrong suffix means a 404 for users.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type CatalogueEntry,
  demoEntries,
  entriesOf,
  loadCatalogue,
  parseCatalogue,
  parseCatalogueText,
  parseChecksumFile,
  YOCTO_RELEASES,
  yoctoCatalogue,
} from '../../electron/engine/images/catalogue.ts';

const Y = 'https://downloads.yoctoproject.org/releases/yocto';
const entries = entriesOf(yoctoCatalogue(), 'yocto', 'Yocto');
const byId = (id: string): CatalogueEntry => {
  const e = entries.find((x) => x.id === id);
  if (!e) throw new Error(`no entry ${id}`);
  return e;
};
const urls = (id: string) => Object.fromEntries(byId(id).files.map((f) => [f.role, f.url]));

describe('built-in Yocto catalogue', () => {
  it('has minimal, full-cmdline and sato for both machines in all four releases', () => {
    expect(YOCTO_RELEASES.map((r) => r.version)).toEqual(['4.0.35', '5.0.19', '5.2.4', '5.3.4']);
    expect(entries).toHaveLength(4 * 2 * 3);
    expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
  });

  it('kirkstone 4.0: names without .rootfs', () => {
    expect(urls('yocto-4.0.35-core-image-minimal-qemuarm64')).toEqual({
      kernel: `${Y}/yocto-4.0.35/machines/qemu/qemuarm64/Image-qemuarm64.bin`,
      rootfs: `${Y}/yocto-4.0.35/machines/qemu/qemuarm64/core-image-minimal-qemuarm64.ext4`,
      qemuboot: `${Y}/yocto-4.0.35/machines/qemu/qemuarm64/core-image-minimal-qemuarm64.qemuboot.conf`,
    });
    expect(urls('yocto-4.0.35-core-image-sato-qemux86-64').kernel).toBe(
      `${Y}/yocto-4.0.35/machines/qemu/qemux86-64/bzImage-qemux86-64.bin`,
    );
  });

  it('scarthgap 5.0 and walnascar 5.2: .rootfs in the link names', () => {
    expect(urls('yocto-5.0.19-core-image-minimal-qemux86-64')).toEqual({
      kernel: `${Y}/yocto-5.0.19/machines/qemu/qemux86-64/bzImage-qemux86-64.bin`,
      rootfs: `${Y}/yocto-5.0.19/machines/qemu/qemux86-64/core-image-minimal-qemux86-64.rootfs.ext4`,
      qemuboot: `${Y}/yocto-5.0.19/machines/qemu/qemux86-64/core-image-minimal-qemux86-64.rootfs.qemuboot.conf`,
    });
    expect(urls('yocto-5.2.4-core-image-full-cmdline-qemuarm64').rootfs).toBe(
      `${Y}/yocto-5.2.4/machines/qemu/qemuarm64/core-image-full-cmdline-qemuarm64.rootfs.ext4`,
    );
  });

  it('whinlatter 5.3: the rootfs is published as ext4.zst', () => {
    expect(urls('yocto-5.3.4-core-image-minimal-qemuarm64')).toEqual({
      kernel: `${Y}/yocto-5.3.4/machines/qemu/qemuarm64/Image-qemuarm64.bin`,
      rootfs: `${Y}/yocto-5.3.4/machines/qemu/qemuarm64/core-image-minimal-qemuarm64.rootfs.ext4.zst`,
      qemuboot: `${Y}/yocto-5.3.4/machines/qemu/qemuarm64/core-image-minimal-qemuarm64.rootfs.qemuboot.conf`,
    });
  });

  it('checks every file against its published .sha256sum and knows arch and board', () => {
    for (const e of entries) {
      for (const f of e.files) expect(f.sha256Url).toBe(`${f.url}.sha256sum`);
      expect(e.machine === 'qemuarm64' ? [e.arch, e.board] : [e.arch, e.board]).toEqual(
        e.machine === 'qemuarm64' ? ['aarch64', 'virt'] : ['x86_64', 'q35'],
      );
    }
  });
});

const good = {
  version: 1,
  name: 'My images',
  images: [
    {
      id: 'my-image',
      name: 'My image',
      machine: 'qemuarm64',
      arch: 'aarch64',
      board: 'virt',
      baseUrl: 'https://example.test/images/',
      files: [
        { role: 'kernel', name: 'Image', sha256: 'a'.repeat(64) },
        {
          role: 'rootfs',
          name: 'rootfs.ext4.xz',
          sha256Url: 'https://example.test/images/rootfs.ext4.xz.sha256sum',
        },
      ],
    },
  ],
};

function withChange(fn: (c: typeof good & Record<string, unknown>) => void): unknown {
  const c = structuredClone(good) as typeof good & Record<string, unknown>;
  fn(c);
  return c;
}

describe('user catalogue JSON', () => {
  it('accepts the documented format and resolves URLs against baseUrl', () => {
    const cat = parseCatalogue(good, 'mine.json');
    const [e] = entriesOf(cat, 'user', cat.name);
    expect(e!.files.map((f) => f.url)).toEqual([
      'https://example.test/images/Image',
      'https://example.test/images/rootfs.ext4.xz',
    ]);
  });

  const bad: Array<[string, unknown, string]> = [
    [
      'wrong version',
      withChange((c) => ((c as { version: number }).version = 2)),
      'catalogue mine.json: version: Invalid input: expected 1',
    ],
    ['unknown key', withChange((c) => (c.extra = 1)), 'catalogue mine.json: Unrecognized key: "extra"'],
    [
      'bad id',
      withChange((c) => (c.images[0]!.id = 'has space')),
      'catalogue mine.json: images[0].id: ids are letters, digits and ._:@+-',
    ],
    [
      'bad digest',
      withChange((c) => ((c.images[0]!.files[0] as { sha256: string }).sha256 = 'xyz')),
      'catalogue mine.json: images[0].files[0].sha256: must be 64 hex digits',
    ],
    [
      'path as name',
      withChange((c) => (c.images[0]!.files[0]!.name = '../../etc/passwd')),
      'catalogue mine.json: images[0].files[0].name: must be a file name, not a path',
    ],
    [
      'no checksum',
      withChange((c) => delete (c.images[0]!.files[0] as { sha256?: string }).sha256),
      'catalogue mine.json: images[0].files[0]: needs sha256, sha256Url or md5Url',
    ],
    [
      'no url',
      withChange((c) => delete (c.images[0] as { baseUrl?: string }).baseUrl),
      'catalogue mine.json: images[0].files: every file needs a url, or the image a baseUrl',
    ],
    [
      'file: url',
      withChange((c) => (c.images[0]!.baseUrl = 'file:///etc/')),
      'catalogue mine.json: images[0].baseUrl: must be an http or https URL',
    ],
    [
      'no disk',
      withChange((c) => c.images[0]!.files.pop()),
      'catalogue mine.json: images[0].files: needs a file with role rootfs or disk',
    ],
    [
      'bad arch',
      withChange((c) => (c.images[0]!.arch = 'arm64')),
      'catalogue mine.json: images[0].arch: Invalid option: expected one of "aarch64"|"x86_64"|"arm"|"riscv64"',
    ],
    [
      'duplicate ids',
      withChange((c) => c.images.push(structuredClone(c.images[0]!))),
      'catalogue mine.json: images: image ids must be unique',
    ],
  ];
  for (const [what, json, message] of bad) {
    it(`refuses ${what} with one line`, () => {
      let err: Error | undefined;
      try {
        parseCatalogue(json, 'mine.json');
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toBe(message);
      expect(err?.message).not.toContain('\n');
    });
  }

  it('says when the file is not JSON, in one line', () => {
    expect(() => parseCatalogueText('{"version": 1,', 'mine.json')).toThrow(
      /^catalogue mine\.json: not JSON \([^\n]+\)$/,
    );
  });

  it('loads from a path, and says which path it cannot read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stacklab-cat-'));
    const file = path.join(dir, 'cat.json');
    fs.writeFileSync(file, JSON.stringify(good));
    expect((await loadCatalogue(file)).images[0]!.id).toBe('my-image');
    await expect(loadCatalogue(path.join(dir, 'nope.json'))).rejects.toThrow(
      /^catalogue .*nope\.json: cannot read it \(ENOENT\)$/,
    );
    fs.rmSync(dir, { recursive: true });
  });
});

describe('checksum files', () => {
  const hex = 'ab'.repeat(32);
  it('reads the autobuilder format "<hex> <name>" and sha256sum\'s "<hex>  *<name>"', () => {
    expect(
      parseChecksumFile(
        `${hex} core-image-minimal-qemuarm64.rootfs.ext4\n`,
        'core-image-minimal-qemuarm64.rootfs.ext4',
        'sha256',
      ),
    ).toBe(hex);
    expect(
      parseChecksumFile(`${'cd'.repeat(32)}  *other\n${hex}  *wanted.img\n`, 'wanted.img', 'sha256'),
    ).toBe(hex);
    expect(parseChecksumFile(`${'0f'.repeat(16)}  old.ext4`, 'old.ext4', 'md5')).toBe('0f'.repeat(16));
  });
  it('refuses a file that does not list the name among several', () => {
    expect(() => parseChecksumFile(`${hex}  a\n${hex}  b\n`, 'c', 'sha256')).toThrow(
      'the sha256 checksum file for c does not list it',
    );
  });
});

describe('demo guests', () => {
  it('are read from guests.json under STACKLAB_GUESTS', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stacklab-guests-'));
    fs.writeFileSync(
      path.join(dir, 'guests.json'),
      JSON.stringify([{ name: 'arm64-busybox', deployDir: 'arm64' }]),
    );
    const got = demoEntries({ STACKLAB_GUESTS: dir });
    expect(got.map((g) => [g.id, g.source, g.deployDir])).toEqual([
      ['arm64-busybox', 'demo', path.join(dir, 'arm64')],
    ]);
    expect(demoEntries({ STACKLAB_GUESTS: path.join(dir, 'none') })).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });
});
