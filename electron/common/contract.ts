// The one contract between the engine and every front end (Electron renderer, lab-mode
// browser, tests). Declared once as zod schemas so both sides share the types and every
// message that crosses a process boundary is validated against the same source.
// This file must stay free of Node and Electron imports: the renderer bundles it.
import { z } from 'zod';
import { CustomiseSpec, PublicCustomisation } from './customise-rules.ts';

export const VmState = z.enum(['starting', 'booting', 'running', 'stopping', 'stopped', 'crashed', 'lost']);
export type VmState = z.infer<typeof VmState>;

export const Milestone = z.enum(['firmware', 'kernel', 'init', 'login', 'shell']);
export type Milestone = z.infer<typeof Milestone>;

export const Id = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:@+-]+$/, 'ids are letters, digits and ._:@+-');

export const HostInfo = z.object({
  os: z.string(),
  osRelease: z.string(),
  arch: z.string(),
  cpuModel: z.string(),
  cpus: z.number().int(),
  memBytes: z.number(),
  kernel: z.string(),
  hostname: z.string(),
  userShell: z.string(),
  loadAvg: z.number().optional(),
});
export type HostInfo = z.infer<typeof HostInfo>;

export const ImageSummary = z.object({
  id: Id,
  name: z.string(),
  source: z.enum(['demo', 'yocto', 'import', 'build', 'download']),
  machine: z.string(), // Yocto MACHINE, e.g. qemuarm64, raspberrypi3-64
  arch: z.string(), // uname name: aarch64, x86_64, ...
  board: z.string(), // QEMU -machine, e.g. virt, q35, raspi3b
  path: z.string(),
  sizeBytes: z.number(),
  /** sha256 of the downloaded or imported file, as checked (demo guests are built here: none). */
  sha256: z.string().optional(),
  description: z.string().optional(),
  bootable: z.boolean(),
  whyNot: z.string().optional(), // one line when bootable is false
});
export type ImageSummary = z.infer<typeof ImageSummary>;

export const ConsoleInfo = z.object({
  index: z.number().int().min(0),
  name: z.string(), // e.g. ttyAMA0, hvc0
});

export const VmSummary = z.object({
  id: Id,
  imageId: Id,
  name: z.string(),
  state: VmState,
  milestones: z.array(z.object({ name: Milestone, atMs: z.number() })),
  startedAt: z.number(),
  pid: z.number().int().optional(),
  binary: z.string(),
  board: z.string(),
  arch: z.string(),
  accel: z.string(),
  accelWhy: z.string(),
  argv: z.array(z.string()),
  commandLine: z.string(), // argv quoted for a shell, for people to read or copy
  kernelVersion: z.string().optional(),
  consoles: z.array(ConsoleInfo),
  sshPort: z.number().int().optional(),
  cpuPercent: z.number().optional(),
  rssBytes: z.number().optional(),
  exit: z.object({ code: z.number().nullable(), signal: z.string().nullable() }).optional(),
  lastLines: z.array(z.string()).optional(), // kept when a VM crashes
  parentId: Id.optional(), // set for nested guests
  depth: z.number().int().min(1).default(1),
});
export type VmSummary = z.infer<typeof VmSummary>;

export const TermTarget = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('host') }),
  z.object({ kind: z.literal('serial'), vmId: Id, index: z.number().int().min(0).default(0) }),
  z.object({ kind: z.literal('monitor'), vmId: Id }),
  // Foreign userspace straight on the host kernel: a shell in an image's root filesystem under qemu-user.
  z.object({ kind: z.literal('usermode'), imageId: Id, arch: z.string().min(1).max(32).optional() }),
  // A Yocto build's live bitbake output (read-only: the build is cancelled with build.cancel).
  z.object({ kind: z.literal('build'), buildId: Id }),
]);
export type TermTarget = z.infer<typeof TermTarget>;

const Size = { cols: z.number().int().min(2).max(1000), rows: z.number().int().min(1).max(500) };

