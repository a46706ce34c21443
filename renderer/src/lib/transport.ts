// Picks how the renderer reaches the engine: Electron's preload bridge when present,
// otherwise the lab-mode WebSocket on the page's own origin.
import {
  type EventName,
  type EventPayload,
  events,
  type Method,
  type Params,
  parseParams,
  type Result,
  requests,
  type StacklabApi,
} from '../../../electron/common/contract.ts';
import { labSocketUrl } from './lab-url.ts';
import { type ConnStatus, WsClient } from './ws-client.ts';

export interface Transport extends StacklabApi {
  readonly kind: 'electron' | 'lab';
  onStatus(listener: (s: ConnStatus) => void): () => void;
  retryNow(): void;
}

declare global {
  interface Window {
    stacklab?: StacklabApi;
  }
}

/** Wraps the preload bridge so its answers are checked like the WebSocket's. */
class ElectronTransport implements Transport {
  readonly kind = 'electron';
  constructor(private readonly api: StacklabApi) {}

  async request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    const checked = parseParams(method, params) as Params<M>;
    const result = await this.api.request(method, checked);
    const r = requests[method].result.safeParse(result);
    if (!r.success)
      throw new Error(`Stacklab answered ${method} outside the contract: ${r.error.issues[0]?.message}`);
    return r.data as Result<M>;
  }

  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    return this.api.on(event, (payload) => {
      const r = events[event].safeParse(payload);
      if (r.success) listener(r.data as EventPayload<E>);
      else console.warn(`stacklab: dropped a ${event} event outside the contract`);
    });
  }

  onStatus(listener: (s: ConnStatus) => void): () => void {
    listener({ state: 'open', opens: 1 });
    return () => {};
  }

  retryNow(): void {}
}

class LabTransport implements Transport {
  readonly kind = 'lab';
  constructor(private readonly client: WsClient) {}
  request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    return this.client.request(method, params);
  }
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    return this.client.on(event, listener);
  }
  onStatus(listener: (s: ConnStatus) => void): () => void {
    return this.client.onStatus(listener);
  }
  retryNow(): void {
    this.client.retryNow();
  }
}

export function createTransport(): Transport {
  if (window.stacklab) return new ElectronTransport(window.stacklab);
  return new LabTransport(new WsClient({ url: labSocketUrl(window.location.href) }));
}
