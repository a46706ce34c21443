// A Yocto workspace: one directory per (release, machine, image) choice, holding the layer
// checkouts, the build directory with its generated conf, and stacklab-workspace.json, the
// record the runner and findBuiltImages read back.
//
//   <dir>/stacklab-workspace.json
//   <dir>/layers/poky (or bitbake, openembedded-core, meta-yocto), meta-raspberrypi, ...
//   <dir>/layers/meta-stacklab        copied from resources/yocto/meta-stacklab
//   <dir>/build/conf/local.conf, bblayers.conf, multiconfig/<mc>.conf
//   <dir>/build/tmp/deploy/images/<machine>/   what a build produces
// Downloads and sstate live outside, in <cacheHome()>/yocto/, shared by all workspaces.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { cacheHome, resourcesDir, stacklabHome } from '../paths.ts';
import type { HostResources } from './conf.ts';
import { bblayersConf, localConf, multiconfigConf } from './conf.ts';
import type { RepoName, YoctoRelease } from './releases.ts';
import { coreLayout, RELEASES, releaseInfo } from './releases.ts';
import { extraRepos, imageTarget } from './targets.ts';

export type { CloneProgress } from './clone.ts';
export { cloneLayers } from './clone.ts';

export interface WorkspaceChoice {
  release: YoctoRelease;
  machine: string;
  image: string;
  /** Optional repositories on top of what the image needs, e.g. ['meta-openembedded']. */
  extraRepos?: RepoName[];
}

const RepoRecord = z.object({
  name: z.enum([
    'poky',
    'bitbake',
    'openembedded-core',
    'meta-yocto',
    'meta-openembedded',
    'meta-raspberrypi',
  ]),
  /** Where to clone from: the table's URL or a local mirror/checkout path. */
  source: z.string().min(1),
  branch: z.string().min(1),
  rev: z.string().min(1),
  /** Relative to the workspace dir. */
  dir: z.string().min(1),
});
export type RepoRecord = z.infer<typeof RepoRecord>;

const WorkspaceRecord = z.object({
  version: z.literal(1),
  choice: z.object({
    release: z.enum(RELEASES),
    machine: z.string().min(1),
    image: z.string().min(1),
    extraRepos: z.array(RepoRecord.shape.name).optional(),
  }),
  repos: z.array(RepoRecord),
  /** All relative to the workspace dir. */
  oeRoot: z.string(),
  bitbakeDir: z.string(),
  buildDir: z.string(),
  layers: z.array(z.string()),
  multiconfig: z.object({ name: z.string(), machine: z.string() }).optional(),
  downloadsDir: z.string(),
  sstateDir: z.string(),
  createdAt: z.string(),
});
export type WorkspaceRecord = z.infer<typeof WorkspaceRecord>;

/** A loaded workspace: the record plus absolute paths. */
export interface Workspace {
  dir: string;
  record: WorkspaceRecord;
  oeRoot: string;
  bitbakeDir: string;
  buildDir: string;
  machine: string;
  image: string;
}

export const RECORD_FILE = 'stacklab-workspace.json';
export const STACKLAB_LAYER = 'layers/meta-stacklab';

export interface PlanOptions {
  /** Clone sources instead of the table's URLs: local mirrors or checkouts (tests, offline machines). */
  sources?: Partial<Record<RepoName, string>>;
  /** Check out these revisions instead of the pinned ones (a branch name works too). */
  revisions?: Partial<Record<RepoName, string>>;
  downloadsDir?: string;
  sstateDir?: string;
}

export function sharedCacheDirs(env: NodeJS.ProcessEnv = process.env): {
  downloadsDir: string;
  sstateDir: string;
} {
  const base = path.join(cacheHome(env), 'yocto');
  return { downloadsDir: path.join(base, 'downloads'), sstateDir: path.join(base, 'sstate-cache') };
}

export function defaultWorkspaceDir(choice: WorkspaceChoice, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stacklabHome(env), 'yocto', `${choice.image}-${choice.machine}-${choice.release}`);
}