export const Progress = z.object({
  taskId: Id,
  label: z.string(),
  state: z.enum(['running', 'done', 'failed', 'cancelled']),
  done: z.number(),
  total: z.number().optional(),
  unit: z.enum(['bytes', 'items', 'percent']).default('items'),
  ratePerSec: z.number().optional(),
  etaSec: z.number().optional(),
  message: z.string().optional(),
  /** The step of a task that has several, each with its own bar (flashing: write, verify). */
  phase: z.string().max(32).optional(),
});
export type Progress = z.infer<typeof Progress>;

export const CatalogueItem = z.object({
  id: Id,
  name: z.string(),
  description: z.string().optional(),
  machine: z.string(),
  arch: z.string(),
  board: z.string(),
  release: z.string().optional(),
  source: z.enum(['yocto', 'user', 'demo']),
  catalogue: z.string(),
  files: z.array(z.object({ name: z.string(), url: z.string() })),
  installed: z.boolean(),
});
export type CatalogueItem = z.infer<typeof CatalogueItem>;

export const SnapshotInfo = z.object({
  id: z.string(),
  name: z.string(),
  sizeBytes: z.number(),
  date: z.string(),
  vmClock: z.number(),
});
export type SnapshotInfo = z.infer<typeof SnapshotInfo>;
const SnapshotName = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9._-]*$/,
    'snapshot names are letters, digits and ._- (not starting with . or -)',
  );

export const StackPreset = z.object({
  name: z.string(),
  title: z.string(),
  description: z.string(),
  layers: z.array(z.object({ name: z.string(), image: z.string(), depth: z.number().int() })),
});
export type StackPreset = z.infer<typeof StackPreset>;

// Yocto builds (electron/engine/build): what can be built, and one build's state as it runs.
export const BuildTargets = z.object({
  releases: z.array(z.object({ name: z.string(), version: z.string() })),
  images: z.array(z.object({ image: z.string(), summary: z.string(), machines: z.array(z.string()) })),
  defaults: z.object({ release: z.string(), runner: z.enum(['host', 'container']) }),
  /** One line when builds cannot start here as things stand (e.g. running as root). */
  blocked: z.string().optional(),
});
export type BuildTargets = z.infer<typeof BuildTargets>;

export const BuildState = z.enum([
  'preparing',
  'running',
  'importing',
  'succeeded',
  'failed',
  'cancelled',
  'lost',
]);
export type BuildState = z.infer<typeof BuildState>;

export const BuildInfo = z.object({
  id: Id,
  image: z.string(),
  machine: z.string(),
  release: z.string(),
  /** The workspace directory. */
  dir: z.string(),
  runner: z.enum(['host', 'container']),
  /** Built from the download cache only (BB_NO_NETWORK). */
  offline: z.boolean(),
  state: BuildState,
  /** bitbake's progress as knotty shows it: parsing %, setscene N/M, task N/M. */
  progress: z.object({
    phase: z.enum(['preparing', 'parsing', 'setscene', 'tasks', 'importing', 'done', 'failed']),
    label: z.string(),
    percent: z.number(),
    done: z.number(),
    total: z.number(),
    currentTasks: z.array(z.string()),
  }),
  warnings: z.array(z.string()),
  startedAt: z.number(),
  endedAt: z.number().optional(),
  /** One line: what happened (set when the build ends). */
  message: z.string().optional(),
  /** The first failed task; `failedTasks` counts them all. */
  failure: z
    .object({ task: z.string(), recipe: z.string(), logPath: z.string().optional(), line: z.string() })
    .optional(),
  failedTasks: z.number().int().optional(),
  /** The line that matters, shortened for people. */
  keyLine: z.string().optional(),
  exitCode: z.number().nullable().optional(),
  /** Library ids of the images this build put in the library. */
  imported: z.array(Id),
});
export type BuildInfo = z.infer<typeof BuildInfo>;

