// Flashing as tasks any front end can follow and cancel: which drives may take an image
// (with the reason for each refusal), then the write itself under hub.task with byte
// progress per phase (write, verify) and a `flash.finished` event with the result. The
// source is always what the image's VM boots: its customised copy when it has one.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Progress } from '../../common/contract.ts';
import type { CustomiseEngine } from '../customise/vm.ts';
import type { EventHub } from '../engine.ts';
import { appRoot } from '../paths.ts';
import { chooseTarget, type Drive, driveChoices, listDrives } from './drives.ts';
import { elevationPlan, needsElevation, runElevated } from './elevate.ts';
import type { FlashProgress, FlashResult } from './flash.ts';

// Loaded when first needed: etcher-sdk alone takes most of a second to load, and an engine
// that never flashes (the CLI's boot, a test) should not pay for it at start.
const flashing = () => import('./flash.ts');
const customising = () => import('../customise/vm.ts');

/**
 * TEST-ONLY MOCK: no card reader exists where the tests run, so tests feed the drive list
 * in as data (drivelist's shape); a drive with `file` is backed by that regular file and
 * the flash writes it. With such a list nothing else is ever written: a fed drive without
 * a file is refused.
 */
export interface TestOnlyDrive extends Drive {
  file?: string;
}

export const ELEVATION_WHY =
  'Writing a whole drive replaces its partition table, which only an administrator may do: the system asks for your password to run only this one flash command, not the app.';

const PHASE = { flashing: 'write', decompressing: 'write', verifying: 'verify' } as const;
const PHASE_MESSAGE = { write: 'Writing', verify: 'Verifying (reading every byte back)' } as const;

export interface FlashJobsDeps {
  engine: CustomiseEngine;
  hub: EventHub;
  testOnlyDrives?: TestOnlyDrive[];
}

export class FlashJobs {
  /** Running flashes by task id; no AbortController when it runs elevated (another process). */
  private readonly jobs = new Map<string, { device: string; ctl?: AbortController }>();

  constructor(private readonly deps: FlashJobsDeps) {}

  private drives(): Promise<Drive[]> {
    const fed = this.deps.testOnlyDrives;
    return fed ? Promise.resolve(fed) : listDrives();
  }

  private backingFile(d: Drive): string | undefined {
    return this.deps.testOnlyDrives?.find((t) => t.device === d.device)?.file;
  }

  private readonly needsRights = (d: Drive) => (this.deps.testOnlyDrives ? false : needsElevation(d.raw));

  private async source(imageId: string) {
    const src = await (await customising()).flashSourceFor(this.deps.engine, imageId);
    return { ...src, bytes: await (await flashing()).imageSize(src.path) };
  }

  /** The image a request names: an image id, or a VM booted straight from a Library image. */
  private imageOf(p: { imageId?: string; vmId?: string }): string {
    if (p.imageId) return p.imageId;
    const vm = this.deps.engine.supervisor.find(p.vmId!);
    if (!vm) throw new Error(`no VM called ${p.vmId}`);
    if (vm.plan.imageId !== p.vmId)
      throw new Error(
        `${p.vmId} is part of a stack (its disk holds nested guests): flash its image ${vm.plan.imageId} instead`,
      );
    return vm.plan.imageId;
  }

  async list(imageId?: string) {
    const src = imageId ? await this.source(imageId) : undefined;
    const drives = await this.drives();
    return {
      drives: driveChoices(
        drives,
        src && { path: path.resolve(src.path), bytes: src.bytes },
        this.needsRights,
      ),
      source: src && {
        imageId: imageId!,
        customised: src.customised,
        changes: src.changes,
        imageBytes: src.bytes,
      },
      elevation: ELEVATION_WHY,
    };
  }

