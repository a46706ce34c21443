// binfmt_misc: the kernel feature that hands a foreign program to its emulator when you
// execute it. We read its state from the files the kernel writes (status, one file per
// entry) and register or remove a qemu-user interpreter on request — that needs root.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { archNames, archOfElf, normalizeArch, sameEmulator } from '../../common/arch.ts';
import { readElf } from './elf.ts';
import { type RootWriteOptions, writeAsRoot } from './escalate.ts';
import { findQemuUser, nativeArches } from './find.ts';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

export interface BinfmtFlags {
  /** Preserve argv[0]: the interpreter gets the original name as an extra argument. */
  P: boolean;
  /** Open the binary and pass a file descriptor instead of a path. */
  O: boolean;
  /** Credentials from the binary (setuid), implies O. */
  C: boolean;
  /** Open the interpreter at registration: works in chroots and other mount namespaces. */
  F: boolean;
}

export interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: BinfmtFlags;
  /** Magic entries: offset and hex bytes as the kernel prints them. */
  offset?: number;
  magic?: string;
  mask?: string;
  /** Extension entries: the extension without its dot. */
  extension?: string;
  /** The architecture an ELF-matching entry recognises (from e_machine in its magic). */
  arch?: string;
}

export interface BinfmtStatus {
  dir: string;
  mounted: boolean;
  /** The global switch (the `status` file); undefined when not mounted. */
  enabled?: boolean;
  entries: BinfmtEntry[];
  /** Why the list is empty or incomplete, in one line. */
  message?: string;
}

function notMounted(dir: string): string {
  return `binfmt_misc is not mounted at ${dir} (as root: mount -t binfmt_misc binfmt_misc ${dir})`;
}

/** Parses one entry file in the kernel's format (fs/binfmt_misc.c, entry_status). */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry {
  const bad = (why: string) => new Error(`binfmt_misc entry "${name}" is not in the kernel's format: ${why}`);
  const lines = text.split('\n').filter((l) => l.length > 0);
  const state = lines.shift();
  if (state !== 'enabled' && state !== 'disabled')
    throw bad(`first line is "${state ?? ''}", not enabled/disabled`);
  const e: BinfmtEntry = {
    name,
    enabled: state === 'enabled',
    interpreter: '',
    flags: { P: false, O: false, C: false, F: false },
  };
  for (const line of lines) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1);
    switch (key) {
      case 'interpreter':
        e.interpreter = value;
        break;
      case 'flags:':
        for (const f of value) {
          if (f !== 'P' && f !== 'O' && f !== 'C' && f !== 'F') throw bad(`unknown flag "${f}"`);
          e.flags[f] = true;
        }
        break;
      case 'offset':
        if (!/^\d+$/.test(value)) throw bad(`offset "${value}" is not a number`);
        e.offset = Number(value);
        break;
      case 'magic':
      case 'mask':
        if (!/^([0-9a-f]{2})+$/.test(value)) throw bad(`${key} "${value}" is not hex bytes`);
        e[key] = value;
        break;
      case 'extension':
        e.extension = value.replace(/^\./, '');
        break;
      default:
        throw bad(`unexpected line "${line}"`);
    }
  }
  if (!e.interpreter) throw bad('no interpreter line');
  if (e.magic === undefined && e.extension === undefined) throw bad('neither magic nor extension');
  if (e.mask !== undefined && e.mask.length !== e.magic?.length) throw bad('mask and magic differ in length');
  e.arch = elfArchOfMagic(e);
  return e;
}

