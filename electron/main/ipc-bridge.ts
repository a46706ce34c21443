// The main-process end of the IPC channel, without Electron: checks the sender (VS
// Code's validatedIpcMain rule), checks the arguments, calls the dispatcher and wraps the
// outcome in a reply envelope (so the renderer sees the engine's one-line message, not
// Electron's "Error invoking remote method" prefix). It also remembers which terminals each
// page opened so they can be closed when that page reloads, crashes or closes.
import type { Dispatcher } from '../engine/engine.ts';
import { TermOwnership } from '../engine/term/ownership.ts';
import { isTrustedSender, parseIpcRequest, type SenderFrameInfo } from './policy.ts';

export type IpcReply = { ok: true; result: unknown } | { ok: false; error: string };

function oneLine(e: unknown): string {
  return ((e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '').slice(0, 500) || 'failed';
}

export function createIpcBridge(opts: {
  dispatcher: Pick<Dispatcher, 'dispatch'>;
  log: (line: string) => void;
}) {
  const owners = new Map<number, TermOwnership>();
  const dispatch = (m: string, p: unknown) => opts.dispatcher.dispatch(m, p);

  return {
    /** One `stacklab:req` invocation from the page in WebContents `contentsId`. */
    async handle(
      contentsId: number,
      sender: SenderFrameInfo | null,
      method: unknown,
      params: unknown,
    ): Promise<IpcReply> {
      if (!isTrustedSender(sender)) {
        const who = !sender
          ? 'a frame that is gone'
          : sender.isMainFrame
            ? sender.url
            : `a sub-frame at ${sender.url}`;
        opts.log(`refused IPC from ${who.slice(0, 200)}`);
        return { ok: false, error: 'refused: this page may not call the engine' };
      }
      try {
        const req = parseIpcRequest(method, params);
        const result = await dispatch(req.method, req.params);
        const owner = owners.get(contentsId) ?? new TermOwnership();
        owners.set(contentsId, owner);
        owner.note(req.method, result);
        owner.forget(req.method, req.params);
        return { ok: true, result };
      } catch (e) {
        const error = oneLine(e);
        opts.log(
          `${typeof method === 'string' ? JSON.stringify(method.slice(0, 64)) : 'request'} refused: ${error}`,
        );
        return { ok: false, error };
      }
    },

    /** The page went away (reload, crash, close): its terminals can never be acknowledged again. */
    async release(contentsId: number): Promise<void> {
      const owner = owners.get(contentsId);
      owners.delete(contentsId);
      await owner?.releaseAll(dispatch);
    },
  };
}
