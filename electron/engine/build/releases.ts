// The Yocto releases Stacklab can set up, and the git repositories (pinned) each needs.
//
// Up to walnascar (5.2) the core comes as one combined "poky" repository: bitbake,
// openembedded-core's meta, meta-poky and meta-yocto-bsp side by side. From whinlatter
// (5.3) poky's master is frozen and a release is three repositories: bitbake (branch
// "2.16"), openembedded-core and meta-yocto (bitbake's own default-registry
// poky-whinlatter.conf.json lists exactly these). The revisions below are the branch heads
// (or release tags) the Stacklab layer was checked against; `describe` says which tag.

export const RELEASES = ['scarthgap', 'walnascar', 'whinlatter'] as const;
export type YoctoRelease = (typeof RELEASES)[number];

export type RepoName =
  | 'poky'
  | 'bitbake'
  | 'openembedded-core'
  | 'meta-yocto'
  | 'meta-openembedded'
  | 'meta-raspberrypi';

export interface RepoPin {
  name: RepoName;
  url: string;
  branch: string;
  /** A full commit id: what gets checked out. */
  rev: string;
  /** `git describe` of rev, for people. */
  describe: string;
}

export interface ReleaseInfo {
  release: YoctoRelease;
  version: string;
  bitbake: string;
  /** 'poky': one combined repo; 'split': bitbake + openembedded-core + meta-yocto. */
  layout: 'poky' | 'split';
  repos: RepoPin[];
}

const POKY = 'https://git.yoctoproject.org/poky';
const META_OE = 'https://git.openembedded.org/meta-openembedded';
const META_RPI = 'https://git.yoctoproject.org/meta-raspberrypi';

export const RELEASE_TABLE: Record<YoctoRelease, ReleaseInfo> = {
  scarthgap: {
    release: 'scarthgap',
    version: '5.0',
    bitbake: '2.8',
    layout: 'poky',
    repos: [
      {
        name: 'poky',
        url: POKY,
        branch: 'scarthgap',
        rev: '1d54d1c4736a114e1cecbe85a0306e3814d5ce70',
        describe: 'yocto-5.0.15-87-g1d54d1c473',
      },
      {
        name: 'meta-openembedded',
        url: META_OE,
        branch: 'scarthgap',
        rev: 'bec755063a8b5da65df626f5749496aadaa4f4bb',
        describe: 'scarthgap head',
      },
      {
        name: 'meta-raspberrypi',
        url: META_RPI,
        branch: 'scarthgap',
        rev: '6ca1f75017cc5d5acdb8bb05634c4bc01fa049fd',
        describe: 'scarthgap head',
      },
    ],
  },
  walnascar: {
    release: 'walnascar',
    version: '5.2',
    bitbake: '2.12',
    layout: 'poky',
    repos: [
      {
        name: 'poky',
        url: POKY,
        branch: 'walnascar',
        rev: 'd0b46a6624ec9c61c47270745dd0b2d5abbe6ac1',
        describe: 'yocto-5.2.4',
      },
      {
        name: 'meta-openembedded',
        url: META_OE,
        branch: 'walnascar',
        rev: '07330a98cf93806b7a4e0170a541b94962ff3960',
        describe: 'walnascar head',
      },
      {
        name: 'meta-raspberrypi',
        url: META_RPI,
        branch: 'walnascar',
        rev: '0f68e8754514d64f2fe5480195b8992f341d54af',
        describe: 'walnascar head',
      },
    ],
  },
  whinlatter: {
    release: 'whinlatter',
    version: '5.3',
    bitbake: '2.16',
    layout: 'split',
    repos: [
      {
        name: 'bitbake',
        url: 'https://git.openembedded.org/bitbake',
        branch: '2.16',
        rev: '713fbbdb9ecc195ceb2216a2345e0d79dbee2135',
        describe: 'yocto-5.3.4',
      },
      {
        name: 'openembedded-core',
        url: 'https://git.openembedded.org/openembedded-core',
        branch: 'whinlatter',
        rev: '8751ec83421192fc0f8495fb95798f9eb7be77a0',
        describe: 'yocto-5.3.4',
      },
      {
        name: 'meta-yocto',
        url: 'https://git.yoctoproject.org/meta-yocto',
        branch: 'whinlatter',
        rev: '3f2e6b6fadfa542f0fe3738375a2f9fcbd4c1f6e',
        describe: 'yocto-5.3.3-2-g3f2e6b6',
      },
      {
        name: 'meta-openembedded',
        url: META_OE,
        branch: 'whinlatter',
        rev: 'f52f32952cb9717949f8bc3d3ccf6c4c5a59521f',
        describe: 'whinlatter head',
      },
      {
        name: 'meta-raspberrypi',
        url: META_RPI,
        branch: 'whinlatter',
        rev: '469e232c77d74cb030fe8a9af4ffe9127214a29b',
        describe: 'whinlatter head',
      },
    ],
  },
};

export function releaseInfo(release: string): ReleaseInfo {
  if (!(RELEASES as readonly string[]).includes(release)) {
    throw new Error(`unknown Yocto release '${release}' (choose ${RELEASES.join(', ')})`);
  }
  return RELEASE_TABLE[release as YoctoRelease];
}

/** Where each layer sits inside its repository checkout (layer path relative to the repo). */
export interface CoreLayout {
  /** The repo holding oe-init-build-env and scripts/ (OEROOT). */
  oeRoot: RepoName;
  /** bitbake's repo and the directory inside it. */
  bitbake: { repo: RepoName; subdir: string };
  /** meta, meta-poky, meta-yocto-bsp. */
  layers: { repo: RepoName; subdir: string }[];
}

export function coreLayout(info: ReleaseInfo): CoreLayout {
  if (info.layout === 'poky') {
    return {
      oeRoot: 'poky',
      bitbake: { repo: 'poky', subdir: 'bitbake' },
      layers: [
        { repo: 'poky', subdir: 'meta' },
        { repo: 'poky', subdir: 'meta-poky' },
        { repo: 'poky', subdir: 'meta-yocto-bsp' },
      ],
    };
  }
  return {
    oeRoot: 'openembedded-core',
    bitbake: { repo: 'bitbake', subdir: '' },
    layers: [
      { repo: 'openembedded-core', subdir: 'meta' },
      { repo: 'meta-yocto', subdir: 'meta-poky' },
      { repo: 'meta-yocto', subdir: 'meta-yocto-bsp' },
    ],
  };
}
