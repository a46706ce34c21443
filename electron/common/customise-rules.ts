// What a user may change before first boot, and the rules each value must follow. Shared by
// the engine (which validates every spec it applies) and the renderer (whose form shows the
// same one-line problem under each field as it is typed). No Node or Electron imports: the
// renderer bundles this file.
import { z } from 'zod';

// ISO 3166-1 alpha-2, officially assigned codes only (no UK, EU or user-assigned XK):
// wpa_supplicant and the kernel's regulatory database key on exactly these.
export const COUNTRY_CODES: readonly string[] = (
  'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
  'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
  'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP ' +
  'KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT ' +
  'MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW ' +
  'SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG ' +
  'UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
).split(' ');
const ISO_3166 = new Set(COUNTRY_CODES);

// Key types OpenSSH accepts in authorized_keys.
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ssh-dss',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** RFC 1123 host name: dot-separated labels of 1-63 letters, digits and inner hyphens; 253 at most. */
export function hostnameProblem(h: string): string | null {
  if (h.length === 0) return 'is empty';
  if (h.length > 253) return 'is longer than 253 characters';
  for (const label of h.split('.')) {
    if (label.length === 0) return 'has an empty label (two dots in a row, or a dot at an end)';
    if (label.length > 63) return `has a label longer than 63 characters ("${label.slice(0, 20)}…")`;
    if (!/^[A-Za-z0-9-]+$/.test(label)) return `may only hold letters, digits, hyphens and dots ("${label}")`;
    if (label.startsWith('-') || label.endsWith('-'))
      return `has a label that starts or ends with a hyphen ("${label}")`;
  }
  return null;
}

/** Decodes base64 the same way in Node and in a browser; null when it is not base64. */
function fromBase64(b64: string): Uint8Array | null {
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** One authorized_keys line: a known type, base64 whose embedded type matches, optional comment. */
export function sshKeyProblem(line: string): string | null {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2)
    return 'is not "<type> <base64> [comment]" (paste the .pub file, not the private key)';
  const [type, b64] = parts as [string, string];
  if (/PRIVATE KEY/.test(line)) return 'is a private key: give the .pub file';
  if (!KEY_TYPES.has(type)) return `has an unknown key type "${type.slice(0, 40)}"`;
  if (!/^[A-Za-z0-9+/]+={0,3}$/.test(b64)) return 'has a key body that is not base64';
  const blob = fromBase64(b64);
  if (!blob) return 'has a key body that is not base64';
  if (blob.length < 4) return 'has a key body that is too short';
  const n = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(0);
  const embedded = String.fromCharCode(...blob.subarray(4, 4 + Math.min(n, 64)));
  if (n > blob.length - 4 || embedded !== type)
    return `has a key body that is not a ${type} key (damaged when copied?)`;
  return null;
}

/** The key lines of an authorized_keys text: blank lines and comments left out. */
export function sshKeyLines(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l.trim() && !l.trim().startsWith('#'));
}

/** Problems of a whole authorized_keys text, each naming its line when there are several. */
export function sshKeysProblem(text: string): string | null {
  const lines = sshKeyLines(text);
  if (lines.length === 0) return 'SSH key is empty';
  for (const [i, l] of lines.entries()) {
    const p = sshKeyProblem(l);
    if (p) return `SSH key${lines.length > 1 ? ` ${i + 1}` : ''} ${p}`;
  }
  return null;
}

export function timezoneProblem(tz: string): string | null {
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(tz)) return 'is not an IANA zone name like Europe/London';
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return null;
  } catch {
    return `is not a known time zone ("${tz}"; e.g. Europe/London, America/New_York, UTC)`;
  }
}

export const USER_NAME_PROBLEM =
  'user name must be 1-32 lower-case letters, digits, "_" or "-", starting with a letter or "_"';
export const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
export const COUNTRY_PROBLEM =
  'Wi-Fi country must be an ISO 3166 two-letter code in capitals (GB, US, DE, …)';
export const SSID_PROBLEM = 'Wi-Fi SSID must be 1 to 32 bytes';
export const PASSPHRASE_PROBLEM = 'Wi-Fi passphrase must be 8 to 63 printable ASCII characters';
export const KEYBOARD_PROBLEM =
  'keyboard must be an XKB layout like "gb" or "us", optionally with a variant: "us(intl)"';
