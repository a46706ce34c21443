// The Flash column of the open image page: the drives with their verdicts, the chosen one,
// and the flash in progress (its task's progress events and its flash.finished result).
import type { DriveChoice, FlashFinished, Progress } from '../../../../electron/common/contract.ts';
import { confirmFlash, driveRows, flashView, pickDrive } from '../drive-list.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

type Source = { imageId: string; customised: boolean; changes: string[]; imageBytes: number };

export class FlashState {
  imageId = $state('');
  drives = $state<DriveChoice[]>([]);
  source = $state<Source | null>(null);
  elevation = $state('');
  device = $state<string | undefined>(undefined);
  verify = $state(true);
  loading = $state(false);
  /** Listing drives or starting the flash failed: one line. */
  error = $state('');
  /** The flash task of each image (so a flash keeps its bar when another image is looked at). */
  taskOf = $state<Record<string, string>>({});
  /** Last progress and result of each flash task, kept after the Activity list lets go. */
  progress = $state<Record<string, Progress>>({});
  finished = $state<Record<string, FlashFinished>>({});
  rows = $derived(driveRows(this.drives));
  chosen = $derived(this.drives.find((d) => d.device === this.device));
  taskId = $derived(this.taskOf[this.imageId] ?? '');
  view = $derived(flashView(this.progress[this.taskId], this.finished[this.taskId]));
  running = $derived(this.view.state === 'running');
  confirm = $derived(
    this.chosen && this.source ? confirmFlash(this.chosen, this.source, this.elevation) : undefined,
  );
  private generation = 0;

  constructor(private readonly t: Transport) {
    // Events can arrive before flash.start answers with the task id: keep every flash's.
    t.on('progress', (p) => {
      if (p.taskId.startsWith('flash-')) this.progress[p.taskId] = p;
    });
    t.on('flash.finished', (f) => {
      this.finished[f.taskId] = f;
    });
  }

  async load(imageId: string): Promise<void> {
    const gen = ++this.generation;
    if (imageId !== this.imageId) {
      this.imageId = imageId;
      this.drives = [];
      this.source = null;
      this.device = undefined;
    }
    this.loading = true;
    try {
      const r = await this.t.request('drives.list', { imageId });
      if (gen !== this.generation) return;
      this.drives = r.drives;
      this.source = r.source ?? null;
      this.elevation = r.elevation;
      this.device = pickDrive(driveRows(r.drives), this.device);
      this.error = '';
    } catch (e) {
      if (gen === this.generation) {
        this.drives = [];
        this.source = null;
        this.error = oneLine(e);
      }
    } finally {
      if (gen === this.generation) this.loading = false;
    }
  }

  /** Starts writing the chosen drive; the user has confirmed (the engine insists on it too). */
  async start(): Promise<void> {
    const device = this.device;
    const imageId = this.imageId;
    if (!device || this.running) return;
    this.error = '';
    try {
      const { taskId } = await this.t.request('flash.start', {
        imageId,
        device,
        confirm: true,
        verify: this.verify,
      });
      this.taskOf[imageId] = taskId;
    } catch (e) {
      this.error = oneLine(e);
    }
  }

  async cancel(): Promise<void> {
    if (!this.taskId || !this.running) return;
    try {
      await this.t.request('task.cancel', { taskId: this.taskId });
    } catch (e) {
      this.error = oneLine(e);
    }
  }
}
