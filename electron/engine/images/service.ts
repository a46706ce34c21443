// The library's verbs as the contract exposes them: browse the catalogue, install an
// entry (a background task with progress events), import a local file, remove. Long work
// runs as a task with an id so any front end can show a bar and cancel it.
import { randomBytes } from 'node:crypto';
import type { CatalogueItem, ImageSummary } from '../../common/contract.ts';
import type { EventHub } from '../engine.ts';
import type { Library } from '../library.ts';
import { type CatalogueEntry, listCatalogue } from './catalogue.ts';
import { importImage } from './import.ts';
import { installEntry, toProgress } from './install.ts';
import { toSummary } from './record.ts';

export class ImageService {
  private readonly tasks = new Map<string, AbortController>();
  private lastCatalogue: CatalogueEntry[] = [];

  constructor(
    private readonly library: Library,
    private readonly hub: EventHub,
    private readonly userCatalogues: () => string[],
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  async catalogue(): Promise<{ entries: CatalogueItem[]; errors: string[] }> {
    const { entries, errors } = await listCatalogue({ env: this.env, userCatalogues: this.userCatalogues() });
    this.lastCatalogue = entries;
    const installed = new Set((await this.library.entries()).map((e) => e.id));
    return {
      entries: entries.map((e) => ({
        id: e.id,
        name: e.name,
        description: e.description,
        machine: e.machine,
        arch: e.arch,
        board: e.board,
        release: e.release,
        source: e.source,
        catalogue: e.catalogue,
        files: e.files.map((f) => ({ name: f.name, url: f.url })),
        installed: installed.has(e.id),
      })),
      errors,
    };
  }

  private async entry(id: string): Promise<CatalogueEntry> {
    let e = this.lastCatalogue.find((x) => x.id === id);
    if (!e) {
      await this.catalogue();
      e = this.lastCatalogue.find((x) => x.id === id);
    }
    if (!e) throw new Error(`no catalogue entry called ${id}`);
    if (e.source === 'demo') throw new Error(`${id} is a demo guest: it is already in the library`);
    return e;
  }

  /** Starts the download and returns at once; `done` settles when it ends. */
  async install(entryId: string): Promise<{ taskId: string; done: Promise<ImageSummary> }> {
    const entry = await this.entry(entryId);
    const taskId = `dl-${randomBytes(4).toString('hex')}`;
    const ctl = new AbortController();
    this.tasks.set(taskId, ctl);
    const label = `Downloading ${entry.name}`;
    const store = await this.library.openStore();
    const done = installEntry(entry, {
      store,
      signal: ctl.signal,
      onProgress: (_file, p) => this.hub.emit('progress', toProgress(taskId, label, p)),
    })
      .then((record) => {
        this.hub.emit('progress', { taskId, label, state: 'done', done: 1, total: 1, unit: 'items' });
        this.hub.emit('images.changed', {});
        return toSummary(record);
      })
      .catch((e: Error) => {
        const state = ctl.signal.aborted ? 'cancelled' : 'failed';
        this.hub.emit('progress', { taskId, label, state, done: 0, unit: 'items', message: e.message });
        throw e;
      })
      .finally(() => this.tasks.delete(taskId));
    done.catch(() => undefined); // reported through the progress event; callers may also await it
    return { taskId, done };
  }

  async import(file: string): Promise<ImageSummary> {
    const record = await importImage(file, { store: await this.library.openStore() });
    this.hub.emit('images.changed', {});
    return toSummary(record);
  }

  async remove(imageId: string): Promise<number> {
    const store = await this.library.openStore();
    if (!(await store.getImage(imageId))) {
      throw new Error(
        `${imageId} is not a downloaded or imported image (demo guests are rebuilt with npm run guests)`,
      );
    }
    const freed = await store.removeImage(imageId);
    this.hub.emit('images.changed', {});
    return freed;
  }

  cancel(taskId: string): void {
    const ctl = this.tasks.get(taskId);
    if (!ctl) throw new Error(`no running task ${taskId}`);
    ctl.abort();
  }
}