/** The workspace record for a choice: which repos at which revisions, which layers. Pure. */
export function planWorkspace(choice: WorkspaceChoice, options: PlanOptions = {}): WorkspaceRecord {
  const info = releaseInfo(choice.release);
  const target = imageTarget(choice.image, choice.machine);
  const extras = extraRepos(target, choice.machine, choice.extraRepos);
  const core = coreLayout(info);
  const coreRepos = [...new Set([core.oeRoot, core.bitbake.repo, ...core.layers.map((l) => l.repo)])];
  const wanted = [...coreRepos, ...extras];
  const repos: RepoRecord[] = wanted.map((name) => {
    const pin = info.repos.find((r) => r.name === name);
    if (!pin) throw new Error(`${choice.release} has no ${name} repository`);
    return {
      name,
      source: options.sources?.[name] ?? pin.url,
      branch: pin.branch,
      rev: options.revisions?.[name] ?? pin.rev,
      dir: `layers/${name}`,
    };
  });
  const repoDir = (name: RepoName, sub: string) => path.posix.join('layers', name, sub);
  const layers = core.layers.map((l) => repoDir(l.repo, l.subdir));
  // meta-oe only: meta-stacklab's optional tools (fio, iperf3, htop) all live there.
  if (extras.includes('meta-openembedded')) layers.push(repoDir('meta-openembedded', 'meta-oe'));
  if (extras.includes('meta-raspberrypi')) layers.push(repoDir('meta-raspberrypi', ''));
  layers.push(STACKLAB_LAYER);
  const caches = sharedCacheDirs();
  return {
    version: 1,
    choice: { ...choice, extraRepos: choice.extraRepos ?? [] },
    repos,
    oeRoot: repoDir(core.oeRoot, ''),
    bitbakeDir: repoDir(core.bitbake.repo, core.bitbake.subdir),
    buildDir: 'build',
    layers,
    multiconfig: target.multiconfig,
    downloadsDir: options.downloadsDir ?? caches.downloadsDir,
    sstateDir: options.sstateDir ?? caches.sstateDir,
    createdAt: new Date().toISOString(),
  };
}

export interface ConfOptions {
  resources?: HostResources;
  connectivityCheck?: boolean;
  offline?: boolean;
}

export function hostResources(): HostResources {
  return { cores: os.availableParallelism?.() ?? os.cpus().length, memBytes: os.totalmem() };
}

/** Every file the build directory's conf/ gets, by path relative to the build dir. Pure. */
export function confFiles(
  record: WorkspaceRecord,
  dir: string,
  options: ConfOptions = {},
): Record<string, string> {
  const target = imageTarget(record.choice.image, record.choice.machine);
  const files: Record<string, string> = {
    'conf/local.conf': localConf({
      image: record.choice.image,
      machine: record.choice.machine,
      downloadsDir: record.downloadsDir,
      sstateDir: record.sstateDir,
      resources: options.resources ?? hostResources(),
      multiconfig: record.multiconfig,
      nestedQemu: target.nestedQemu,
      connectivityCheck: options.connectivityCheck,
      offline: options.offline,
    }),
    'conf/bblayers.conf': bblayersConf(record.layers.map((l) => path.join(dir, l))),
  };
  if (record.multiconfig) {
    files[`conf/multiconfig/${record.multiconfig.name}.conf`] = multiconfigConf(record.multiconfig);
  }
  return files;
}

export interface CreateOptions extends PlanOptions, ConfOptions {
  dir?: string;
  /** meta-stacklab to copy in; defaults to the one shipped in resources/. */
  stacklabLayer?: string;
}

/**
 * Create (or refresh) a workspace: the record, meta-stacklab, the conf files and the shared
 * cache dirs. Layers are cloned separately by cloneLayers(), which is slow and reports
 * progress. Refreshing keeps the layer checkouts and the build's tmp/ and rewrites conf.
 */