// Try, customise, flash (electron/engine/handlers/flash.ts).
export const CustomiseStatus = z.object({
  imageId: Id,
  vmId: Id,
  /** The VM boots a customised copy of the image (the image itself is never changed). */
  customised: z.boolean(),
  changes: z.array(z.string()),
  /** What was set, without the password or the Wi-Fi passphrase. */
  settings: PublicCustomisation.optional(),
  flavour: z.string().optional(),
  why: z.string().optional(),
  notes: z.array(z.string()),
  createdAt: z.number().optional(),
  /** The VM has a disk with changes from earlier runs: customising again starts a fresh one. */
  hasDisk: z.boolean(),
  running: z.boolean(),
});
export type CustomiseStatus = z.infer<typeof CustomiseStatus>;

export const DriveChoice = z.object({
  device: z.string(),
  description: z.string(),
  sizeBytes: z.number().nullable(),
  removable: z.boolean(),
  system: z.boolean(),
  readOnly: z.boolean(),
  virtual: z.boolean(),
  mountpoints: z.array(z.string()),
  /** May receive the image; otherwise `reason` says why not, in one line. */
  eligible: z.boolean(),
  reason: z.string().optional(),
  /** Writing it needs administrator rights the system will ask for. */
  needsElevation: z.boolean(),
});
export type DriveChoice = z.infer<typeof DriveChoice>;

export const FlashFinished = z.object({
  taskId: Id,
  imageId: Id,
  device: z.string(),
  /** A customised copy was written (the bytes its VM booted), not the image as it came. */
  customised: z.boolean(),
  imageBytes: z.number(),
  bytesWritten: z.number(),
  verified: z.boolean(),
  durationMs: z.number(),
  averageSpeed: z.number(),
  /** The drive was unmounted and can be removed. */
  ejected: z.boolean(),
});
export type FlashFinished = z.infer<typeof FlashFinished>;

const Empty = z.object({}).strict();
const Ok = z.object({ ok: z.literal(true) });

