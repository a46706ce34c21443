// The preload: the renderer's only door to the engine. It exposes `window.stacklab`, a
// narrow StacklabApi (request + on), never ipcRenderer itself, and refuses method and
// event names that are not in the contract before anything crosses into the main process.
// Built as CommonJS: sandboxed preloads cannot be ES modules.
import { contextBridge, ipcRenderer } from 'electron';
import {
  type EventName,
  type EventPayload,
  events,
  isMethod,
  type Method,
  type Params,
  type Result,
  type StacklabApi,
} from '../common/contract.ts';
import { IPC_EVENT, IPC_REQUEST } from '../main/ipc-channels.ts';

type Reply = { ok: true; result: unknown } | { ok: false; error: string };

const listeners = new Map<string, Set<(payload: unknown) => void>>();

ipcRenderer.on(IPC_EVENT, (_e, event: unknown, payload: unknown) => {
  if (typeof event !== 'string') return;
  for (const fn of listeners.get(event) ?? []) {
    try {
      fn(payload);
    } catch (err) {
      console.error(`stacklab: a ${event} listener threw`, err);
    }
  }
});

const api: StacklabApi = {
  async request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    if (typeof method !== 'string' || !isMethod(method)) throw new Error(`unknown method: ${String(method)}`);
    const reply = (await ipcRenderer.invoke(IPC_REQUEST, method, params ?? {})) as Reply;
    if (reply?.ok) return reply.result as Result<M>;
    throw new Error(reply?.error ?? 'no answer from the engine');
  },
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    if (typeof event !== 'string' || !Object.hasOwn(events, event))
      throw new Error(`unknown event: ${String(event)}`);
    if (typeof listener !== 'function') throw new Error('listener must be a function');
    const set = listeners.get(event) ?? new Set();
    listeners.set(event, set);
    const fn = listener as (payload: unknown) => void;
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  },
};

contextBridge.exposeInMainWorld('stacklab', api);
