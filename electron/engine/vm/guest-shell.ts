// Running one command in a guest through its serial console, the way a person would:
// log in at `login:` if asked, wait for the prompt, type the command between two markers
// and read what came back. Markers are typed split by quotes so the terminal's echo of
// the typed line can never be mistaken for the command's own output.
import type { Channel } from './channel.ts';
import { stripAnsi } from './milestones.ts';

const PROMPT = /(?:^|\n)[^\n]{0,80}[#$] $/;
const LOGIN = /\blogin: ?$/;

export interface GuestRun {
  status: number;
  output: string;
}

/** Waits until the accumulated console text satisfies `test`, or times out with `what`. */
function waitFor(
  ch: Channel,
  test: (text: string) => boolean,
  what: string,
  timeoutMs: number,
  seed = '',
): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = seed;
    const done = (err?: Error) => {
      clearTimeout(timer);
      ch.off('data', onData);
      ch.off('close', onClose);
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (b: Buffer) => {
      text = (text + b.toString('utf8')).slice(-1_000_000);
      if (test(text)) done();
    };
    const onClose = () => done(new Error(`the console closed while waiting for ${what}`));
    const timer = setTimeout(
      () => done(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`)),
      timeoutMs,
    );
    ch.on('data', onData);
    ch.on('close', onClose);
    if (test(text)) done();
  });
}

/** Brings the console to a shell prompt, logging in as `user` if a login prompt shows. */
export async function reachShell(
  ch: Channel,
  opts: { user?: string; timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const clean = (t: string) => stripAnsi(t).replace(/\r/g, '');
  const tail = clean(ch.history().toString('utf8').slice(-2000));
  const atLogin = (t: string) => LOGIN.test(clean(t));
  const atPrompt = (t: string) => PROMPT.test(clean(t));
  let text = tail;
  if (!atLogin(text) && !atPrompt(text)) {
    // Nothing waiting yet (still booting) — or the prompt scrolled by: a bare Enter redraws it.
    if (tail.length > 0) ch.write('\r');
    text = await waitFor(ch, (t) => atLogin(t) || atPrompt(t), 'a login prompt', timeoutMs);
  }
  if (atLogin(text) && !atPrompt(text)) {
    ch.write(`${opts.user ?? 'root'}\r`);
    await waitFor(ch, atPrompt, 'the shell prompt after logging in', 30_000);
  }
}

let seq = 0;

export async function runInGuest(
  ch: Channel,
  command: string,
  opts: { timeoutMs?: number; user?: string } = {},
): Promise<GuestRun> {
  await reachShell(ch, { user: opts.user, timeoutMs: opts.timeoutMs });
  const tag = `${process.pid.toString(36)}${(seq++).toString(36)}`;
  const begin = `__SL_B_${tag}__`;
  const endRe = new RegExp(`__SL_E_${tag}_(\\d+)__`);
  const typedBegin = `__SL_'B'_${tag}__`;
  const typedEnd = `__SL_'E'_${tag}_$?__`;
  // Kernel messages on the console would interleave with the output: quiet them first.
  const line = `dmesg -n 1 2>/dev/null; echo ${typedBegin}; ( ${command} ); echo ${typedEnd}\r`;
  const done = waitFor(ch, (t) => endRe.test(t), `"${command}" to finish`, opts.timeoutMs ?? 120_000);
  ch.write(line);
  const text = (await done).replace(/\r/g, '');
  const start = text.lastIndexOf(`${begin}\n`);
  const m = endRe.exec(text);
  if (start < 0 || !m) throw new Error('could not read the command output from the console');
  return { status: Number(m[1]), output: text.slice(start + begin.length + 1, m.index) };
}