export function createWorkspace(choice: WorkspaceChoice, options: CreateOptions = {}): Workspace {
  const dir = path.resolve(options.dir ?? defaultWorkspaceDir(choice));
  const record = planWorkspace(choice, options);
  const layerSource = options.stacklabLayer ?? path.join(resourcesDir(), 'yocto', 'meta-stacklab');
  if (!existsSync(path.join(layerSource, 'conf', 'layer.conf'))) {
    throw new Error(`meta-stacklab not found at ${layerSource}`);
  }
  const existing = existsSync(path.join(dir, RECORD_FILE)) ? readRecord(dir) : undefined;
  if (existing && existing.choice.release !== choice.release) {
    throw new Error(
      `${dir} is a ${existing.choice.release} workspace, not ${choice.release}: pick another directory`,
    );
  }
  mkdirSync(path.join(dir, 'layers'), { recursive: true });
  // A fresh copy each time: the layer is ours, edits belong in the app's resources. Keeping
  // the files' times keeps bitbake's parse cache, which goes by modification times.
  rmSync(path.join(dir, STACKLAB_LAYER), { recursive: true, force: true });
  cpSync(layerSource, path.join(dir, STACKLAB_LAYER), { recursive: true, preserveTimestamps: true });
  const buildDir = path.join(dir, record.buildDir);
  for (const [rel, text] of Object.entries(confFiles(record, dir, options))) {
    const file = path.join(buildDir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  const userConf = path.join(buildDir, 'conf', 'stacklab-user.conf');
  if (!existsSync(userConf)) {
    writeFileSync(userConf, '# Your own bitbake settings: Stacklab never rewrites this file.\n');
  }
  mkdirSync(record.downloadsDir, { recursive: true });
  mkdirSync(record.sstateDir, { recursive: true });
  writeFileSync(path.join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
  return toWorkspace(dir, record);
}

function readRecord(dir: string): WorkspaceRecord {
  const file = path.join(dir, RECORD_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not a Stacklab workspace record: ${(e as Error).message}`);
  }
  const parsed = WorkspaceRecord.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`${file} is not a Stacklab workspace record: ${first?.path.join('.')} ${first?.message}`);
  }
  return parsed.data;
}

function toWorkspace(dir: string, record: WorkspaceRecord): Workspace {
  return {
    dir,
    record,
    oeRoot: path.join(dir, record.oeRoot),
    bitbakeDir: path.join(dir, record.bitbakeDir),
    buildDir: path.join(dir, record.buildDir),
    machine: record.choice.machine,
    image: record.choice.image,
  };
}

export function loadWorkspace(dir: string): Workspace {
  const abs = path.resolve(dir);
  if (!existsSync(path.join(abs, RECORD_FILE)))
    throw new Error(`${abs} is not a Stacklab workspace (no ${RECORD_FILE})`);
  return toWorkspace(abs, readRecord(abs));
}

export interface DiskCheck {
  path: string;
  freeBytes: number;
  ok: boolean;
  /** One line when free space is below the minimum. */
  warning?: string;
}

/** The Yocto docs ask for 90 GB (140 GB from whinlatter); below ~100 GB a first build likely fails. */
export const MIN_FREE_BYTES = 100 * 1000 ** 3;

export function checkDiskSpace(dir: string, minBytes = MIN_FREE_BYTES): DiskCheck {
  // statfs needs an existing path: walk up to the nearest existing parent.
  let probe = path.resolve(dir);
  while (!existsSync(probe) && path.dirname(probe) !== probe) probe = path.dirname(probe);
  const st = statfsSync(probe);
  const freeBytes = Number(st.bavail) * Number(st.bsize);
  const ok = freeBytes >= minBytes;
  const gb = (n: number) => `${Math.floor(n / 1000 ** 3)} GB`;
  return {
    path: probe,
    freeBytes,
    ok,
    warning: ok
      ? undefined
      : `only ${gb(freeBytes)} free on ${probe}; a Yocto build needs about ${gb(minBytes)} (downloads, sstate and tmp)`,
  };
}
