// A block map (.bmap, format 2.0 as bmaptool reads it) for a disk image, so flashing tools can
// skip the unused parts. Mapped blocks are the ones holding any non-zero byte.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';

const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);

export function writeBmap(image: string, out: string): void {
  const size = statSync(image).size;
  const blocks = Math.ceil(size / BLOCK);
  const ranges: Array<{ first: number; last: number; sha: string }> = [];
  const fd = openSync(image, 'r');
  const buf = Buffer.alloc(BLOCK);
  let open: { first: number; hash: ReturnType<typeof createHash> } | undefined;
  const close = (last: number) => {
    if (open) ranges.push({ first: open.first, last, sha: open.hash.digest('hex') });
    open = undefined;
  };
  try {
    for (let b = 0; b < blocks; b++) {
      const n = readSync(fd, buf, 0, BLOCK, b * BLOCK);
      const data = buf.subarray(0, n);
      if (!data.equals(ZERO.subarray(0, n))) {
        open ??= { first: b, hash: createHash('sha256') };
        open.hash.update(data);
      } else {
        close(b - 1);
      }
    }
    close(blocks - 1);
  } finally {
    closeSync(fd);
  }
  const mapped = ranges.reduce((n, r) => n + r.last - r.first + 1, 0);
  const render = (fileSha: string) =>
    [
      '<?xml version="1.0" ?>',
      '<!-- Block map of a Stacklab demo image: mapped blocks are the ones with data. -->',
      '<bmap version="2.0">',
      `    <ImageSize> ${size} </ImageSize>`,
      `    <BlockSize> ${BLOCK} </BlockSize>`,
      `    <BlocksCount> ${blocks} </BlocksCount>`,
      `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
      '    <ChecksumType> sha256 </ChecksumType>',
      `    <BmapFileChecksum> ${fileSha} </BmapFileChecksum>`,
      '    <BlockMap>',
      ...ranges.map(
        (r) =>
          `        <Range chksum="${r.sha}"> ${r.first === r.last ? r.first : `${r.first}-${r.last}`} </Range>`,
      ),
      '    </BlockMap>',
      '</bmap>',
      '',
    ].join('\n');
  // The file's own checksum is taken with that field zeroed, then filled in.
  const zeroed = render('0'.repeat(64));
  writeFileSync(out, render(createHash('sha256').update(zeroed).digest('hex')));
}
