// Library ordering: demo guests first (they boot in seconds), then what can boot, then the rest.
import type { ImageSummary } from '../../../electron/common/contract.ts';

const SOURCE_RANK: Record<ImageSummary['source'], number> = {
  demo: 0,
  yocto: 1,
  build: 2,
  download: 3,
  import: 4,
};

export function sortImages(images: readonly ImageSummary[]): ImageSummary[] {
  return [...images].sort(
    (a, b) =>
      SOURCE_RANK[a.source] - SOURCE_RANK[b.source] ||
      Number(b.bootable) - Number(a.bootable) ||
      a.name.localeCompare(b.name) ||
      a.id.localeCompare(b.id),
  );
}

export const SOURCE_LABEL: Record<ImageSummary['source'], string> = {
  demo: 'Demo guest',
  yocto: 'Yocto release',
  build: 'Built here',
  download: 'Downloaded',
  import: 'Imported',
};

/** "x86-64", "Arm64" for the labels people know, the raw name otherwise. */
export function archLabel(arch: string | undefined): string {
  switch (arch) {
    case 'x64':
    case 'x86_64':
    case 'amd64':
      return 'x86-64';
    case 'arm64':
    case 'aarch64':
      return 'Arm64';
    case 'arm':
    case 'armv7l':
      return 'Arm';
    case undefined:
      return '';
    default:
      return arch;
  }
}
