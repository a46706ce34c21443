// The Customise form's logic: every field a string as typed, one-line problems per field
// (the same rules the engine applies, from common/customise-rules.ts), and the spec sent
// to vm.customise with only what was filled in. Plain TypeScript so unit tests import it.
import {
  COUNTRY_PROBLEM,
  type CustomiseSpec,
  hostnameProblem,
  isCountryCode,
  KEYBOARD,
  KEYBOARD_PROBLEM,
  PASSPHRASE_PROBLEM,
  type PublicCustomisation,
  passphraseOk,
  SSID_PROBLEM,
  sshKeysProblem,
  ssidOk,
  timezoneProblem,
  USER_NAME,
  USER_NAME_PROBLEM,
} from '../../../electron/common/customise-rules.ts';

export interface CustomiseForm {
  hostname: string;
  userName: string;
  password: string;
  sshKey: string;
  ssh: boolean;
  wifiCountry: string;
  wifiSsid: string;
  wifiPassphrase: string;
  timezone: string;
  keyboard: string;
}

export type FormField = keyof CustomiseForm;
export type FormProblems = Partial<Record<FormField, string>>;

export const EMPTY_FORM: Readonly<CustomiseForm> = {
  hostname: '',
  userName: '',
  password: '',
  sshKey: '',
  ssh: false,
  wifiCountry: '',
  wifiSsid: '',
  wifiPassphrase: '',
  timezone: '',
  keyboard: '',
};

const sentence = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One line per field that is wrong; fields left empty are fine unless their group needs them. */
export function formProblems(f: CustomiseForm): FormProblems {
  const out: FormProblems = {};
  const host = f.hostname.trim();
  if (host) {
    const p = hostnameProblem(host);
    if (p) out.hostname = `Hostname ${p}`;
  }

  if (f.userName || f.password) {
    if (!f.userName) out.userName = 'Give a user name for this password';
    else if (!USER_NAME.test(f.userName)) out.userName = sentence(USER_NAME_PROBLEM);
    if (!f.password)
      out.password = 'Give a password for this user (it is stored only as a hash in the image)';
    else if (/[\n\r\0]/.test(f.password)) out.password = 'Password cannot contain a newline';
    else if (f.password.length > 1024) out.password = 'Password is longer than 1024 characters';
  }

  if (f.sshKey.trim()) {
    const p = sshKeysProblem(f.sshKey);
    if (p) out.sshKey = p;
  }

  if (f.wifiCountry || f.wifiSsid || f.wifiPassphrase) {
    if (!f.wifiCountry)
      out.wifiCountry = 'Pick the country the Wi-Fi is used in (it sets the legal channels)';
    else if (!isCountryCode(f.wifiCountry)) out.wifiCountry = COUNTRY_PROBLEM;
    if (!f.wifiSsid) out.wifiSsid = 'Give the network name (SSID)';
    else if (!ssidOk(f.wifiSsid) || /[\n\r\0]/.test(f.wifiSsid)) out.wifiSsid = SSID_PROBLEM;
    if (!passphraseOk(f.wifiPassphrase))
      out.wifiPassphrase = f.wifiPassphrase
        ? PASSPHRASE_PROBLEM
        : 'Give the Wi-Fi passphrase (8 to 63 characters)';
  }

  if (f.timezone) {
    const p = timezoneProblem(f.timezone);
    if (p) out.timezone = `Timezone ${p}`;
  }
  if (f.keyboard && !KEYBOARD.test(f.keyboard)) out.keyboard = sentence(KEYBOARD_PROBLEM);
  return out;
}

