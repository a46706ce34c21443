// The "Get images" list: catalogue entries grouped by where they come from and which
// release they belong to, so a long Yocto list reads like a table of contents.
import type { CatalogueItem, Progress } from '../../../electron/common/contract.ts';

export interface CatalogueGroup {
  key: string;
  title: string;
  entries: CatalogueItem[];
}

const SOURCE_TITLE: Record<CatalogueItem['source'], string> = {
  yocto: 'Yocto Project',
  demo: 'Demo',
  user: 'Your catalogues',
};
const SOURCE_RANK: Record<CatalogueItem['source'], number> = { demo: 0, yocto: 1, user: 2 };

/** Groups by source, then release (newest-looking release first), entries by name. */
export function groupCatalogue(entries: readonly CatalogueItem[]): CatalogueGroup[] {
  const groups = new Map<string, CatalogueGroup & { source: CatalogueItem['source']; release: string }>();
  for (const e of entries) {
    const release = e.release ?? '';
    const key = `${e.source}/${release}`;
    let g = groups.get(key);
    if (!g) {
      const title = release ? `${SOURCE_TITLE[e.source]} · ${release}` : SOURCE_TITLE[e.source];
      g = { key, title, entries: [], source: e.source, release };
      groups.set(key, g);
    }
    g.entries.push(e);
  }
  return [...groups.values()]
    .sort(
      (a, b) =>
        SOURCE_RANK[a.source] - SOURCE_RANK[b.source] ||
        b.release.localeCompare(a.release, undefined, { numeric: true }),
    )
    .map(({ key, title, entries: list }) => ({
      key,
      title,
      entries: [...list].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)),
    }));
}

/** Percent done of a byte download, or undefined while the size is unknown. */
export function percentDone(p: Pick<Progress, 'done' | 'total'>): number | undefined {
  if (!p.total || p.total <= 0) return undefined;
  return Math.min(100, Math.max(0, (p.done / p.total) * 100));
}