/** Requests: method name → params and result schemas. */
export const requests = {
  'host.info': { params: Empty, result: HostInfo },
  'images.list': { params: Empty, result: z.array(ImageSummary) },
  // Which QEMU runs the VMs and why; a damaged bundle is named here so the app can say so.
  'host.qemu': {
    params: Empty,
    result: z.object({
      source: z.string(),
      why: z.string(),
      dir: z.string(),
      bundle: z.object({
        present: z.boolean(),
        ok: z.boolean().optional(),
        version: z.string().optional(),
        problems: z.array(z.string()),
      }),
      warning: z.string().optional(),
    }),
  },
  'images.catalogue': {
    params: Empty,
    result: z.object({ entries: z.array(CatalogueItem), errors: z.array(z.string()) }),
  },
  // Starts a download; progress arrives as `progress` events under the returned task id.
  'images.install': { params: z.object({ entryId: Id }).strict(), result: z.object({ taskId: Id }) },
  'images.import': { params: z.object({ path: z.string().min(1).max(4096) }).strict(), result: ImageSummary },
  'images.remove': {
    params: z.object({ imageId: Id }).strict(),
    result: z.object({ freedBytes: z.number() }),
  },
  'task.cancel': { params: z.object({ taskId: Id }).strict(), result: Ok },
  'vm.list': { params: Empty, result: z.array(VmSummary) },
  'vm.boot': {
    params: z
      .object({
        imageId: Id,
        memMiB: z.number().int().min(64).max(65536).optional(),
        smp: z.number().int().min(1).max(64).optional(),
      })
      .strict(),
    result: VmSummary,
  },
  'vm.stop': { params: z.object({ vmId: Id, force: z.boolean().default(false) }).strict(), result: Ok },
  'vm.restart': { params: z.object({ vmId: Id }).strict(), result: VmSummary },
  'vm.remove': { params: z.object({ vmId: Id }).strict(), result: Ok },
  'vm.log': { params: z.object({ vmId: Id }).strict(), result: z.object({ text: z.string() }) },
  'disk.snapshots': { params: z.object({ vmId: Id }).strict(), result: z.array(SnapshotInfo) },
  'disk.snapshot.take': { params: z.object({ vmId: Id, name: SnapshotName }).strict(), result: SnapshotInfo },
  'disk.snapshot.revert': {
    params: z.object({ vmId: Id, name: SnapshotName }).strict(),
    result: SnapshotInfo,
  },
  'disk.snapshot.delete': { params: z.object({ vmId: Id, name: SnapshotName }).strict(), result: Ok },
  // Back to the base image: the VM's changes and snapshots are dropped (the UI asks first).
  'disk.reset': {
    params: z.object({ vmId: Id }).strict(),
    result: z.object({ freedBytes: z.number(), droppedSnapshots: z.number(), changed: z.boolean() }),
  },
  'disk.resize': {
    params: z
      .object({ vmId: Id, sizeBytes: z.number().int().positive(), dropSnapshots: z.boolean().default(false) })
      .strict(),
    result: z
      .object({ vmId: Id, previousBytes: z.number(), sizeBytes: z.number(), filesystemBytes: z.number() })
      .passthrough(),
  },
  'disk.usage': {
    params: z.object({ vmId: Id }).strict(),
    result: z.object({
      overlayBytes: z.number(),
      baseBytes: z.number(),
      snapshots: z.number(),
      virtualBytes: z.number(),
    }),
  },
  'stack.presets': { params: Empty, result: z.array(StackPreset) },
  // Boots the whole stack; resolves once every layer's QEMU runs (inner guests still booting).
  // Steps arrive as `progress` events with taskId `stack-<name>`.
  'stack.up': {
    params: z.object({ preset: z.string().min(1).max(64) }).strict(),
    result: z.object({ name: z.string(), vmIds: z.array(Id) }),
  },
  // Runs the same CPU benchmark on the host, in user mode and at every layer of a running stack.
  'stack.layerTax': {
    params: z.object({ name: z.string().min(1).max(64) }).strict(),
    result: z.array(
      z.object({
        layer: z.string(),
        kind: z.enum(['host', 'usermode', 'guest', 'nested']),
        seconds: z.number(),
        factor: z.number(),
        why: z.string(),
      }),
    ),
  },
  'stack.down': { params: z.object({ name: z.string().min(1).max(64) }).strict(), result: Ok },
  'term.open': {
    params: z.object({ target: TermTarget, ...Size }).strict(),
    result: z.object({ termId: Id, title: z.string() }),
  },
  'term.input': { params: z.object({ termId: Id, data: z.string().max(65536) }).strict(), result: Ok },
  'term.resize': { params: z.object({ termId: Id, ...Size }).strict(), result: Ok },
  // Flow control: the renderer acknowledges characters once xterm.js has parsed them.
  'term.ack': { params: z.object({ termId: Id, chars: z.number().int().min(0) }).strict(), result: Ok },
  'term.close': { params: z.object({ termId: Id }).strict(), result: Ok },
  'build.targets': { params: Empty, result: BuildTargets },
  // Starts a build and returns at once; `build.changed` events follow it to the end.
  'build.start': {
    params: z
      .object({
        image: z.string().min(1).max(64),
        machine: z.string().min(1).max(64),
        release: z.string().min(1).max(32),
        /** The workspace directory (absolute); default: one per choice under the data dir. */
        dir: z.string().min(1).max(4096).optional(),
        runner: z.enum(['host', 'container']).optional(),
        /** Build only from what the download cache holds (BB_NO_NETWORK). */
        offline: z.boolean().optional(),
      })
      .strict(),
    result: BuildInfo,
  },
  'build.status': { params: z.object({ buildId: Id }).strict(), result: BuildInfo },
  // This engine's builds and the ones recorded by other Stacklab processes, newest first.
  'build.list': { params: Empty, result: z.array(BuildInfo) },
  // Ctrl-C to bitbake (running tasks finish), a second one later, then kill.
  'build.cancel': { params: z.object({ buildId: Id }).strict(), result: Ok },
  // Customises the image's VM: a derived working copy it boots from next (the base is never
  // changed); passwords are hashed in the engine and never stored in plain text.
  'vm.customise': {
    params: z.object({ imageId: Id, spec: CustomiseSpec, resetDisk: z.boolean().default(false) }).strict(),
    result: z.object({
      imageId: Id,
      vmId: Id,
      cached: z.boolean(),
      flavour: z.string(),
      why: z.string(),
      changes: z.array(z.string()),
      notes: z.array(z.string()),
    }),
  },
  'customise.get': { params: z.object({ imageId: Id }).strict(), result: CustomiseStatus },
  'customise.reset': {
    params: z.object({ imageId: Id }).strict(),
    result: z.object({ dropped: z.boolean() }),
  },
  // Drives with whether each may receive this image's flash, and why not when refused.
  'drives.list': {
    params: z.object({ imageId: Id.optional() }).strict(),
    result: z.object({
      drives: z.array(DriveChoice),
      source: z
        .object({
          imageId: Id,
          customised: z.boolean(),
          changes: z.array(z.string()),
          imageBytes: z.number(),
        })
        .optional(),
      /** Why writing a drive asks for administrator rights, said before the system asks. */
      elevation: z.string(),
    }),
  },
  // Writes the image (its VM's customised copy when it has one) to a drive; returns at once.
  // `progress` events (phase write/verify) follow under the task id, then `flash.finished`;
  // task.cancel stops it.
  'flash.start': {
    params: z
      .object({
        imageId: Id.optional(),
        vmId: Id.optional(),
        device: z.string().min(1).max(256),
        confirm: z.literal(true, {
          message: 'confirm must be true: flashing replaces everything on the drive',
        }),
        verify: z.boolean().default(true),
      })
      .strict()
      .refine((p) => (p.imageId === undefined) !== (p.vmId === undefined), {
        message: 'give the imageId or the vmId to flash (one of them)',
      }),
    result: z.object({ taskId: Id }),
  },
  'settings.get': { params: Empty, result: z.record(z.string(), z.unknown()) },
  'settings.set': {
    params: z.object({ key: z.string().min(1).max(64), value: z.unknown() }).strict(),
    result: Ok,
  },
} as const;

