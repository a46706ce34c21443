// "Flash this": write the bytes the VM booted — its customised working base, not the
// pristine image — to a card.
import { type CustomiseEngine, flashSourceFor } from '../customise/vm.ts';
import { type FlashOptions, type FlashResult, flash } from './flash.ts';

export async function flashVm(
  engine: CustomiseEngine,
  imageId: string,
  opts: Omit<FlashOptions, 'source'>,
): Promise<FlashResult & { source: string; customised: boolean }> {
  const src = await flashSourceFor(engine, imageId);
  const r = await flash({ ...opts, source: src.path });
  return { ...r, source: src.path, customised: src.customised };
}
