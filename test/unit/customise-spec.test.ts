// The customisation spec: every mistake is one line that names the field.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeSpec, parseCustomiseSpec } from '../../electron/engine/customise/spec.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stacklab-spec-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A real public key, made now by ssh-keygen when it is installed.
const keygen = spawnSync('ssh-keygen', ['-?'], { encoding: 'utf8' }).error === undefined;
function realKey(type: string): string | undefined {
  if (!keygen) return undefined;
  const f = path.join(tmp, `k-${type}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(type === 'rsa' ? ['-b', '2048'] : []),
    '-N',
    '',
    '-C',
    'me@laptop',
    '-f',
    f,
  ]);
  return readFileSync(`${f}.pub`, 'utf8');
}

// Built by hand when ssh-keygen is absent: the blob's first field names its type.
function fakeKey(type: string): string {
  const name = Buffer.from(type);
  const blob = Buffer.concat([Buffer.from([0, 0, 0, name.length]), name, Buffer.alloc(32, 7)]);
  return `${type} ${blob.toString('base64')} me@laptop`;
}
const ed25519 = realKey('ed25519') ?? fakeKey('ssh-ed25519');

function problem(input: unknown): string {
  try {
    parseCustomiseSpec(input);
  } catch (e) {
    const msg = (e as Error).message;
    expect(msg).not.toMatch(/\n/);
    return msg;
  }
  throw new Error('expected the spec to be refused');
}

describe('parseCustomiseSpec', () => {
  it('accepts a full, valid spec', () => {
    const spec = parseCustomiseSpec({
      hostname: 'pi-kitchen',
      user: { name: 'bob', password: 'pw' },
      sshAuthorizedKey: `${ed25519}\n# a comment line\n`,
      ssh: true,
      wifi: { country: 'GB', ssid: 'Home', passphrase: '12345678' },
      timezone: 'Europe/London',
      keyboard: 'us(intl)',
    });
    expect(spec.hostname).toBe('pi-kitchen');
    expect(describeSpec(spec).join('; ')).not.toMatch(/pw|12345678/);
  });

  it.skipIf(!keygen)('accepts real RSA and ECDSA keys from ssh-keygen', () => {
    expect(() => parseCustomiseSpec({ sshAuthorizedKey: realKey('rsa') })).not.toThrow();
    expect(() => parseCustomiseSpec({ sshAuthorizedKey: realKey('ecdsa') })).not.toThrow();
  });

  it('hostnames per RFC 1123', () => {
    expect(problem({ hostname: 'bad_name' })).toMatch(/^hostname may only hold letters, digits/);
    expect(problem({ hostname: '-lead' })).toMatch(/^hostname has a label that starts or ends with a hyphen/);
    expect(problem({ hostname: 'a'.repeat(64) })).toMatch(/^hostname has a label longer than 63/);
    expect(problem({ hostname: 'a..b' })).toMatch(/^hostname has an empty label/);
    expect(problem({ hostname: '' })).toMatch(/^hostname is empty/);
    expect(() => parseCustomiseSpec({ hostname: '1pi.example.org' })).not.toThrow();
  });

  it('SSH keys: private keys, unknown types, damaged bodies', () => {
    expect(problem({ sshAuthorizedKey: '-----BEGIN OPENSSH PRIVATE KEY----- abc' })).toMatch(
      /^SSH key (is a private key|has an unknown key type)/,
    );
    expect(problem({ sshAuthorizedKey: 'ssh-foo AAAA me' })).toMatch(
      /^SSH key has an unknown key type "ssh-foo"/,
    );
    expect(problem({ sshAuthorizedKey: 'ssh-ed25519 not*base64 me' })).toMatch(
      /^SSH key has a key body that is not base64/,
    );
    const wrongType = fakeKey('ssh-rsa').replace(/^ssh-rsa/, 'ssh-ed25519');
    expect(problem({ sshAuthorizedKey: wrongType })).toMatch(/not a ssh-ed25519 key/);
    expect(problem({ sshAuthorizedKey: `${ed25519}\nssh-ed25519` })).toMatch(
      /^SSH key 2 is not "<type> <base64>/,
    );
    expect(problem({ sshAuthorizedKey: '\n# only a comment\n' })).toMatch(/^SSH key is empty/);
  });

  it('Wi-Fi: ISO 3166 country, passphrase length, SSID length', () => {
    const wifi = { country: 'GB', ssid: 'Home', passphrase: '12345678' };
    expect(problem({ wifi: { ...wifi, country: 'UK' } })).toMatch(/^Wi-Fi country must be an ISO 3166/);
    expect(problem({ wifi: { ...wifi, country: 'gb' } })).toMatch(/^Wi-Fi country/);
    expect(problem({ wifi: { ...wifi, passphrase: 'short' } })).toMatch(/^Wi-Fi passphrase must be 8 to 63/);
    expect(problem({ wifi: { ...wifi, passphrase: 'x'.repeat(64) } })).toMatch(
      /^Wi-Fi passphrase must be 8 to 63/,
    );
    expect(problem({ wifi: { ...wifi, ssid: 'x'.repeat(33) } })).toMatch(/^Wi-Fi SSID must be 1 to 32 bytes/);
    expect(problem({ wifi: { country: 'GB', ssid: 'Home' } })).toMatch(/wifi\.passphrase/);
  });

  it('user, timezone, keyboard, unknown keys and an empty spec', () => {
    expect(problem({ user: { name: 'Bob', password: 'pw' } })).toMatch(/^user name must be/);
    expect(problem({ user: { name: 'bob', password: '' } })).toMatch(/^password is empty/);
    expect(problem({ user: { name: 'bob', password: 'a\nb' } })).toMatch(
      /^password cannot contain a newline/,
    );
    expect(problem({ timezone: 'Mars/Olympus' })).toMatch(/^timezone is not a known time zone/);
    expect(problem({ timezone: 'Europe/London; rm -rf /' })).toMatch(/^timezone is not an IANA zone name/);
    expect(problem({ keyboard: 'GB' })).toMatch(/^keyboard must be an XKB layout/);
    expect(problem({ hostnme: 'typo' })).toMatch(/hostnme/);
    expect(problem({})).toMatch(/^nothing to customise/);
  });
});
