// Removing one node from a flattened device tree (the .dtb format), in place: its tokens are
// overwritten with FDT_NOP, which every FDT reader skips, so no offsets move.
const FDT_MAGIC = 0xd00dfeed;
const BEGIN_NODE = 1;
const END_NODE = 2;
const PROP = 3;
const NOP = 4;
const END = 9;

const align4 = (n: number) => (n + 3) & ~3;

/** Returns a copy of `dtb` without the node at `nodePath` (e.g. /soc/serial@7e201000/bluetooth). */
export function removeFdtNode(dtb: Buffer, nodePath: string): Buffer {
  const out = Buffer.from(dtb);
  if (out.readUInt32BE(0) !== FDT_MAGIC) throw new Error('not a flattened device tree (bad magic)');
  const structOff = out.readUInt32BE(8);
  const stack: string[] = [];
  let start = -1;
  let depthAtStart = -1;
  let p = structOff;
  for (;;) {
    const token = out.readUInt32BE(p);
    if (token === BEGIN_NODE) {
      const nameEnd = out.indexOf(0, p + 4);
      const name = out.toString('latin1', p + 4, nameEnd);
      stack.push(name);
      const here = `/${stack.slice(1).join('/')}`;
      if (start < 0 && here === nodePath) {
        start = p;
        depthAtStart = stack.length;
      }
      p = align4(nameEnd + 1);
    } else if (token === END_NODE) {
      if (start >= 0 && stack.length === depthAtStart) {
        for (let q = start; q < p + 4; q += 4) out.writeUInt32BE(NOP, q);
        return out;
      }
      stack.pop();
      p += 4;
    } else if (token === PROP) {
      const len = out.readUInt32BE(p + 4);
      p = align4(p + 12 + len);
    } else if (token === NOP) {
      p += 4;
    } else if (token === END) {
      break;
    } else {
      throw new Error(`corrupt device tree: token ${token} at ${p}`);
    }
  }
  throw new Error(`device tree has no node ${nodePath}`);
}
