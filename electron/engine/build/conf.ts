// The text of a workspace's bitbake configuration: conf/local.conf, conf/bblayers.conf and
// conf/multiconfig/<mc>.conf. Pure functions of the user's choice and the host, so unit
// tests read exactly what bitbake will read.
import type { Multiconfig } from './targets.ts';
import { isRaspberryPi } from './targets.ts';

export interface HostResources {
  cores: number;
  memBytes: number;
}

export interface Threads {
  bbThreads: number;
  makeJobs: number;
}

const GiB = 1024 ** 3;

/**
 * BB_NUMBER_THREADS and PARALLEL_MAKE from cores and memory. Heavy tasks (gcc, glibc,
 * the kernel, qemu) peak around 2 GB per compiler process and an OOM kill mid-build is far
 * worse than a slower build, so both are capped at one per core and one per 2 GB of RAM.
 */
export function buildThreads({ cores, memBytes }: HostResources): Threads {
  const byMemory = Math.floor(memBytes / (2 * GiB));
  const n = Math.max(1, Math.min(Math.floor(cores), byMemory));
  return { bbThreads: n, makeJobs: n };
}

export interface LocalConfInput {
  image: string;
  machine: string;
  downloadsDir: string;
  sstateDir: string;
  resources: HostResources;
  multiconfig?: Multiconfig;
  /** Trim the target qemu recipe to qemu-system-x86_64 without a display (host image). */
  nestedQemu?: boolean;
  /** false: CONNECTIVITY_CHECK_URIS = "" (fail at the first fetch instead of at start). */
  connectivityCheck?: boolean;
  /** true: BB_NO_NETWORK = "1" (build only from DL_DIR). */
  offline?: boolean;
}

/** A bitbake string literal: values here are paths and names, never user prose. */
function q(value: string): string {
  if (/["\\\n]/.test(value)) throw new Error(`cannot put ${JSON.stringify(value)} in a bitbake conf file`);
  return `"${value}"`;
}

export function localConf(input: LocalConfInput): string {
  const { bbThreads, makeJobs } = buildThreads(input.resources);
  const lines: string[] = [
    `# Written by Stacklab for ${input.image} on ${input.machine}. Stacklab rewrites this file;`,
    '# put your own settings in conf/stacklab-user.conf (included last, so they win).',
    '',
    `MACHINE = ${q(input.machine)}`,
    'DISTRO = "poky"',
    '',
    '# Downloads and shared state are shared by every Stacklab workspace: a second image or',
    '# release starts from what the first one fetched and built.',
    `DL_DIR = ${q(input.downloadsDir)}`,
    `SSTATE_DIR = ${q(input.sstateDir)}`,
    '',
    '# One task and one make job per core, but no more than one per 2 GB of RAM.',
    `BB_NUMBER_THREADS = "${bbThreads}"`,
    `PARALLEL_MAKE = "-j ${makeJobs}"`,
    '',
    "# Remove each recipe's work directory once it is built: a core-image-minimal build",
    '# then needs tens of GB instead of a hundred.',
    'INHERIT += "rm_work"',
    '',
    '# Log in as root with no password (what debug-tweaks did; walnascar removed that name).',
    'EXTRA_IMAGE_FEATURES ?= "allow-empty-password empty-root-password allow-root-login"',
    '',
    'USER_CLASSES ?= "buildstats"',
    'PATCHRESOLVE = "noop"',
    '# Stop before a full disk corrupts the build (the meta-poky template values).',
    `BB_DISKMON_DIRS ??= "\\
    STOPTASKS,\${TMPDIR},1G,100K \\
    STOPTASKS,\${DL_DIR},1G,100K \\
    STOPTASKS,\${SSTATE_DIR},1G,100K \\
    STOPTASKS,/tmp,100M,100K \\
    HALT,\${TMPDIR},100M,1K \\
    HALT,\${DL_DIR},100M,1K \\
    HALT,\${SSTATE_DIR},100M,1K \\
    HALT,/tmp,10M,1K"`,
  ];
  if (input.multiconfig) {
    lines.push(
      '',
      `# ${input.image} carries an image built for ${input.multiconfig.machine}: one build,`,
      `# two machines (conf/multiconfig/${input.multiconfig.name}.conf).`,
      `BBMULTICONFIG = ${q(input.multiconfig.name)}`,
    );
  }
  if (input.nestedQemu) {
    lines.push(
      '',
      '# The nested guest needs one emulator and no display: build qemu for the target with',
      '# only x86_64 and without SDL/OpenGL, hours less than every target with graphics.',
      'QEMU_TARGETS:pn-qemu = "x86_64"',
      'PACKAGECONFIG:pn-qemu = "fdt pie slirp"',
    );
  }
  if (isRaspberryPi(input.machine)) {
    lines.push(
      '',
      "# Serial console on the Pi's UART (enable_uart=1 in config.txt, console= in cmdline.txt).",
      '# It has to be here, not in the image recipe: rpi-config and rpi-cmdline read it.',
      'ENABLE_UART = "1"',
    );
  }
  if (input.connectivityCheck === false) {
    lines.push('', '# No start-up network probe: a missing network shows up at the first fetch.');
    lines.push('CONNECTIVITY_CHECK_URIS = ""');
  }
  if (input.offline) {
    lines.push('', '# Build only from what DL_DIR already holds.', 'BB_NO_NETWORK = "1"');
  }
  lines.push('', 'CONF_VERSION = "2"', '', 'include conf/stacklab-user.conf', '');
  return lines.join('\n');
}

/** Absolute layer directories, in BBLAYERS order. */
export function bblayersConf(layers: readonly string[]): string {
  for (const l of layers) q(l);
  const entries = layers.map((l) => `  ${l} \\`);
  return [
    '# Written by Stacklab: absolute paths, like oe-init-build-env writes them.',
    '# meta-poky refuses a bblayers.conf without this version.',
    'POKY_BBLAYERS_CONF_VERSION = "2"',
    '',
    `BBPATH = "\${TOPDIR}"`,
    'BBFILES ?= ""',
    '',
    'BBLAYERS ?= " \\',
    ...entries,
    '  "',
    '',
  ].join('\n');
}

export function multiconfigConf(mc: Multiconfig): string {
  return [
    `# Multiconfig "${mc.name}": the nested guest's machine, built in the same build directory.`,
    '# Its own TMPDIR keeps the two machines apart; vm-guest-images-install.bbclass finds the',
    `# guest's deploy dir at \${TMPDIR}-${mc.name}.`,
    `MACHINE = ${q(mc.machine)}`,
    `TMPDIR .= "-\${BB_CURRENT_MC}"`,
    '',
  ].join('\n');
}
