// The Customise form's checks: one line per wrong field, groups that need all their parts,
// and agreement with the engine — a form the UI accepts is a spec the engine accepts, and
// every field the UI refuses the engine refuses too (they share common/customise-rules.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COUNTRY_CODES } from '../../electron/common/customise-rules.ts';
import { parseCustomiseSpec } from '../../electron/engine/customise/spec.ts';
import {
  applyBlocker,
  type CustomiseForm,
  countryOptions,
  EMPTY_FORM,
  formFromSettings,
  formProblems,
  secretsToRetype,
  specFromForm,
  timeZones,
} from '../../renderer/src/lib/customise-form.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-form-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A real public key from ssh-keygen when installed, else one assembled the same way. */
function publicKey(): string {
  const f = path.join(tmp, 'k');
  if (spawnSync('ssh-keygen', ['-?']).error === undefined) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'me@laptop', '-f', f]);
    return readFileSync(`${f}.pub`, 'utf8').trim();
  }
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([Buffer.from([0, 0, 0, name.length]), name, Buffer.alloc(36, 3)]);
  return `ssh-ed25519 ${blob.toString('base64')} me@laptop`;
}
const KEY = publicKey();

const form = (over: Partial<CustomiseForm>): CustomiseForm => ({ ...EMPTY_FORM, ...over });
const engineProblem = (f: CustomiseForm): string | null => {
  try {
    parseCustomiseSpec(specFromForm(f));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
};

describe('customise form validation', () => {
  it('an empty form has no field problems but cannot be applied', () => {
    expect(formProblems(form({}))).toEqual({});
    expect(applyBlocker(form({}), {})).toBe('Fill in at least one setting to customise');
  });

  it('hostname: RFC 1123, one line', () => {
    expect(formProblems(form({ hostname: 'bad_name' })).hostname).toBe(
      'Hostname may only hold letters, digits, hyphens and dots ("bad_name")',
    );
    expect(formProblems(form({ hostname: 'pi-.lan' })).hostname).toMatch(
      /^Hostname has a label that starts or ends/,
    );
    expect(formProblems(form({ hostname: 'a'.repeat(64) })).hostname).toMatch(/longer than 63/);
    expect(formProblems(form({ hostname: '  pi-kitchen ' }))).toEqual({});
    expect(specFromForm(form({ hostname: '  pi-kitchen ' }))).toEqual({ hostname: 'pi-kitchen' });
  });

  it('user and password go together', () => {
    expect(formProblems(form({ userName: 'ann' })).password).toMatch(/^Give a password for this user/);
    expect(formProblems(form({ password: 'pw' })).userName).toBe('Give a user name for this password');
    expect(formProblems(form({ userName: 'Ann', password: 'pw' })).userName).toMatch(
      /^User name must be 1-32 lower-case letters/,
    );
    expect(formProblems(form({ userName: 'ann', password: 'pw' }))).toEqual({});
  });

  it('SSH key: the .pub line, not a private key, each line checked', () => {
    expect(formProblems(form({ sshKey: KEY }))).toEqual({});
    expect(formProblems(form({ sshKey: '-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn' })).sshKey).toMatch(
      /^SSH key (is a private key|has an unknown key type)/,
    );
    expect(formProblems(form({ sshKey: `${KEY}\nssh-ed25519 AAAAC3Nz` })).sshKey).toMatch(/^SSH key 2 /);
    const damaged = KEY.replace(/ (\S{10})/, ' QUJD$1');
    expect(formProblems(form({ sshKey: damaged })).sshKey).toMatch(/^SSH key has a key body/);
  });

  it('Wi-Fi: country, SSID and a passphrase of 8 to 63 characters, all together', () => {
    const only = formProblems(form({ wifiSsid: 'Home' }));
    expect(only.wifiCountry).toMatch(/^Pick the country/);
    expect(only.wifiPassphrase).toMatch(/^Give the Wi-Fi passphrase/);
    const ok = { wifiCountry: 'GB', wifiSsid: 'Home', wifiPassphrase: '12345678' };
    expect(formProblems(form(ok))).toEqual({});
    expect(formProblems(form({ ...ok, wifiPassphrase: 'x'.repeat(63) }))).toEqual({});
    expect(formProblems(form({ ...ok, wifiPassphrase: 'short' })).wifiPassphrase).toBe(
      'Wi-Fi passphrase must be 8 to 63 printable ASCII characters',
    );
    expect(formProblems(form({ ...ok, wifiPassphrase: 'x'.repeat(64) })).wifiPassphrase).toMatch(/8 to 63/);
    expect(formProblems(form({ ...ok, wifiCountry: 'UK' })).wifiCountry).toMatch(/ISO 3166/);
    expect(formProblems(form({ ...ok, wifiSsid: '€'.repeat(11) })).wifiSsid).toBe(
      'Wi-Fi SSID must be 1 to 32 bytes',
    );
  });

  it('timezone from the list, keyboard as an XKB layout', () => {
    const zones = timeZones();
    expect(zones[0]).toBe('UTC');
    expect(zones).toContain('Europe/London');
    expect(zones.length).toBeGreaterThan(300);
    expect(formProblems(form({ timezone: 'Europe/London' }))).toEqual({});
    expect(formProblems(form({ timezone: 'Mars/Olympus' })).timezone).toMatch(
      /^Timezone is not a known time zone/,
    );
    expect(formProblems(form({ keyboard: 'us(intl)' }))).toEqual({});
    expect(formProblems(form({ keyboard: 'GB' })).keyboard).toMatch(/^Keyboard must be an XKB layout/);
  });

  it('the spec holds only the filled groups, and the engine accepts what the form accepts', () => {
    const full = form({
      hostname: 'pi',
      userName: 'ann',
      password: 'pw',
      sshKey: KEY,
      ssh: true,
      wifiCountry: 'DE',
      wifiSsid: 'Home',
      wifiPassphrase: '12345678',
      timezone: 'Europe/Berlin',
      keyboard: 'de',
    });
    expect(formProblems(full)).toEqual({});
    expect(applyBlocker(full, formProblems(full))).toBeNull();
    expect(engineProblem(full)).toBeNull();
    expect(specFromForm(form({ hostname: 'pi' }))).toEqual({ hostname: 'pi' });
    expect(specFromForm(form({ sshKey: KEY, ssh: false }))).toEqual({ sshAuthorizedKey: KEY });
  });

  it('every field the form refuses, the engine refuses too', () => {
    const bad: Partial<CustomiseForm>[] = [
      { hostname: 'bad_name' },
      { userName: 'Ann', password: 'pw' },
      { sshKey: 'ssh-foo AAAA me' },
      { wifiCountry: 'UK', wifiSsid: 'Home', wifiPassphrase: '12345678' },
      { wifiCountry: 'GB', wifiSsid: 'Home', wifiPassphrase: 'short' },
      { timezone: 'Mars/Olympus' },
      { keyboard: 'GB' },
    ];
    for (const over of bad) {
      const f = form(over);
      expect(Object.keys(formProblems(f)).length, JSON.stringify(over)).toBe(1);
      expect(applyBlocker(f, formProblems(f))).toBe('Fix the field marked above first');
      expect(engineProblem(f), JSON.stringify(over)).not.toBeNull();
    }
  });

  it('an applied customisation fills the form again, except its secrets', () => {
    const settings = {
      hostname: 'pi',
      user: { name: 'ann' },
      sshAuthorizedKey: KEY,
      wifi: { country: 'GB', ssid: 'Home' },
      timezone: 'UTC',
    };
    const f = formFromSettings(settings);
    expect(f).toMatchObject({
      hostname: 'pi',
      userName: 'ann',
      password: '',
      wifiSsid: 'Home',
      wifiPassphrase: '',
    });
    // Applying it again as it stands is refused until the secrets are typed again.
    expect(formProblems(f).password).toMatch(/^Give a password/);
    expect(formProblems(f).wifiPassphrase).toMatch(/^Give the Wi-Fi passphrase/);
    expect(secretsToRetype(settings)).toEqual(["ann's password", 'the Wi-Fi passphrase']);
    expect(formFromSettings(undefined)).toEqual(EMPTY_FORM);
  });

  it('country list: every ISO code with its English name', () => {
    const list = countryOptions(COUNTRY_CODES);
    expect(list).toHaveLength(COUNTRY_CODES.length);
    expect(list.find((c) => c.code === 'GB')?.name).toBe('United Kingdom');
    expect(list.find((c) => c.code === 'UK')).toBeUndefined();
  });
});
