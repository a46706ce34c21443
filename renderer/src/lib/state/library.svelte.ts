import type { ImageSummary, VmSummary } from '../../../../electron/common/contract.ts';
import { sortImages } from '../images.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class Library {
  images = $state<ImageSummary[]>([]);
  loaded = $state(false);
  error = $state('');
  /** Image ids with a vm.boot request in flight. */
  booting = $state<Record<string, boolean>>({});
  sorted = $derived(sortImages(this.images));

  constructor(private readonly t: Transport) {
    // Downloads, imports and removals change the library; the engine says when.
    t.on('images.changed', () => void this.load());
  }

  async load(): Promise<void> {
    try {
      this.images = await this.t.request('images.list', {});
      this.error = '';
    } catch (e) {
      this.error = oneLine(e);
    } finally {
      this.loaded = true;
    }
  }

  /** Boots an image; throws a one-line error the caller shows. */
  async boot(imageId: string): Promise<VmSummary> {
    this.booting[imageId] = true;
    try {
      return await this.t.request('vm.boot', { imageId });
    } finally {
      delete this.booting[imageId];
    }
  }
}
