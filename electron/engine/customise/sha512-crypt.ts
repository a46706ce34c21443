// SHA-512 crypt ($6$), the password hash /etc/shadow and Pi OS's userconf.txt expect,
// written from Ulrich Drepper's published specification ("Unix crypt using SHA-256 and
// SHA-512") over node:crypto, so no native crypt(3) binding is needed on any OS.
import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `n` bytes taken from `digest` repeated as often as needed. */
function repeatTo(digest: Buffer, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += digest.length) digest.copy(out, i, 0, Math.min(digest.length, n - i));
  return out;
}

/** The spec's base-64 of three bytes, least significant six bits first. */
function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let s = '';
  for (let i = 0; i < n; i++) {
    s += ALPHABET[w & 0x3f];
    w >>>= 6;
  }
  return s;
}

/** A random 16-character salt from the crypt alphabet. */
export function randomSalt(): string {
  const bytes = randomBytes(SALT_MAX);
  return [...bytes].map((b) => ALPHABET[b & 0x3f]).join('');
}

/**
 * `$6$<salt>$<hash>` (or `$6$rounds=N$<salt>$<hash>` when rounds is given). The salt is cut
 * to 16 characters and rounds clamped to 1000..999999999, as the specification says.
 */
export function sha512Crypt(password: string, salt: string = randomSalt(), rounds?: number): string {
  if (/[$:\n]/.test(salt)) throw new Error('a crypt salt cannot contain "$", ":" or a newline');
  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(salt.slice(0, SALT_MAX), 'utf8');
  const R =
    rounds === undefined ? ROUNDS_DEFAULT : Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, Math.floor(rounds)));

  const B = sha512(P, S, P);
  const a = createHash('sha512');
  a.update(P);
  a.update(S);
  a.update(repeatTo(B, P.length));
  for (let n = P.length; n > 0; n >>= 1) a.update(n & 1 ? B : P);
  let A = a.digest();

  const DP = sha512(...Array.from({ length: P.length }, () => P));
  const Pseq = repeatTo(DP, P.length);
  const DS = sha512(...Array.from({ length: 16 + A[0]! }, () => S));
  const Sseq = repeatTo(DS, S.length);

  for (let i = 0; i < R; i++) {
    const c = createHash('sha512');
    c.update(i & 1 ? Pseq : A);
    if (i % 3 !== 0) c.update(Sseq);
    if (i % 7 !== 0) c.update(Pseq);
    c.update(i & 1 ? A : Pseq);
    A = c.digest();
  }

  // Bytes are emitted in triples (k, k+21, k+42), rotated by k mod 3, then the last byte.
  let out = '';
  for (let k = 0; k < 21; k++) {
    const t = [A[k]!, A[k + 21]!, A[k + 42]!];
    const r = k % 3;
    const [x, y, z] = r === 0 ? t : r === 1 ? [t[1]!, t[2]!, t[0]!] : [t[2]!, t[0]!, t[1]!];
    out += b64From24(x!, y!, z!, 4);
  }
  out += b64From24(0, 0, A[63]!, 2);
  const roundsPart = rounds === undefined ? '' : `rounds=${R}$`;
  return `$6$${roundsPart}${S.toString('utf8')}$${out}`;
}

/** True when `password` hashes to `hash` (a `$6$` string). */
export function verifySha512Crypt(password: string, hash: string): boolean {
  const m = /^\$6\$(?:rounds=(\d+)\$)?([^$]*)\$/.exec(hash);
  if (!m) return false;
  return sha512Crypt(password, m[2], m[1] === undefined ? undefined : Number(m[1])) === hash;
}
