// Which terminals a connection (a lab-mode WebSocket, an Electron window) opened, so the
// transport can close them when that connection goes away. Otherwise a terminal whose
// renderer vanished stays paused forever with its shell alive: nobody will ever ack it.
export class TermOwnership {
  private readonly ids = new Set<string>();

  /** Feed every answered request through here. */
  note(method: string, result: unknown): void {
    if (method === 'term.open' && result && typeof result === 'object' && 'termId' in result) {
      this.ids.add(String((result as { termId: unknown }).termId));
    }
  }

  forget(method: string, params: unknown): void {
    if (method === 'term.close' && params && typeof params === 'object' && 'termId' in params) {
      this.ids.delete(String((params as { termId: unknown }).termId));
    }
  }

  /** Closes everything this connection still owns; errors (already closed) are ignored. */
  async releaseAll(dispatch: (method: string, params: unknown) => Promise<unknown>): Promise<void> {
    const ids = [...this.ids];
    this.ids.clear();
    await Promise.all(ids.map((termId) => dispatch('term.close', { termId }).catch(() => undefined)));
  }
}
