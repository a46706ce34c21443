// Terminals with a real pty (node-pty running /bin/sh and `yes`) and real Channels. The
// only double is the Channel's sink, which stands in for QEMU's chardev socket: it records
// what the terminal wrote and whether the channel asked it to pause.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../electron/engine/engine.ts';
import { HIGH_WATERMARK_CHARS } from '../../electron/engine/term/flow-control.ts';
import { Terminals } from '../../electron/engine/term/terminals.ts';
import { Channel } from '../../electron/engine/vm/channel.ts';

const PROMPT = 'SLAB$ ';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Polls until `read()` stops changing for `quietMs`. */
async function settle(read: () => number, quietMs = 500, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last = read();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > end) throw new Error('output never settled');
    await sleep(25);
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

class RecordingSink {
  writes: Buffer[] = [];
  pauses = 0;
  resumes = 0;
  write(b: Buffer) {
    this.writes.push(b);
  }
  pause() {
    this.pauses++;
  }
  resume() {
    this.resumes++;
  }
  text() {
    return Buffer.concat(this.writes).toString('utf8');
  }
}

let tmp: string;
let terms: Terminals;
let hub: EventHub;
let channels: Map<string, Channel>;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-term-'));
  return () => rmSync(tmp, { recursive: true, force: true });
});

function setup() {
  hub = new EventHub();
  channels = new Map();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PS1: PROMPT,
    HOME: tmp,
    npm_config_prefix: '/x',
    LINES: '5',
  };
  delete env.ENV; // dash would source it
  terms = new Terminals({
    hub,
    hostShell: { file: '/bin/sh', args: [], cwd: tmp, env },
    resolve: (t) => {
      const key = t.kind === 'serial' ? `${t.vmId}/serial${t.index}` : `${t.vmId}/monitor`;
      const channel = channels.get(key);
      if (!channel) throw new Error(`no VM ${t.vmId}`);
      return { title: `${t.vmId} ${channel.name}`, channel };
    },
  });
}

function record(termId: string) {
  const r = { text: '', chars: 0, events: [] as string[], exit: undefined as number | null | undefined };
  hub.on('term.data', (e) => {
    if (e.termId !== termId) return;
    r.chars += e.data.length;
    r.events.push(e.data);
    r.text = (r.text + e.data).slice(-8192);
  });
  hub.on('term.exit', (e) => {
    if (e.termId === termId) r.exit = e.code;
  });
  return r;
}

afterEach(() => terms?.closeAll());

describe('host terminal (real pty)', () => {
  it('pauses `yes` past the high watermark, resumes on ack, and Ctrl-C brings the prompt back', async () => {
    setup();
    const { termId, title } = terms.open({ kind: 'host' }, 80, 24);
    expect(title).toContain('sh');
    const r = record(termId);
    await until(() => r.text.includes(PROMPT), 'the prompt');
    terms.input(termId, 'echo PID=$$\r');
    await until(() => /PID=\d+/.test(r.text), 'the shell pid');
    const shellPid = Number(/PID=(\d+)/.exec(r.text)![1]);

    terms.input(termId, 'yes\r');
    // No acks: the flood must stop by itself just past the high watermark.
    const stalled = await settle(() => r.chars);
    console.log(`unacked when the pty paused: ${stalled} chars (high watermark ${HIGH_WATERMARK_CHARS})`);
    expect(stalled).toBeGreaterThan(HIGH_WATERMARK_CHARS);
    expect(stalled).toBeLessThanOrEqual(HIGH_WATERMARK_CHARS + 65_536 + 1024);
    expect(alive(shellPid)).toBe(true);

    // Acknowledge everything: the pty resumes and `yes` floods again.
    terms.ack(termId, r.chars);
    await until(() => r.chars > stalled + 10_000, 'output after the ack');

    // Now behave like the renderer (ack what arrives) and press Ctrl-C.
    hub.on('term.data', (e) => {
      if (e.termId === termId) terms.ack(termId, e.data.length);
    });
    terms.ack(termId, r.chars);
    let afterCtrlC = '';
    hub.on('term.data', (e) => {
      if (e.termId === termId) afterCtrlC = (afterCtrlC + e.data).slice(-4096);
    });
    const t0 = Date.now();
    terms.input(termId, '\x03');
    await until(() => afterCtrlC.includes(PROMPT), 'the prompt after Ctrl-C', 5000);
    console.log(`prompt back ${Date.now() - t0} ms after Ctrl-C`);
    const quiet = await settle(() => r.chars, 300);
    await sleep(300);
    expect(r.chars - quiet).toBe(0); // the flood is over, not merely slower
  });

  it('closing a terminal kills its shell and reports the exit once', async () => {
    setup();
    const { termId } = terms.open({ kind: 'host' }, 100, 30);
    const r = record(termId);
    let exits = 0;
    hub.on('term.exit', (e) => {
      if (e.termId === termId) exits++;
    });
    await until(() => r.text.includes(PROMPT), 'the prompt');
    terms.input(termId, 'echo PID=$$\r');
    await until(() => /PID=\d+/.test(r.text), 'the shell pid');
    const pid = Number(/PID=(\d+)/.exec(r.text)![1]);
    expect(alive(pid)).toBe(true);
    terms.close(termId);
    await until(() => !alive(pid), 'the shell to die', 5000);
    await sleep(100);
    expect(exits).toBe(1);
    expect(terms.list()).not.toContain(termId);
    expect(() => terms.input(termId, 'x')).toThrow(/no open terminal/);
  });

  it('reports the shell exit code and forwards resize to the pty', async () => {
    setup();
    const { termId } = terms.open({ kind: 'host' }, 80, 24);
    const r = record(termId);
    await until(() => r.text.includes(PROMPT), 'the prompt');
    terms.resize(termId, 132, 43);
    terms.input(termId, 'stty size\r');
    await until(() => r.text.includes('43 132'), 'stty size to show the new size');
    // Variables from npm (npm start) and our own terminal's size do not leak into the shell.
    terms.input(termId, 'echo LEAKED=$(env | grep -c -e ^npm_ -e ^LINES=)\r');
    await until(() => /LEAKED=\d/.test(r.text), 'the env check');
    expect(r.text).toContain('LEAKED=0');
    terms.input(termId, 'exit 3\r');
    await until(() => r.exit !== undefined, 'term.exit');
    expect(r.exit).toBe(3);
  });

  it('refuses a shell that does not exist with one line', () => {
    hub = new EventHub();
    const missing = path.join(tmp, 'no-such-shell');
    const t = new Terminals({
      hub,
      hostShell: { file: missing, args: [], cwd: tmp, env: process.env },
      resolve: () => {
        throw new Error('unused');
      },
    });
    expect(existsSync(missing)).toBe(false);
    expect(() => t.open({ kind: 'host' }, 80, 24)).toThrow(`${missing} is not an executable file`);
  });
});

