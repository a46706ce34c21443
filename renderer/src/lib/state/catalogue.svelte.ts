// The "Get images" view: what the catalogues offer, downloads in flight and imports.
import type { CatalogueItem, ImageSummary, Progress } from '../../../../electron/common/contract.ts';
import { groupCatalogue } from '../catalogue.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class Catalogue {
  entries = $state<CatalogueItem[]>([]);
  /** One line per catalogue that could not be read. */
  errors = $state<string[]>([]);
  loaded = $state(false);
  loading = $state(false);
  error = $state('');
  /** Entry id → the task id of its download. */
  downloads = $state<Record<string, string>>({});
  /** Latest progress per download task. */
  progress = $state<Record<string, Progress>>({});
  /** Entry ids whose install request is being sent. */
  starting = $state<Record<string, boolean>>({});
  importing = $state(false);
  importError = $state('');
  groups = $derived(groupCatalogue(this.entries));

  constructor(private readonly t: Transport) {
    t.on('progress', (p) => {
      if (!Object.values(this.downloads).includes(p.taskId)) return;
      this.progress[p.taskId] = p;
      // A finished download changes what is installed.
      if (p.state === 'done') void this.load();
    });
    t.on('images.changed', () => {
      if (this.loaded) void this.load();
    });
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      const r = await this.t.request('images.catalogue', {});
      this.entries = r.entries;
      this.errors = r.errors;
      this.error = '';
    } catch (e) {
      this.error = oneLine(e);
    } finally {
      this.loading = false;
      this.loaded = true;
    }
  }

  /** The running or last download of an entry. */
  taskFor(entryId: string): Progress | undefined {
    const id = this.downloads[entryId];
    return id ? this.progress[id] : undefined;
  }

  async install(entryId: string): Promise<void> {
    this.starting[entryId] = true;
    try {
      const { taskId } = await this.t.request('images.install', { entryId });
      this.downloads[entryId] = taskId;
    } catch (e) {
      throw new Error(oneLine(e));
    } finally {
      delete this.starting[entryId];
    }
  }

  async cancel(taskId: string): Promise<void> {
    try {
      await this.t.request('task.cancel', { taskId });
    } catch (e) {
      throw new Error(oneLine(e));
    }
  }

  /** Imports an image from a path on the host; the error stays beside the field. */
  async import(path: string): Promise<ImageSummary | undefined> {
    const p = path.trim();
    if (!p) {
      this.importError = 'Type the path of an image file or a Yocto deploy directory on this computer.';
      return undefined;
    }
    this.importing = true;
    this.importError = '';
    try {
      return await this.t.request('images.import', { path: p });
    } catch (e) {
      this.importError = oneLine(e);
      return undefined;
    } finally {
      this.importing = false;
    }
  }
}
