// Wi-Fi settings as wpa_supplicant reads them. The passphrase is never written: the PSK is
// derived the way wpa_passphrase does (PBKDF2-HMAC-SHA1, SSID as salt, 4096 rounds, 32 bytes).
import { pbkdf2Sync } from 'node:crypto';

export interface WifiSettings {
  country: string;
  ssid: string;
  passphrase: string;
}

export function wpaPsk(ssid: string, passphrase: string): string {
  return pbkdf2Sync(Buffer.from(passphrase, 'utf8'), Buffer.from(ssid, 'utf8'), 4096, 32, 'sha1').toString(
    'hex',
  );
}

/** wpa_supplicant's quoted form when safe, else its bare hex form (any bytes allowed). */
export function wpaSsid(ssid: string): string {
  return /^[\x20-\x7e]+$/.test(ssid) && !/["\\]/.test(ssid)
    ? `"${ssid}"`
    : Buffer.from(ssid, 'utf8').toString('hex');
}

export function wpaSupplicantConf(w: WifiSettings, opts: { ctrlInterface?: string } = {}): string {
  return [
    `ctrl_interface=${opts.ctrlInterface ?? '/var/run/wpa_supplicant'}`,
    'ctrl_interface_group=0',
    'update_config=1',
    `country=${w.country}`,
    '',
    'network={',
    `\tssid=${wpaSsid(w.ssid)}`,
    `\tpsk=${wpaPsk(w.ssid, w.passphrase)}`,
    '}',
    '',
  ].join('\n');
}
