// Renders build/icon.svg into every icon the packages need, so packaging never has to
// fetch electron-builder's icon converter:
//   build/icon.png            1024 px (electron-builder's default source)
//   build/icons/NxN.png       16…1024 px (Linux: AppImage and deb install these sizes)
//   build/icon.icns           macOS (PNG entries ic04…ic14)
//   build/icon.ico            Windows / NSIS (BMP entries below 256 px, PNG at 256 px)
// Needs rsvg-convert (Debian package librsvg2-bin).   npx tsx scripts/bundle/icons.ts
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { log, REPO_ROOT } from './common.ts';

const BUILD = path.join(REPO_ROOT, 'build');
export const ICON_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024];

function render(size: number): Buffer {
  const args = ['-w', String(size), '-h', String(size), '-f', 'png', path.join(BUILD, 'icon.svg')];
  try {
    return execFileSync('rsvg-convert', args, { maxBuffer: 64 << 20 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('rsvg-convert: not installed (Debian package librsvg2-bin)');
    }
    throw err;
  }
}

/** ICNS: 'icns' + total length, then (type, length incl. 8-byte header, PNG data) per entry. */
function icns(png: Map<number, Buffer>): Buffer {
  const types: Array<[string, number]> = [
    ['icp4', 16],
    ['icp5', 32],
    ['icp6', 64],
    ['ic07', 128],
    ['ic08', 256],
    ['ic09', 512],
    ['ic10', 1024], // 512@2x
    ['ic11', 32], // 16@2x
    ['ic12', 64], // 32@2x
    ['ic13', 256], // 128@2x
    ['ic14', 512], // 256@2x
  ];
  const chunks = types.map(([type, size]) => {
    const data = png.get(size) as Buffer;
    const head = Buffer.alloc(8);
    head.write(type, 0, 'latin1');
    head.writeUInt32BE(data.length + 8, 4);
    return Buffer.concat([head, data]);
  });
  const head = Buffer.alloc(8);
  head.write('icns', 0, 'latin1');
  head.writeUInt32BE(8 + chunks.reduce((n, c) => n + c.length, 0), 4);
  return Buffer.concat([head, ...chunks]);
}

/** RGBA pixels of an 8-bit RGBA, non-interlaced PNG (what rsvg-convert writes). */
function decodePng(png: Buffer): { width: number; height: number; rgba: Buffer } {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  if (png[24] !== 8 || png[25] !== 6 || png[28] !== 0)
    throw new Error('icon PNG is not 8-bit RGBA, non-interlaced');
  const idat: Buffer[] = [];
  for (let o = 8; o < png.length; ) {
    const len = png.readUInt32BE(o);
    if (png.toString('latin1', o + 4, o + 8) === 'IDAT') idat.push(png.subarray(o + 8, o + 8 + len));
    o += len + 12;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  const rgba = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const left = x >= 4 ? (rgba[y * stride + x - 4] as number) : 0;
      const up = y > 0 ? (rgba[(y - 1) * stride + x] as number) : 0;
      const upLeft = x >= 4 && y > 0 ? (rgba[(y - 1) * stride + x - 4] as number) : 0;
      let pred = 0;
      if (filter === 1) pred = left;
      else if (filter === 2) pred = up;
      else if (filter === 3) pred = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - upLeft);
        pred = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      rgba[y * stride + x] = ((line[x] as number) + pred) & 0xff;
    }
  }
  return { width, height, rgba };
}

/** A 32-bit BMP (DIB) icon entry: bottom-up BGRA rows plus an all-opaque AND mask. */
function dib(png: Buffer): Buffer {
  const { width, height, rgba } = decodePng(png);
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40, 0);
  header.writeInt32LE(width, 4);
  header.writeInt32LE(height * 2, 8); // XOR bitmap + AND mask
  header.writeUInt16LE(1, 12);
  header.writeUInt16LE(32, 14);
  const pixels = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 4;
      const d = ((height - 1 - y) * width + x) * 4;
      pixels[d] = rgba[s + 2] as number;
      pixels[d + 1] = rgba[s + 1] as number;
      pixels[d + 2] = rgba[s] as number;
      pixels[d + 3] = rgba[s + 3] as number;
    }
  }
  const mask = Buffer.alloc((((width + 31) >> 5) << 2) * height); // alpha channel rules; mask all zero
  return Buffer.concat([header, pixels, mask]);
}

function ico(png: Map<number, Buffer>): Buffer {
  const sizes = [16, 24, 32, 48, 64, 128, 256];
  const images = sizes.map((s) => (s >= 256 ? (png.get(s) as Buffer) : dib(png.get(s) as Buffer)));
  const head = Buffer.alloc(6 + 16 * sizes.length);
  head.writeUInt16LE(0, 0);
  head.writeUInt16LE(1, 2); // 1 = icon
  head.writeUInt16LE(sizes.length, 4);
  let offset = head.length;
  sizes.forEach((s, i) => {
    const e = 6 + 16 * i;
    head[e] = s >= 256 ? 0 : s; // 0 means 256
    head[e + 1] = s >= 256 ? 0 : s;
    head.writeUInt16LE(1, e + 4); // planes
    head.writeUInt16LE(32, e + 6); // bits per pixel
    head.writeUInt32LE((images[i] as Buffer).length, e + 8);
    head.writeUInt32LE(offset, e + 12);
    offset += (images[i] as Buffer).length;
  });
  return Buffer.concat([head, ...images]);
}

function main(): void {
  readFileSync(path.join(BUILD, 'icon.svg'));
  const png = new Map<number, Buffer>();
  mkdirSync(path.join(BUILD, 'icons'), { recursive: true });
  for (const s of ICON_SIZES) {
    png.set(s, render(s));
    writeFileSync(path.join(BUILD, 'icons', `${s}x${s}.png`), png.get(s) as Buffer);
  }
  writeFileSync(path.join(BUILD, 'icon.png'), png.get(1024) as Buffer);
  writeFileSync(path.join(BUILD, 'icon.icns'), icns(png));
  writeFileSync(path.join(BUILD, 'icon.ico'), ico(png));
  log(`icons: build/icon.png, build/icons/{${ICON_SIZES.join(',')}}, build/icon.icns, build/icon.ico`);
}

main();
