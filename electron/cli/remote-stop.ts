// Stopping a VM that another Stacklab process runs: through the control QMP socket that
// every VM gets for exactly this, never by signalling a pid we merely read from a file.
import { connect } from 'node:net';
import { alive, liveEntries } from '../engine/vm/process.ts';
import { Qmp } from '../engine/vm/qmp.ts';

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

export async function stopByRegistry(vmId: string, force: boolean): Promise<'powerdown' | 'quit'> {
  const entry = liveEntries().find((e) => e.vmId === vmId);
  if (!entry) {
    const ids = liveEntries().map((e) => e.vmId);
    throw new Error(`no running VM called ${vmId}${ids.length ? ` (running: ${ids.join(', ')})` : ''}`);
  }
  const sock = connect(entry.qmpControl);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (e) => reject(new Error(`cannot reach ${vmId}'s control socket: ${e.message}`)));
  });
  const qmp = new Qmp(sock);
  try {
    await qmp.handshake();
    if (!force) {
      await qmp.execute('system_powerdown');
      if (await waitGone(entry.pid, 10_000)) return 'powerdown';
    }
    await qmp.execute('quit').catch(() => undefined); // QEMU may close before answering
    await waitGone(entry.pid, 5000);
    return 'quit';
  } finally {
    qmp.close();
  }
}