  /** Checks everything, then starts writing and returns the task id at once. */
  async start(p: { imageId?: string; vmId?: string; device: string; verify: boolean }) {
    const imageId = this.imageOf(p);
    const { flash } = await flashing();
    const src = await this.source(imageId);
    const drive = chooseTarget(
      await this.drives(),
      p.device,
      { path: path.resolve(src.path), bytes: src.bytes },
      true,
    );
    if ([...this.jobs.values()].some((j) => j.device === drive.device))
      throw new Error(`${drive.device} is being written already`);
    const file = this.backingFile(drive);
    if (this.deps.testOnlyDrives && !file)
      throw new Error(`${drive.device} is a fed test drive without a backing file; nothing was written`);
    const elevated = !file && needsElevation(drive.raw);
    const ctl = elevated ? undefined : new AbortController();
    const taskId = `flash-${randomBytes(4).toString('hex')}`;
    const label = `Flashing ${imageId} to ${drive.device}`;
    const onProgress = this.progressTo(taskId, label);
    this.jobs.set(taskId, { device: drive.device, ctl });

    const run = this.deps.hub
      .task(taskId, label, async () => {
        const r = elevated
          ? await this.runElevated(src.path, drive, p.verify, onProgress)
          : await flash({
              source: src.path,
              target: file ? { file } : { device: drive.device },
              verify: p.verify,
              onProgress,
              signal: ctl!.signal,
            });
        this.deps.hub.emit('flash.finished', {
          taskId,
          imageId,
          device: drive.device,
          customised: src.customised,
          imageBytes: r.imageBytes,
          bytesWritten: r.bytesWritten,
          verified: r.verified,
          durationMs: r.durationMs,
          averageSpeed: r.averageSpeed,
          ejected: r.ejected,
        });
        return r;
      })
      .finally(() => this.jobs.delete(taskId));
    run.catch(() => undefined); // the task's failed/cancelled event carries the reason
    return { taskId };
  }

  /** False when the task is not a flash (someone else's to cancel). */
  cancel(taskId: string): boolean {
    const job = this.jobs.get(taskId);
    if (!job) return false;
    if (!job.ctl)
      throw new Error(
        'this flash runs with administrator rights in its own process and cannot be stopped from here; let it finish',
      );
    job.ctl.abort();
    return true;
  }

  /** Byte progress as `progress` events: one bar per phase, a few updates a second. */
  private progressTo(taskId: string, label: string): (p: FlashProgress) => void {
    let lastAt = 0;
    let lastPhase = '';
    return (p) => {
      if (p.phase === 'finished') return; // hub.task says done
      const phase = PHASE[p.phase];
      const now = Date.now();
      if (phase === lastPhase && now - lastAt < 200) return;
      lastAt = now;
      lastPhase = phase;
      const ev: Progress = {
        taskId,
        label,
        state: 'running',
        done: p.position,
        total: p.total,
        unit: 'bytes',
        ratePerSec: p.speed > 0 ? p.speed : undefined,
        etaSec: p.eta !== undefined && Number.isFinite(p.eta) ? p.eta : undefined,
        message: PHASE_MESSAGE[phase],
        phase,
      };
      this.deps.hub.emit('progress', ev);
    };
  }

  /**
   * Writes a real drive this process may not open: the CLI's own flash command, run
   * elevated (pkexec on Linux, see elevate.ts), its JSON progress lines relayed.
   */
  private async runElevated(
    source: string,
    drive: Drive,
    verify: boolean,
    onProgress: (p: FlashProgress) => void,
  ): Promise<FlashResult> {
    if (process.versions.electron)
      throw new Error(
        `writing ${drive.device} needs administrator rights, which the desktop app cannot ask for yet: run "stacklab flash ${source} ${drive.device} --yes" in a terminal`,
      );
    const argv = ['flash', source, drive.device, '--yes', '--json', '--elevated'];
    if (!verify) argv.push('--no-verify');
    const plan = elevationPlan(argv, `writing ${drive.device} needs administrator rights`, {
      cli: [process.execPath, path.join(appRoot(), 'bin', 'stacklab.mjs')],
    });
    let done: FlashResult | undefined;
    let failure: string | undefined;
    const code = await runElevated(plan, (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not one of ours
      }
      if (msg.event === 'progress') onProgress(msg as unknown as FlashProgress);
      else if (msg.event === 'done') done = msg as unknown as FlashResult;
      else if (msg.event === 'error') failure = String(msg.message);
    });
    if (failure) throw new Error(failure);
    if (!done)
      throw new Error(`the elevated flash of ${drive.device} ended (status ${code}) without a result`);
    return done;
  }
}
