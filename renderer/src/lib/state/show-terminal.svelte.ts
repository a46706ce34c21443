// Showing a terminal session in an element: the session owns its xterm; a panel only moves
// the xterm element in (detaching keeps the scrollback for the next time it is shown) and
// fits it on every size change, at most once per frame. Call during component set-up.
import { untrack } from 'svelte';
import type { TerminalSession } from './terminal-session.svelte.ts';

export function showTerminal(
  session: () => TerminalSession | null | undefined,
  mount: () => HTMLElement | undefined,
): void {
  $effect(() => {
    const s = session();
    const m = mount();
    if (!s || !m) return;
    // Untracked: attach reads the session's status, and a status change must not detach it.
    untrack(() => s.attach(m));
    return () => s.detach();
  });

  $effect(() => {
    const m = mount();
    if (!m) return;
    let frame = 0;
    const ro = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => session()?.fitNow());
    });
    ro.observe(m);
    return () => {
      cancelAnimationFrame(frame);
      ro.disconnect();
    };
  });
}
