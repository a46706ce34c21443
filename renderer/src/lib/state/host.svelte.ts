import type { HostInfo } from '../../../../electron/common/contract.ts';
import type { Transport } from '../transport.ts';
import { oneLine } from './errors.ts';

export class Host {
  info = $state<HostInfo | null>(null);
  error = $state('');

  constructor(private readonly t: Transport) {}

  async load(): Promise<void> {
    try {
      this.info = await this.t.request('host.info', {});
      this.error = '';
    } catch (e) {
      this.error = oneLine(e);
    }
  }
}