/** The architecture whose ELF programs an entry matches: the magic (under its mask) must pin the ELF header fields. */
function elfArchOfMagic(e: BinfmtEntry): string | undefined {
  if (e.magic === undefined || e.offset !== 0) return undefined;
  const magic = Buffer.from(e.magic, 'hex');
  const mask = e.mask ? Buffer.from(e.mask, 'hex') : Buffer.alloc(magic.length, 0xff);
  if (magic.length < 20) return undefined;
  const m = (i: number) => magic[i]! & mask[i]!;
  if (m(0) !== 0x7f || m(1) !== 0x45 || m(2) !== 0x4c || m(3) !== 0x46) return undefined;
  if (mask[4] !== 0xff || mask[5] !== 0xff || mask[18] !== 0xff || mask[19] !== 0xff) return undefined;
  const elfClass = magic[4] === 1 ? 32 : magic[4] === 2 ? 64 : undefined;
  const endianness = magic[5] === 1 ? 'little' : magic[5] === 2 ? 'big' : undefined;
  if (!elfClass || !endianness) return undefined;
  const machine = endianness === 'little' ? magic.readUInt16LE(18) : magic.readUInt16BE(18);
  return archOfElf({ machine, elfClass, endianness });
}

/** Reads binfmt_misc's state from its mount point (or a prepared directory in the same format). */
export function binfmtStatus(dir = BINFMT_DIR): BinfmtStatus {
  const statusFile = path.join(dir, 'status');
  if (!existsSync(statusFile)) return { dir, mounted: false, entries: [], message: notMounted(dir) };
  const global = readFileSync(statusFile, 'utf8').trim();
  if (global !== 'enabled' && global !== 'disabled') {
    throw new Error(`${statusFile} says "${global}", not enabled/disabled: is ${dir} a binfmt_misc mount?`);
  }
  const entries: BinfmtEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === 'status' || name === 'register' || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    if (!statSync(file).isFile()) continue;
    entries.push(parseBinfmtEntry(name, readFileSync(file, 'utf8')));
  }
  const enabled = global === 'enabled';
  return {
    dir,
    mounted: true,
    enabled,
    entries,
    message: enabled ? undefined : 'binfmt_misc is switched off (as root: echo 1 > status): no entry is used',
  };
}

// ELF identification fields (System V ABI): e_ident is 16 bytes, then e_type and e_machine.
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
const EI_OSABI = 7;
const EI_NIDENT = 16;
const ET_EXEC = 2; // ET_DYN (3) differs in the low bit only: the mask lets both through.

/** Magic and mask matching an architecture's executables: ELF, its class and byte order, any OS ABI, ET_EXEC or ET_DYN, its e_machine. */
export function elfBinfmtPattern(arch: string): { magic: Buffer; mask: Buffer } {
  const a = archNames(arch);
  const le = a.endianness === 'little';
  const magic = Buffer.alloc(EI_NIDENT + 4, 0);
  const mask = Buffer.alloc(EI_NIDENT + 4, 0xff);
  magic.write('\x7fELF', 0, 'latin1');
  magic[EI_CLASS] = a.elfClass === 64 ? 2 : 1;
  magic[EI_DATA] = le ? 1 : 2;
  magic[EI_VERSION] = 1;
  // Programs say System V (0) or GNU/Linux (3) here, both run the same.
  mask[EI_OSABI] = 0;
  const u16 = (buf: Buffer, v: number, at: number) =>
    le ? buf.writeUInt16LE(v, at) : buf.writeUInt16BE(v, at);
  u16(magic, ET_EXEC, EI_NIDENT);
  u16(mask, 0xfffe, EI_NIDENT);
  u16(magic, a.elfMachine, EI_NIDENT + 2);
  return { magic, mask };
}

