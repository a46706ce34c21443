// Builds on disk: one JSON file per build under <home>/builds/, written as the build moves
// on, so `stacklab build status` in another process sees running and finished builds. A
// record still "running" whose owning process is gone is reported as lost.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { BuildInfo } from '../../common/contract.ts';
import { alive } from '../vm/process.ts';

const RecordFile = z.object({ ownerPid: z.number().int(), info: BuildInfo });

/** How many finished builds are kept on disk. */
export const KEEP_RECORDS = 50;

const LIVE = new Set<BuildInfo['state']>(['preparing', 'running', 'importing']);

export function isLive(state: BuildInfo['state']): boolean {
  return LIVE.has(state);
}

export class BuildRecords {
  constructor(readonly dir: string) {}

  write(info: BuildInfo, ownerPid = process.pid): void {
    mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `${info.id}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ ownerPid, info })}\n`);
    renameSync(tmp, file); // readers never see half a record
  }

  /** Every readable record, newest first; live ones whose process is gone become 'lost'. */
  read(): BuildInfo[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const out: BuildInfo[] = [];
    for (const name of names) {
      let parsed: z.infer<typeof RecordFile>;
      try {
        const r = RecordFile.safeParse(JSON.parse(readFileSync(path.join(this.dir, name), 'utf8')));
        if (!r.success) continue; // a record from another version, or hand-edited: not ours to show
        parsed = r.data;
      } catch {
        continue;
      }
      const { info, ownerPid } = parsed;
      if (isLive(info.state) && ownerPid !== process.pid && !alive(ownerPid)) {
        out.push({
          ...info,
          state: 'lost',
          message: info.message ?? `the Stacklab process that ran it (pid ${ownerPid}) ended`,
        });
      } else out.push(info);
    }
    return out.sort((a, b) => b.startedAt - a.startedAt);
  }

  /** Drops the oldest finished records beyond `keep`. */
  prune(keep = KEEP_RECORDS): void {
    const finished = this.read().filter((b) => !isLive(b.state));
    for (const b of finished.slice(keep)) rmSync(path.join(this.dir, `${b.id}.json`), { force: true });
  }
}
