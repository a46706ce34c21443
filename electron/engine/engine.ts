// The engine facade: the one object every front end drives (Electron main, lab mode,
// CLI, tests). It validates each request against the shared contract, routes it to the
// module that owns the concern, and fans events out to subscribers.
import { EventEmitter } from 'node:events';
import {
  ContractError,
  type EventName,
  type EventPayload,
  events,
  isMethod,
  type Method,
  type ParsedParams,
  parseParams,
  type Result,
  requests,
} from '../common/contract.ts';

export type Handlers = { [M in Method]: (params: ParsedParams<M>) => Promise<Result<M>> };

export class EventHub {
  private readonly bus = new EventEmitter();
  constructor() {
    this.bus.setMaxListeners(0);
  }
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void {
    this.bus.emit(event, payload);
  }
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    this.bus.on(event, listener);
    return () => this.bus.off(event, listener);
  }
  /**
   * Runs slow work as a task front ends can show as a bar: `running` (with each step's
   * message), then `done` or `failed` with the one-line reason.
   */
  async task<T>(
    taskId: string,
    label: string,
    work: (step: (message: string) => void) => Promise<T>,
  ): Promise<T> {
    const step = (message: string) =>
      this.emit('progress', { taskId, label, state: 'running', done: 0, unit: 'items', message });
    this.emit('progress', { taskId, label, state: 'running', done: 0, unit: 'items' });
    try {
      const r = await work(step);
      this.emit('progress', { taskId, label, state: 'done', done: 1, total: 1, unit: 'items' });
      return r;
    } catch (e) {
      this.emit('progress', {
        taskId,
        label,
        // Work that was cancelled on purpose throws an AbortError (as fetch and streams do).
        state: (e as Error).name === 'AbortError' ? 'cancelled' : 'failed',
        done: 0,
        unit: 'items',
        message: (e as Error).message,
      });
      throw e;
    }
  }

  /** Every event, for transports that forward all of them. */
  onAny(listener: (event: EventName, payload: unknown) => void): () => void {
    const offs = (Object.keys(events) as EventName[]).map((e) => this.on(e, (p) => listener(e, p)));
    return () => {
      for (const off of offs) off();
    };
  }
}

export class Dispatcher {
  constructor(private readonly handlers: Handlers) {}

  /** Validates and runs one request. Throws a one-line Error the transport reports back. */
  async dispatch(method: string, params: unknown): Promise<unknown> {
    if (!isMethod(method)) throw new ContractError(`unknown method: ${String(method).slice(0, 64)}`);
    const parsed = parseParams(method, params);
    const handler = this.handlers[method] as (p: unknown) => Promise<unknown>;
    const result = await handler(parsed);
    // The engine checks its own answers too, so a contract drift shows up in tests, not in the UI.
    const r = requests[method].result.safeParse(result);
    if (!r.success)
      throw new Error(`engine answered ${method} outside the contract: ${r.error.issues[0]?.message}`);
    return r.data;
  }
}
