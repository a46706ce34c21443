// The images the engine knows: the demo guests first, then what the user imported,
// downloaded or built. Each entry is loaded lazily into a full descriptor; an image that
// cannot boot stays listed with the one-line reason.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ImageSummary } from '../common/contract.ts';
import { type ImageDescriptor, loadDeployDir } from './image/descriptor.ts';
import { Store } from './images/store.ts';
import { guestsDir, stacklabHome } from './paths.ts';

export interface LibraryEntry {
  id: string;
  source: ImageSummary['source'];
  deployDir: string;
  description?: string;
  sha256?: string;
}

interface GuestIndexEntry {
  name: string;
  description?: string;
  deployDir: string;
}

export function demoGuests(env: NodeJS.ProcessEnv = process.env): LibraryEntry[] {
  const index = path.join(guestsDir(env), 'guests.json');
  if (!existsSync(index)) return [];
  // Through the real build directory, never the `current` link: a rebuild moves the link,
  // and a VM's overlay must keep pointing at the exact base it was made over.
  const dir = realpathSync(guestsDir(env));
  const list = JSON.parse(readFileSync(index, 'utf8')) as GuestIndexEntry[];
  return list.map((g) => ({
    id: g.name,
    source: 'demo' as const,
    deployDir: path.resolve(dir, g.deployDir),
    description: g.description,
  }));
}

export class Library {
  private readonly extra: LibraryEntry[] = [];
  /** Downloaded and imported images: content-addressed, read-only blobs plus a deploy dir of links. */
  readonly store: Store;
  private storeReady?: Promise<Store>;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {
    this.store = new Store(path.join(stacklabHome(env), 'store'));
  }

  openStore(): Promise<Store> {
    this.storeReady ??= this.store.init();
    return this.storeReady;
  }

  async entries(): Promise<LibraryEntry[]> {
    const records = await (await this.openStore()).listImages();
    const stored = records
      .filter((r) => r.deployDir)
      .map((r) => ({
        id: r.id,
        source: r.source,
        deployDir: r.deployDir!,
        description: r.description,
        sha256: r.sha256,
      }));
    return [...demoGuests(this.env), ...stored, ...this.extra];
  }

  add(e: LibraryEntry): void {
    const i = this.extra.findIndex((x) => x.id === e.id);
    if (i >= 0) this.extra.splice(i, 1, e);
    else this.extra.push(e);
  }

  async find(id: string): Promise<LibraryEntry | undefined> {
    return (await this.entries()).find((e) => e.id === id);
  }

  /** An id from the library, or a path to a deploy directory / qemuboot.conf. */
  async resolve(idOrPath: string): Promise<ImageDescriptor> {
    const known = await this.find(idOrPath);
    if (known) return { ...(await loadDeployDir(known.deployDir)), id: known.id };
    if (existsSync(idOrPath)) {
      const st = statSync(idOrPath);
      return loadDeployDir(
        st.isDirectory() ? idOrPath : path.dirname(idOrPath),
        st.isDirectory() ? undefined : { conf: idOrPath },
      );
    }
    const ids = (await this.entries()).map((e) => e.id);
    throw new Error(
      `no image called "${idOrPath}"${ids.length ? ` (known: ${ids.join(', ')})` : ' (no images yet: run npm run guests to build the demo guests)'}`,
    );
  }

  async summaries(): Promise<ImageSummary[]> {
    return Promise.all(
      (await this.entries()).map(async (e): Promise<ImageSummary> => {
        try {
          const d = await loadDeployDir(e.deployDir);
          return {
            id: e.id,
            name: e.id,
            source: e.source,
            machine: d.machine,
            arch: d.arch,
            board: d.board,
            path: e.deployDir,
            sizeBytes: d.sizeBytes,
            sha256: e.sha256,
            description: e.description,
            bootable: true,
          };
        } catch (err) {
          return {
            id: e.id,
            name: e.id,
            source: e.source,
            machine: '?',
            arch: '?',
            board: '?',
            path: e.deployDir,
            sizeBytes: 0,
            description: e.description,
            bootable: false,
            whyNot: (err as Error).message,
          };
        }
      }),
    );
  }
}
