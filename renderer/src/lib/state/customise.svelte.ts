// The Customise form of the open image page: what is applied to the image's VM now
// (customise.get, without secrets), the form as typed with its problems, Apply and Reset.
import type { CustomiseStatus } from '../../../../electron/common/contract.ts';
import {
  applyBlocker,
  type CustomiseForm,
  EMPTY_FORM,
  type FormField,
  formFromSettings,
  formProblems,
  specFromForm,
} from '../customise-form.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class CustomiseState {
  imageId = $state('');
  form = $state<CustomiseForm>({ ...EMPTY_FORM });
  /** Fields whose problems show: left once, or all of them after an Apply attempt. */
  touched = $state<Partial<Record<FormField, boolean>>>({});
  status = $state<CustomiseStatus | null>(null);
  busy = $state<'' | 'apply' | 'reset'>('');
  /** The last request's failure, one line. */
  error = $state('');
  /** Said after a successful Apply or Reset. */
  note = $state('');
  problems = $derived(formProblems(this.form));
  blocker = $derived(applyBlocker(this.form, this.problems));
  private generation = 0;
  /** The form as last filled from the engine: while it still reads so, nobody has typed in it. */
  private filled = JSON.stringify(EMPTY_FORM);

  constructor(private readonly t: Transport) {}

  /**
   * Loads what is applied. The form is filled from it only while nobody has typed in it
   * (an answer arriving late must not wipe what was typed), or when `refill` says so.
   */
  async load(imageId: string, refill = false): Promise<void> {
    const gen = ++this.generation;
    if (imageId !== this.imageId) {
      this.imageId = imageId;
      this.status = null;
      this.form = { ...EMPTY_FORM };
      this.filled = JSON.stringify(this.form);
      this.touched = {};
      this.error = '';
      this.note = '';
    }
    try {
      const status = await this.t.request('customise.get', { imageId });
      if (gen !== this.generation) return; // another image was opened meanwhile
      this.status = status;
      if (refill || JSON.stringify(this.form) === this.filled) {
        this.form = formFromSettings(status.settings);
        this.filled = JSON.stringify(this.form);
      }
    } catch (e) {
      if (gen === this.generation) this.error = oneLine(e);
    }
  }

  /** The problem to show under a field, once it has been touched. */
  shown(field: FormField): string | undefined {
    return this.touched[field] ? this.problems[field] : undefined;
  }

  touch(field: FormField): void {
    this.touched[field] = true;
  }

  /**
   * Applies the form to the VM's working copy. 'confirm-disk' when the VM has a disk from
   * earlier runs that applying would start afresh: the caller asks, then passes resetDisk.
   */
  async apply(resetDisk = false): Promise<'applied' | 'confirm-disk' | 'invalid' | 'failed'> {
    for (const f of Object.keys(this.form) as FormField[]) this.touched[f] = true;
    if (this.blocker) return 'invalid';
    if (this.status?.hasDisk && !resetDisk) return 'confirm-disk';
    const imageId = this.imageId;
    this.busy = 'apply';
    this.error = '';
    this.note = '';
    try {
      const r = await this.t.request('vm.customise', { imageId, spec: specFromForm(this.form), resetDisk });
      this.note = r.cached ? 'Applied (the same customisation was made before)' : 'Applied';
      // The secrets are in the image now (hashed); the form does not keep them.
      this.form.password = '';
      this.form.wifiPassphrase = '';
      this.touched = {};
      await this.load(imageId, true);
      return 'applied';
    } catch (e) {
      this.error = oneLine(e);
      return 'failed';
    } finally {
      this.busy = '';
    }
  }

  /** Back to the image as it came: drops the customised copy and the VM's disk. */
  async reset(): Promise<void> {
    const imageId = this.imageId;
    this.busy = 'reset';
    this.error = '';
    this.note = '';
    try {
      await this.t.request('customise.reset', { imageId });
      this.note = 'Back to the image as it came';
      this.touched = {};
      await this.load(imageId, true);
    } catch (e) {
      this.error = oneLine(e);
    } finally {
      this.busy = '';
    }
  }

  /** What the VM boots now, in words, for the Boot and Flash columns. */
  summary = $derived.by(() => {
    const s = this.status;
    if (!s) return '';
    if (!s.customised) return 'the image as it came';
    return `the image with its customisation (${s.changes.length} change${s.changes.length === 1 ? '' : 's'})`;
  });
}
