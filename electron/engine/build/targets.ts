// The images a user can ask Stacklab to build, and what each needs from a workspace:
// which MACHINEs suit it, which extra layers and whether a second machine is built
// alongside (multiconfig). The recipes live in resources/yocto/meta-stacklab.
import type { RepoName } from './releases.ts';

export interface Multiconfig {
  /** BBMULTICONFIG name; conf/multiconfig/<name>.conf. */
  name: string;
  machine: string;
}

export interface ImageTarget {
  image: string;
  summary: string;
  machines: readonly string[];
  /** Repositories beyond the core this image needs. */
  repos: readonly RepoName[];
  multiconfig?: Multiconfig;
  /** The image trims the target qemu recipe to the one emulator it carries. */
  nestedQemu?: boolean;
}

const QEMU_MACHINES = ['qemux86-64', 'qemuarm64'] as const;
export const RPI_MACHINES = ['raspberrypi3-64', 'raspberrypi4-64'] as const;

export const IMAGE_TARGETS: readonly ImageTarget[] = [
  {
    image: 'stacklab-guest-image',
    summary: 'Small guest (core-image-minimal) deployed as ext4 and qcow2',
    machines: QEMU_MACHINES,
    repos: [],
  },
  {
    image: 'stacklab-host-image',
    summary: 'qemuarm64 with qemu-system-x86_64 and the x86-64 guest inside (the seed stack)',
    machines: ['qemuarm64'],
    repos: [],
    multiconfig: { name: 'x86', machine: 'qemux86-64' },
    nestedQemu: true,
  },
  {
    image: 'stacklab-rpi-image',
    summary: 'Raspberry Pi SD card image (wic.bz2 + bmap) through meta-raspberrypi',
    machines: RPI_MACHINES,
    repos: ['meta-raspberrypi'],
  },
  {
    image: 'stacklab-builder-image',
    summary: 'qemuarm64 image that can run bitbake itself',
    machines: ['qemuarm64'],
    repos: [],
  },
  {
    image: 'core-image-minimal',
    summary: "oe-core's smallest bootable image",
    machines: [...QEMU_MACHINES, ...RPI_MACHINES],
    repos: [],
  },
];

export function imageTarget(image: string, machine: string): ImageTarget {
  const target = IMAGE_TARGETS.find((t) => t.image === image);
  if (!target) {
    throw new Error(`unknown image '${image}' (choose ${IMAGE_TARGETS.map((t) => t.image).join(', ')})`);
  }
  if (!target.machines.includes(machine)) {
    throw new Error(`${image} is not built for ${machine} (choose ${target.machines.join(', ')})`);
  }
  return target;
}

export function isRaspberryPi(machine: string): boolean {
  return machine.startsWith('raspberrypi');
}

/** Repositories a choice needs beyond the core: the image's, plus meta-raspberrypi for any Pi. */
export function extraRepos(
  target: ImageTarget,
  machine: string,
  extra: readonly RepoName[] = [],
): RepoName[] {
  const want = new Set<RepoName>([...target.repos, ...extra]);
  if (isRaspberryPi(machine)) want.add('meta-raspberrypi');
  // Fixed order: bblayers.conf stays stable whatever order the options came in.
  return (['meta-openembedded', 'meta-raspberrypi'] as const).filter((r) => want.has(r));
}
