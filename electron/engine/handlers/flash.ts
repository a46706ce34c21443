// Requests for "try, customise, flash": customise an image's VM, see and drop what is
// applied, list drives with their verdicts, start a flash. Spread into createEngine's map.
import type { Handlers } from '../engine.ts';
import type { FlashJobs } from '../flash/flash-jobs.ts';
import type { Engine } from '../index.ts';

// Loaded on first use, like the flash code (see flash-jobs.ts): most sessions never customise.
const customising = () => import('../customise/vm.ts');

type FlashMethods = 'vm.customise' | 'customise.get' | 'customise.reset' | 'drives.list' | 'flash.start';

export function flashHandlers(
  engine: Pick<Engine, 'library' | 'supervisor' | 'qemu' | 'hub'>,
  jobs: FlashJobs,
): Pick<Handlers, FlashMethods> {
  return {
    'vm.customise': async (p) =>
      // Copying the base and editing it takes a few seconds on a big image: a task with a bar.
      engine.hub.task(`customise-${p.imageId}`.slice(0, 100), `Customising ${p.imageId}`, async (step) => {
        step('Copying the image and applying the settings');
        const { customiseVm } = await customising();
        const r = await customiseVm(engine, p.imageId, p.spec, { resetDisk: p.resetDisk });
        return {
          imageId: r.imageId,
          vmId: r.vmId,
          cached: r.cached,
          flavour: r.flavour,
          why: r.why,
          changes: r.changes,
          notes: r.notes,
        };
      }),
    'customise.get': async (p) => (await customising()).customisationStatus(engine, p.imageId),
    'customise.reset': async (p) => ({
      dropped: (await (await customising()).resetCustomisation(engine, p.imageId)).dropped,
    }),
    'drives.list': (p) => jobs.list(p.imageId),
    'flash.start': (p) => jobs.start(p),
  };
}
