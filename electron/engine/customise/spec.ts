// What a user can change before first boot, validated so every mistake comes back as one
// line naming the field (hostname, user, SSH key, Wi-Fi, timezone, keyboard). The rules
// themselves live in common/customise-rules.ts so the renderer's form checks the same way.
import { CustomiseSpec, sshKeyLines } from '../../common/customise-rules.ts';

export {
  CustomiseSpec,
  hostnameProblem,
  sshKeyProblem,
  timezoneProblem,
} from '../../common/customise-rules.ts';

/** Validates a spec; throws an Error whose message is one line naming the first problem. */
export function parseCustomiseSpec(input: unknown): CustomiseSpec {
  const r = CustomiseSpec.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.join('.');
    // Our own messages already name the field; zod's generic ones get the path in front.
    const own =
      issue.code === 'custom' ||
      /^(hostname|user name|password|SSH key|Wi-Fi|timezone|keyboard)\b/.test(issue.message);
    throw new Error(own || !where ? issue.message : `${where}: ${issue.message}`);
  }
  const spec = r.data;
  if (Object.keys(spec).length === 0) throw new Error('nothing to customise: give at least one setting');
  return spec;
}

/** The changes in words, for logs and the UI (never the password or passphrase). */
export function describeSpec(spec: CustomiseSpec): string[] {
  const out: string[] = [];
  if (spec.hostname) out.push(`hostname ${spec.hostname}`);
  if (spec.user) out.push(`user ${spec.user.name} with a password`);
  if (spec.sshAuthorizedKey) {
    const n = sshKeyLines(spec.sshAuthorizedKey).length;
    out.push(`${n} authorised SSH key${n === 1 ? '' : 's'}`);
  }
  if (spec.ssh !== undefined) out.push(spec.ssh ? 'SSH server enabled' : 'SSH server not enabled');
  if (spec.wifi) out.push(`Wi-Fi "${spec.wifi.ssid}" (${spec.wifi.country})`);
  if (spec.timezone) out.push(`timezone ${spec.timezone}`);
  if (spec.keyboard) out.push(`keyboard ${spec.keyboard}`);
  return out;
}
