// The lab-mode transport: the contract over one WebSocket, JSON frames both ways.
// Reconnects with backoff; requests still waiting when the socket closes are rejected
// with one line, and everything that arrives is checked against the contract.
import { z } from 'zod';
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

export type ConnState = 'connecting' | 'open' | 'closed';

export interface ConnStatus {
  state: ConnState;
  /** When the next attempt starts (epoch ms), while closed. */
  retryAt?: number;
  /** Why the last connection ended, one line. */
  reason?: string;
  /** How many times the socket has opened; >1 means this is a reconnection. */
  opens: number;
  /** Failed attempts since the last successful open. */
  failures?: number;
}

/** The part of the WebSocket API this client uses (browser WebSocket and `ws` both have it). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export interface WsClientOptions {
  url: string;
  connect?: (url: string) => SocketLike;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** For tests: 0..1; defaults to Math.random. */
  random?: () => number;
}

const ServerFrame = z.union([
  z.object({ t: z.literal('res'), id: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.object({ t: z.literal('res'), id: z.number().int(), ok: z.literal(false), error: z.string() }),
  z.object({ t: z.literal('evt'), event: z.string(), payload: z.unknown() }),
]);

interface Pending {
  method: Method;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  frame: string;
  sent: boolean;
}

type AnyListener = (payload: unknown) => void;

/** Backoff before attempt `n` (0-based): doubling from min to max, ±20 % jitter. */
export function backoffDelay(n: number, min: number, max: number, random: () => number): number {
  const base = Math.min(max, min * 2 ** Math.min(n, 20));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class WsClient implements StacklabApi {
  private socket: SocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<AnyListener>>();
  private readonly statusListeners = new Set<(s: ConnStatus) => void>();
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private current: ConnStatus = { state: 'connecting', opens: 0 };
  private readonly connectFn: (url: string) => SocketLike;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private readonly random: () => number;

  constructor(private readonly opts: WsClientOptions) {
    this.connectFn = opts.connect ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    this.minDelay = opts.minDelayMs ?? 500;
    this.maxDelay = opts.maxDelayMs ?? 8000;
    this.random = opts.random ?? Math.random;
    this.open();
  }

  get status(): ConnStatus {
    return this.current;
  }

  onStatus(listener: (s: ConnStatus) => void): () => void {
    this.statusListeners.add(listener);
    listener(this.current);
    return () => this.statusListeners.delete(listener);
  }

  request<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    if (this.stopped) return Promise.reject(new Error('the connection to Stacklab is closed'));
    let checked: unknown;
    try {
      checked = parseParams(method, params);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const id = this.nextId++;
    const frame = JSON.stringify({ t: 'req', id, method, params: checked });
    return new Promise<Result<M>>((resolve, reject) => {
      const p: Pending = { method, resolve: resolve as (v: unknown) => void, reject, frame, sent: false };
      this.pending.set(id, p);
      // Requests made while (re)connecting wait for the socket; a close rejects them.
      if (this.current.state === 'open') this.send(p);
      else if (this.current.state === 'closed') {
        this.pending.delete(id);
        reject(new Error(`not connected to Stacklab, so ${method} was not sent`));
      }
    });
  }

  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as AnyListener);
    return () => set.delete(listener as AnyListener);
  }

  /** Stops for good: no reconnection, pending requests rejected. */
  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close(1000, 'closing');
    }
    this.failPending('the connection to Stacklab was closed');
    this.setStatus({ state: 'closed', reason: 'closed', opens: this.current.opens });
  }

  private send(p: Pending): void {
    p.sent = true;
    this.socket?.send(p.frame);
  }

  private open(): void {
    if (this.stopped) return;
    this.setStatus({ state: 'connecting', opens: this.current.opens });
    let s: SocketLike;
    try {
      s = this.connectFn(this.opts.url);
    } catch (e) {
      this.scheduleRetry(e instanceof Error ? e.message : String(e));
      return;
    }
    this.socket = s;
    s.onopen = () => {
      this.attempt = 0;
      this.setStatus({ state: 'open', opens: this.current.opens + 1 });
      for (const p of this.pending.values()) if (!p.sent) this.send(p);
    };
    s.onmessage = (ev) => this.receive(ev.data);
    s.onerror = () => {
      // The close event follows and carries what little the browser tells us.
    };
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = null;
      const reason = ev.reason || (ev.code === 1006 ? 'the server went away' : `closed (code ${ev.code})`);
      this.failPending(`connection to Stacklab lost (${reason})`);
      this.scheduleRetry(reason);
    };
  }

  private scheduleRetry(reason: string): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++, this.minDelay, this.maxDelay, this.random);
    this.setStatus({
      state: 'closed',
      retryAt: Date.now() + delay,
      reason,
      opens: this.current.opens,
      failures: this.attempt,
    });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  /** Try now instead of waiting for the backoff (the banner's "Retry now"). */
  retryNow(): void {
    if (this.stopped || this.current.state !== 'closed') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.open();
  }

  private failPending(why: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new Error(`${why} before ${p.method} answered`));
  }

  private receive(data: unknown): void {
    let frame: z.infer<typeof ServerFrame>;
    try {
      const r = ServerFrame.safeParse(JSON.parse(String(data)));
      if (!r.success) throw new Error(r.error.issues[0]?.message ?? 'bad frame');
      frame = r.data;
    } catch (e) {
      console.warn(`stacklab: dropped a frame the contract does not allow: ${(e as Error).message}`);
      return;
    }
    if (frame.t === 'evt') {
      this.dispatchEvent(frame.event, frame.payload);
      return;
    }
    const p = this.pending.get(frame.id);
    if (!p) return;
    this.pending.delete(frame.id);
    if (!frame.ok) {
      p.reject(new Error(frame.error));
      return;
    }
    const r = requests[p.method].result.safeParse(frame.result);
    if (r.success) p.resolve(r.data);
    else
      p.reject(
        new Error(`Stacklab answered ${p.method} outside the contract: ${r.error.issues[0]?.message}`),
      );
  }

  private dispatchEvent(name: string, payload: unknown): void {
    const set = this.listeners.get(name);
    if (!set || set.size === 0 || !Object.hasOwn(events, name)) return;
    const r = events[name as EventName].safeParse(payload);
    if (!r.success) {
      console.warn(`stacklab: dropped a ${name} event outside the contract: ${r.error.issues[0]?.message}`);
      return;
    }
    for (const l of [...set]) {
      try {
        l(r.data);
      } catch (e) {
        console.error(`stacklab: a ${name} listener failed`, e);
      }
    }
  }

  private setStatus(s: ConnStatus): void {
    this.current = s;
    for (const l of [...this.statusListeners]) l(s);
  }
}