const hexEscape = (b: Buffer) => [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');

/** The name Stacklab registers an architecture's interpreter under (the name distributions use too). */
export const entryName = (arch: string) => archNames(arch).qemuUser;

/** The line written to binfmt_misc/register: `:name:M:offset:magic:mask:interpreter:flags`. */
export function registrationLine(arch: string, interpreter: string, flags = 'F'): string {
  if (!path.isAbsolute(interpreter))
    throw new Error(`the interpreter must be an absolute path, not "${interpreter}"`);
  if (/[:\n]/.test(interpreter))
    throw new Error(
      `the interpreter path "${interpreter}" contains ":" or a newline, which binfmt_misc cannot take`,
    );
  if (!/^[POCF]*$/.test(flags)) throw new Error(`binfmt flags "${flags}" must be letters from POCF`);
  const { magic, mask } = elfBinfmtPattern(arch);
  return `:${entryName(arch)}:M:0:${hexEscape(magic)}:${hexEscape(mask)}:${interpreter}:${flags}`;
}

export interface BinfmtChangeOptions extends Pick<RootWriteOptions, 'env' | 'onNote' | 'escalate'> {
  dir?: string;
  /** Default: the static qemu-user findQemuUser finds. */
  interpreter?: string;
}

function mountedStatus(dir: string): BinfmtStatus {
  const s = binfmtStatus(dir);
  if (!s.mounted) throw new Error(notMounted(dir));
  return s;
}

/** Registers qemu-user for an architecture with the F flag; returns the kernel's new entry. */
export async function registerInterpreter(
  arch: string,
  opts: BinfmtChangeOptions = {},
): Promise<BinfmtEntry> {
  const canonical = normalizeArch(arch);
  const dir = opts.dir ?? BINFMT_DIR;
  if (nativeArches().includes(canonical)) {
    throw new Error(`${canonical} is this machine's own architecture: its programs run without an emulator`);
  }
  const before = mountedStatus(dir);
  const name = entryName(canonical);
  const existing = before.entries.find((e) => e.name === name || (e.arch && sameEmulator(e.arch, canonical)));
  if (existing) {
    throw new Error(
      `${canonical} programs are already handled by binfmt entry "${existing.name}" (${existing.interpreter}); remove it first with: stacklab binfmt unregister ${canonical}`,
    );
  }
  const interpreter = opts.interpreter ?? (await findQemuUser(canonical, { env: opts.env })).path;
  if (!existsSync(interpreter)) throw new Error(`interpreter ${interpreter} does not exist`);
  const elf = await readElf(interpreter).catch(() => undefined);
  if (elf?.interpreter) {
    throw new Error(
      `${interpreter} is dynamically linked: binfmt's F flag needs a static emulator such as qemu-${canonical}-static (apt-get install qemu-user-static)`,
    );
  }
  const line = registrationLine(canonical, interpreter);
  await writeAsRoot(path.join(dir, 'register'), `${line}\n`, {
    why: `registering ${name} with binfmt_misc`,
    hint: `stacklab binfmt register ${canonical}`,
    env: opts.env,
    onNote: opts.onNote,
    escalate: opts.escalate,
  });
  const added = binfmtStatus(dir).entries.find((e) => e.name === name);
  if (!added)
    throw new Error(
      `wrote the registration for ${name} but no entry appeared in ${dir}: is it a real binfmt_misc mount?`,
    );
  return added;
}

/** Removes the entry that runs an architecture's programs (Stacklab's or the distribution's qemu-<arch>). */
export async function unregisterInterpreter(
  arch: string,
  opts: BinfmtChangeOptions = {},
): Promise<BinfmtEntry> {
  const canonical = normalizeArch(arch);
  const dir = opts.dir ?? BINFMT_DIR;
  const before = mountedStatus(dir);
  const name = entryName(canonical);
  const entry = before.entries.find((e) => e.name === name);
  if (!entry) {
    const others = before.entries.filter((e) => e.arch && sameEmulator(e.arch, canonical)).map((e) => e.name);
    throw new Error(
      others.length
        ? `no entry called ${name}; ${canonical} is handled by ${others.join(', ')}, which Stacklab leaves alone (as root: echo -1 > ${path.join(dir, others[0]!)})`
        : `no binfmt_misc entry for ${canonical} in ${dir}: nothing to remove`,
    );
  }
  await writeAsRoot(path.join(dir, name), '-1\n', {
    why: `removing ${name} from binfmt_misc`,
    hint: `stacklab binfmt unregister ${canonical}`,
    env: opts.env,
    onNote: opts.onNote,
    escalate: opts.escalate,
  });
  if (existsSync(path.join(dir, name)))
    throw new Error(`wrote -1 to ${path.join(dir, name)} but the entry is still there`);
  return entry;
}
