// SHA-512 crypt and the WPA PSK against independent implementations: OpenSSL's
// `passwd -6` (run now, for each input) and the IEEE 802.11i reference vector.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { randomSalt, sha512Crypt, verifySha512Crypt } from '../../electron/engine/customise/sha512-crypt.ts';
import { wpaPsk, wpaSsid, wpaSupplicantConf } from '../../electron/engine/customise/wpa.ts';

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;
if (!openssl) console.warn('skipping the OpenSSL comparisons: openssl is not installed');

function opensslCrypt(password: string, salt: string): string {
  // The password goes through stdin so any byte (spaces, quotes, UTF-8) reaches it unchanged.
  const r = spawnSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], {
    input: `${password}\n`,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

describe('sha512Crypt matches openssl passwd -6', () => {
  const cases: Array<[string, string]> = [
    ['hunter2', 'saltsalt'],
    ['Hello world!', 'saltstring'],
    ['correct horse battery staple', 'ab'],
    ['pässwörd ✓ ünïcode', 'x/y.Z09'],
    ['x'.repeat(200), 'sixteencharsalt!'.replace('!', 'x')],
    ['p', 'thisSaltIsLongerThanSixteen'],
    ['with spaces and \'quotes" and $dollars', randomSalt()],
  ];
  for (const [pw, salt] of cases) {
    it.skipIf(!openssl)(`"${pw.slice(0, 24)}" with salt ${salt}`, () => {
      expect(sha512Crypt(pw, salt)).toBe(opensslCrypt(pw, salt));
    });
  }

  it.skipIf(!openssl)('explicit rounds (rounds=N$ prefix), clamped to the minimum of 1000', () => {
    expect(sha512Crypt('Hello world!', 'saltstring', 10000)).toBe(
      opensslCrypt('Hello world!', 'rounds=10000$saltstring'),
    );
    expect(sha512Crypt('secret', 'abc', 10)).toBe(opensslCrypt('secret', 'rounds=10$abc'));
    expect(sha512Crypt('secret', 'abc', 10)).toMatch(/^\$6\$rounds=1000\$abc\$/);
  });

  it('random salts are 16 crypt characters and differ', () => {
    const a = randomSalt();
    expect(a).toMatch(/^[./0-9A-Za-z]{16}$/);
    expect(randomSalt()).not.toBe(a);
    const h = sha512Crypt('pw');
    expect(h).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(verifySha512Crypt('pw', h)).toBe(true);
    expect(verifySha512Crypt('pW', h)).toBe(false);
  });

  it('refuses salts that would break a shadow line', () => {
    expect(() => sha512Crypt('pw', 'a:b')).toThrow(/salt/);
  });
});

describe('WPA PSK', () => {
  it('matches the IEEE 802.11i reference vector (passphrase "password", SSID "IEEE")', () => {
    expect(wpaPsk('IEEE', 'password')).toBe(
      'f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e',
    );
  });

  it('writes safe SSIDs quoted, others as hex, and never the passphrase', () => {
    expect(wpaSsid('Home')).toBe('"Home"');
    expect(wpaSsid('say "hi"')).toBe(Buffer.from('say "hi"').toString('hex'));
    expect(wpaSsid('café')).toBe(Buffer.from('café').toString('hex'));
    const conf = wpaSupplicantConf({ country: 'GB', ssid: 'Home', passphrase: 'supersecret' });
    expect(conf).toContain('country=GB');
    expect(conf).toContain(`psk=${wpaPsk('Home', 'supersecret')}`);
    expect(conf).not.toContain('supersecret');
  });
});
