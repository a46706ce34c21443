// Build records on disk: what `stacklab build status` reads in another process. A build
// left "running" by a process that is gone reads as lost; unreadable files are skipped;
// old finished builds are pruned.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BuildInfo } from '../../electron/common/contract.ts';
import { BuildRecords } from '../../electron/engine/build/records.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function records(): BuildRecords {
  const d = mkdtempSync(path.join(os.tmpdir(), 'stacklab-records-'));
  dirs.push(d);
  return new BuildRecords(path.join(d, 'builds'));
}

function info(id: string, over: Partial<BuildInfo> = {}): BuildInfo {
  return {
    id,
    image: 'stacklab-guest-image',
    machine: 'qemux86-64',
    release: 'scarthgap',
    dir: '/w',
    runner: 'host',
    offline: false,
    state: 'failed',
    progress: { phase: 'failed', label: 'Failed', percent: 3, done: 1, total: 30, currentTasks: [] },
    warnings: [],
    startedAt: 1000,
    imported: [],
    ...over,
  };
}

/** A pid that existed and has exited (so nobody owns it now, barring reuse within the test). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

describe('BuildRecords', () => {
  it('reads back what was written, newest first', () => {
    const r = records();
    expect(r.read()).toEqual([]); // no directory yet
    r.write(info('old', { startedAt: 1 }));
    r.write(info('new', { startedAt: 2 }));
    r.write(info('new', { startedAt: 2, state: 'cancelled' })); // rewritten in place
    expect(r.read().map((b) => [b.id, b.state])).toEqual([
      ['new', 'cancelled'],
      ['old', 'failed'],
    ]);
    expect(readdirSync(r.dir).sort()).toEqual(['new.json', 'old.json']); // no temp files left
  });

  it('reports a running build whose process has gone as lost, and a live one as running', () => {
    const r = records();
    const pid = deadPid();
    r.write(info('orphan', { state: 'running', startedAt: 1 }), pid);
    r.write(info('mine', { state: 'running', startedAt: 5 }));
    const [mine, orphan] = r.read();
    expect(mine?.state).toBe('running');
    expect(orphan?.state).toBe('lost');
    expect(orphan?.message).toBe(`the Stacklab process that ran it (pid ${pid}) ended`);
  });

  it('skips files that are not build records', () => {
    const r = records();
    r.write(info('good'));
    writeFileSync(path.join(r.dir, 'broken.json'), '{ not json');
    writeFileSync(path.join(r.dir, 'other.json'), JSON.stringify({ ownerPid: 1, info: { id: 'x' } }));
    expect(r.read().map((b) => b.id)).toEqual(['good']);
  });

  it('keeps the newest finished builds and every running one', () => {
    const r = records();
    for (let i = 0; i < 6; i++) r.write(info(`b${i}`, { startedAt: i }));
    r.write(info('live', { state: 'running', startedAt: -1 }));
    r.prune(3);
    expect(r.read().map((b) => b.id)).toEqual(['b5', 'b4', 'b3', 'live']);
  });
});