/** The spec vm.customise takes: only the groups that were filled in. */
export function specFromForm(f: CustomiseForm): CustomiseSpec {
  const spec: CustomiseSpec = {};
  if (f.hostname.trim()) spec.hostname = f.hostname.trim();
  if (f.userName || f.password) spec.user = { name: f.userName, password: f.password };
  if (f.sshKey.trim()) spec.sshAuthorizedKey = f.sshKey.trim();
  if (f.ssh) spec.ssh = true;
  if (f.wifiCountry || f.wifiSsid || f.wifiPassphrase)
    spec.wifi = { country: f.wifiCountry, ssid: f.wifiSsid, passphrase: f.wifiPassphrase };
  if (f.timezone) spec.timezone = f.timezone;
  if (f.keyboard) spec.keyboard = f.keyboard;
  return spec;
}

/** Apply is possible: something filled in and nothing wrong. Else the one line that says why not. */
export function applyBlocker(f: CustomiseForm, problems: FormProblems): string | null {
  if (Object.keys(specFromForm(f)).length === 0) return 'Fill in at least one setting to customise';
  const n = Object.keys(problems).length;
  if (n > 0) return `Fix the ${n === 1 ? 'field' : `${n} fields`} marked above first`;
  return null;
}

/**
 * The form as an applied customisation left it: everything but the secrets, which the
 * engine never keeps in plain text and so must be typed again to apply again.
 */
export function formFromSettings(s: PublicCustomisation | undefined): CustomiseForm {
  return {
    ...EMPTY_FORM,
    hostname: s?.hostname ?? '',
    userName: s?.user?.name ?? '',
    sshKey: s?.sshAuthorizedKey ?? '',
    ssh: s?.ssh ?? false,
    wifiCountry: s?.wifi?.country ?? '',
    wifiSsid: s?.wifi?.ssid ?? '',
    timezone: s?.timezone ?? '',
    keyboard: s?.keyboard ?? '',
  };
}

/** Secrets that an applied customisation set but the form cannot show again. */
export function secretsToRetype(s: PublicCustomisation | undefined): string[] {
  const out: string[] = [];
  if (s?.user) out.push(`${s.user.name}'s password`);
  if (s?.wifi) out.push('the Wi-Fi passphrase');
  return out;
}

/** Every IANA zone this runtime knows, UTC first. */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const zones = intl.supportedValuesOf?.('timeZone') ?? [];
  return ['UTC', ...zones.filter((z) => z !== 'UTC')];
}

/** XKB layouts people most often want; any other valid layout can still be typed. */
export const KEYBOARD_LAYOUTS: ReadonlyArray<{ code: string; name: string }> = [
  { code: 'us', name: 'English (US)' },
  { code: 'gb', name: 'English (UK)' },
  { code: 'us(intl)', name: 'English (US, international)' },
  { code: 'de', name: 'German' },
  { code: 'fr', name: 'French' },
  { code: 'es', name: 'Spanish' },
  { code: 'it', name: 'Italian' },
  { code: 'pt', name: 'Portuguese' },
  { code: 'br', name: 'Portuguese (Brazil)' },
  { code: 'nl', name: 'Dutch' },
  { code: 'be', name: 'Belgian' },
  { code: 'ch', name: 'Swiss' },
  { code: 'se', name: 'Swedish' },
  { code: 'no', name: 'Norwegian' },
  { code: 'dk', name: 'Danish' },
  { code: 'fi', name: 'Finnish' },
  { code: 'pl', name: 'Polish' },
  { code: 'cz', name: 'Czech' },
  { code: 'hu', name: 'Hungarian' },
  { code: 'ru', name: 'Russian' },
  { code: 'ua', name: 'Ukrainian' },
  { code: 'tr', name: 'Turkish' },
  { code: 'jp', name: 'Japanese' },
  { code: 'kr', name: 'Korean' },
];

/** Country codes with their English names, for the Wi-Fi country list. */
export function countryOptions(codes: readonly string[]): Array<{ code: string; name: string }> {
  let names: Intl.DisplayNames | undefined;
  try {
    names = new Intl.DisplayNames(['en'], { type: 'region' });
  } catch {
    names = undefined;
  }
  return codes
    .map((code) => ({ code, name: names?.of(code) ?? code }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