export const KEYBOARD = /^[a-z]{2,8}(?:\([a-z0-9_-]{1,32}\))?$/;

export const isCountryCode = (c: string) => ISO_3166.has(c);
export const ssidOk = (s: string) => {
  const n = new TextEncoder().encode(s).length;
  return n >= 1 && n <= 32;
};
export const passphraseOk = (p: string) => /^[\x20-\x7e]{8,63}$/.test(p);

const line = (what: string) =>
  z.string().refine((s) => !/[\n\r\0]/.test(s), { message: `${what} cannot contain a newline or NUL` });

const hostname = z.string().superRefine((h, ctx) => {
  const p = hostnameProblem(h);
  if (p) ctx.addIssue({ code: 'custom', message: `hostname ${p}` });
});

const user = z
  .object({
    name: z.string().regex(USER_NAME, { message: USER_NAME_PROBLEM }),
    password: line('password')
      .min(1, { message: 'password is empty' })
      .max(1024, { message: 'password is longer than 1024 characters' }),
  })
  .strict();

const sshAuthorizedKey = z.string().superRefine((text, ctx) => {
  const lines = sshKeyLines(text);
  if (lines.length === 0) ctx.addIssue({ code: 'custom', message: 'SSH key is empty' });
  for (const [i, l] of lines.entries()) {
    const p = sshKeyProblem(l);
    if (p) ctx.addIssue({ code: 'custom', message: `SSH key${lines.length > 1 ? ` ${i + 1}` : ''} ${p}` });
  }
});

const country = z.string().refine(isCountryCode, { message: COUNTRY_PROBLEM });
const ssid = line('Wi-Fi SSID').refine(ssidOk, { message: SSID_PROBLEM });

const wifi = z
  .object({
    country,
    ssid,
    passphrase: z.string().refine(passphraseOk, { message: PASSPHRASE_PROBLEM }),
  })
  .strict();

const timezone = z.string().superRefine((tz, ctx) => {
  const p = timezoneProblem(tz);
  if (p) ctx.addIssue({ code: 'custom', message: `timezone ${p}` });
});

const keyboard = z.string().regex(KEYBOARD, { message: KEYBOARD_PROBLEM });

/** A customisation as given: secrets (password, Wi-Fi passphrase) in plain text, validated. */
export const CustomiseSpec = z
  .object({
    hostname: hostname.optional(),
    user: user.optional(),
    sshAuthorizedKey: sshAuthorizedKey.optional(),
    ssh: z.boolean().optional(),
    wifi: wifi.optional(),
    timezone: timezone.optional(),
    keyboard: keyboard.optional(),
  })
  .strict();
export type CustomiseSpec = z.infer<typeof CustomiseSpec>;

/**
 * What a customisation set, without its secrets: what the engine keeps and shows again
 * (the password only as its hash in the image, the passphrase only as its PSK).
 */
export const PublicCustomisation = z.object({
  hostname: z.string().optional(),
  user: z.object({ name: z.string() }).optional(),
  sshAuthorizedKey: z.string().optional(),
  ssh: z.boolean().optional(),
  wifi: z.object({ country: z.string(), ssid: z.string() }).optional(),
  timezone: z.string().optional(),
  keyboard: z.string().optional(),
});
export type PublicCustomisation = z.infer<typeof PublicCustomisation>;

export function publicCustomisation(spec: CustomiseSpec): PublicCustomisation {
  const out: PublicCustomisation = {};
  if (spec.hostname !== undefined) out.hostname = spec.hostname;
  if (spec.user) out.user = { name: spec.user.name };
  if (spec.sshAuthorizedKey !== undefined) out.sshAuthorizedKey = spec.sshAuthorizedKey;
  if (spec.ssh !== undefined) out.ssh = spec.ssh;
  if (spec.wifi) out.wifi = { country: spec.wifi.country, ssid: spec.wifi.ssid };
  if (spec.timezone !== undefined) out.timezone = spec.timezone;
  if (spec.keyboard !== undefined) out.keyboard = spec.keyboard;
  return out;
}
