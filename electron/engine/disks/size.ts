// Disk sizes as people type them (256M, 4G, 1.5G, 1073741824) and as we print them.
const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

export function parseSize(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text <= 0)
      throw new Error(`a disk size must be a positive whole number of bytes: ${text}`);
    return text;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m)
    throw new Error(
      `not a size: ${JSON.stringify(text).slice(0, 40)} (write e.g. 512M, 4G or a number of bytes)`,
    );
  const bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`not a usable size: ${text}`);
  return bytes;
}

/** 256 MiB, 4 GiB, 1.5 GiB. */
export function formatSize(bytes: number): string {
  for (const [u, n] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= n) return `${Number((bytes / n).toFixed(2))} ${u}`;
  }
  return `${bytes} bytes`;
}

/** A short label for file names: 4G, 300M. */
export function sizeLabel(bytes: number): string {
  if (bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30}G`;
  if (bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20}M`;
  return String(bytes);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
