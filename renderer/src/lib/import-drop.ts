// Dropping an image file on the Library. Electron's File carries the host path the engine
// needs; a browser's does not, so lab mode says to import by path instead.

export type DropOutcome =
  | { kind: 'paths'; paths: string[] }
  | { kind: 'no-path'; note: string }
  | { kind: 'nothing' };

export const LAB_DROP_NOTE =
  'In lab mode the browser cannot tell Stacklab where a dropped file lives: type its path in Import instead.';

/** What to do with the files of a drop event (`path` is set on Electron's File). */
export function dropOutcome(files: ReadonlyArray<{ name: string; path?: unknown }>): DropOutcome {
  if (files.length === 0) return { kind: 'nothing' };
  const paths = files.map((f) => f.path).filter((p): p is string => typeof p === 'string' && p.length > 0);
  if (paths.length === 0) return { kind: 'no-path', note: LAB_DROP_NOTE };
  return { kind: 'paths', paths };
}
