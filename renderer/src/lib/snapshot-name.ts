// Snapshot names are checked in the form with the contract's own schema, so the field
// says what is wrong before the engine is asked.
import { requests } from '../../../electron/common/contract.ts';

const schema = requests['disk.snapshot.take'].params.shape.name;

/** A one-line reason the name is not accepted, or '' when it is. */
export function snapshotNameError(name: string): string {
  if (name.length === 0) return '';
  const r = schema.safeParse(name);
  return r.success ? '' : (r.error.issues[0]?.message ?? 'not a valid snapshot name');
}

/** A free default name like "snap-3" that is not taken yet. */
export function nextSnapshotName(taken: readonly string[]): string {
  const used = new Set(taken);
  for (let i = 1; ; i++) if (!used.has(`snap-${i}`)) return `snap-${i}`;
}