export type Method = keyof typeof requests;
export type Params<M extends Method> = z.input<(typeof requests)[M]['params']>;
export type ParsedParams<M extends Method> = z.output<(typeof requests)[M]['params']>;
export type Result<M extends Method> = z.infer<(typeof requests)[M]['result']>;

/** Events: pushed from the engine to every connected front end. */
export const events = {
  'vm.changed': VmSummary,
  'vm.removed': z.object({ vmId: Id }),
  'term.data': z.object({ termId: Id, data: z.string() }),
  'term.exit': z.object({ termId: Id, code: z.number().nullable() }),
  progress: Progress,
  'images.changed': z.object({}),
  'flash.finished': FlashFinished,
  'build.changed': BuildInfo,
} as const;

export type EventName = keyof typeof events;
export type EventPayload<E extends EventName> = z.infer<(typeof events)[E]>;

/** What a transport calls into: the engine side implements it, the renderer consumes it. */
export interface StacklabApi {
  request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>>;
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

// Wire frames for transports that carry JSON (the lab-mode WebSocket).
export const ClientFrame = z
  .object({
    t: z.literal('req'),
    id: z.number().int().min(0),
    method: z.string().max(64),
    params: z.unknown(),
  })
  .strict();
export type ClientFrame = z.infer<typeof ClientFrame>;

export type ServerFrame =
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; error: string }
  | { t: 'evt'; event: EventName; payload: unknown };

export function isMethod(name: string): name is Method {
  return Object.hasOwn(requests, name);
}

/** Validates a request's params; throws a one-line error naming the method. */
export function parseParams<M extends Method>(method: M, params: unknown): ParsedParams<M> {
  const r = requests[method].params.safeParse(params ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    const where = first?.path.length ? ` at ${first.path.join('.')}` : '';
    throw new ContractError(`bad params for ${method}${where}: ${first?.message ?? 'invalid'}`);
  }
  return r.data as ParsedParams<M>;
}

export class ContractError extends Error {
  override name = 'ContractError';
}