describe('serial and monitor terminals (real Channel)', () => {
  it('replays history first, then live data, and writes input to the channel', async () => {
    setup();
    const sink = new RecordingSink();
    const ch = new Channel('ttyAMA0', 256 * 1024, sink);
    channels.set('vm1/serial0', ch);
    ch.push(Buffer.from('[    0.000000] Booting Linux\r\n'));
    ch.push(Buffer.from('qemuarm64 login: '));
    const { termId, title } = terms.open({ kind: 'serial', vmId: 'vm1', index: 0 }, 80, 24);
    expect(title).toBe('vm1 ttyAMA0');
    const r = record(termId);
    ch.push(Buffer.from('LIVE'));
    await until(() => r.text.includes('LIVE'), 'live data');
    expect(r.text).toBe('[    0.000000] Booting Linux\r\nqemuarm64 login: LIVE');
    terms.input(termId, 'root\r');
    expect(sink.text()).toBe('root\r');
    // A UART has no window size: resizing is accepted and changes nothing on the wire.
    terms.resize(termId, 120, 40);
    expect(sink.text()).toBe('root\r');
  });

  it('decodes UTF-8 sequences split across chunks', async () => {
    setup();
    const ch = new Channel('hvc0', 1024, new RecordingSink());
    channels.set('vm2/serial1', ch);
    const { termId } = terms.open({ kind: 'serial', vmId: 'vm2', index: 1 }, 80, 24);
    const r = record(termId);
    const text = 'naïve 🐧 ≠ ü';
    const bytes = Buffer.from(text, 'utf8');
    // Cut inside the 2-byte ï, the 4-byte penguin (twice) and the 3-byte ≠, and let each
    // piece go out in its own coalescing window.
    const cuts = [3, 8, 10, 12, 14];
    let from = 0;
    for (const cut of [...cuts, bytes.length]) {
      ch.push(bytes.subarray(from, cut));
      from = cut;
      await sleep(12);
    }
    await until(() => r.text.length >= text.length, 'all characters');
    expect(r.events.length).toBeGreaterThan(2);
    expect(r.text).toBe(text);
    expect(r.text).not.toContain('\uFFFD');
  });

  it('pauses the channel above the high watermark and resumes below the low one', async () => {
    setup();
    const sink = new RecordingSink();
    const ch = new Channel('ttyS0', 4096, sink);
    channels.set('vm3/serial0', ch);
    const { termId } = terms.open({ kind: 'serial', vmId: 'vm3', index: 0 }, 80, 24);
    const r = record(termId);
    const line = `${'x'.repeat(999)}\n`;
    for (let i = 0; i < 99; i++) ch.push(Buffer.from(line));
    expect(sink.pauses).toBe(0);
    ch.push(Buffer.from(line));
    ch.push(Buffer.from(line));
    expect(sink.pauses).toBe(1);
    await until(() => r.chars === 101_000, 'all output');
    terms.ack(termId, 90_000);
    expect(sink.resumes).toBe(0); // 11 000 still unacked: above the low watermark
    terms.ack(termId, 7_000);
    expect(sink.resumes).toBe(1);
  });

  it('ends with the channel, and closeFor(vmId) closes only that VM', async () => {
    setup();
    const a = new Channel('ttyAMA0', 1024, new RecordingSink());
    const b = new Channel('monitor', 1024, new RecordingSink());
    const c = new Channel('ttyS0', 1024, new RecordingSink());
    channels.set('vmA/serial0', a);
    channels.set('vmA/monitor', b);
    channels.set('vmB/serial0', c);
    const ta = terms.open({ kind: 'serial', vmId: 'vmA', index: 0 }, 80, 24);
    const tb = terms.open({ kind: 'monitor', vmId: 'vmA' }, 80, 24);
    const tc = terms.open({ kind: 'serial', vmId: 'vmB', index: 0 }, 80, 24);
    const ra = record(ta.termId);
    const rb = record(tb.termId);
    const rc = record(tc.termId);
    terms.closeFor('vmA');
    expect(ra.exit).toBeNull();
    expect(rb.exit).toBeNull();
    expect(rc.exit).toBeUndefined();
    expect(a.listenerCount('data')).toBe(0);
    c.push(Buffer.from('bye'));
    c.end();
    expect(rc.exit).toBeNull();
    expect(rc.text).toBe('bye');
    expect(terms.list()).toEqual([]);
    expect(() => terms.open({ kind: 'serial', vmId: 'nope', index: 0 }, 80, 24)).toThrow('no VM nope');
  });
});
