// The machine's own apt sources (one-line .list and deb822 .sources), so mmdebstrap fetches
// from exactly the mirror and suites the host's apt already uses.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
  signedBy?: string;
  architectures?: string[];
}

export function readAptSources(etcApt = '/etc/apt'): AptSource[] {
  const files: string[] = [];
  const main = path.join(etcApt, 'sources.list');
  if (existsSync(main)) files.push(main);
  const dir = path.join(etcApt, 'sources.list.d');
  if (existsSync(dir)) {
    // apt reads only these two extensions; anything else (e.g. renamed to disable it) is ignored.
    for (const f of readdirSync(dir).sort()) if (/\.(list|sources)$/.test(f)) files.push(path.join(dir, f));
  }
  const out: AptSource[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    out.push(...(f.endsWith('.sources') ? parseDeb822(text) : parseOneLine(text)));
  }
  return out;
}

export function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line.startsWith('deb ')) continue;
    let rest = line.slice(4).trim();
    const opts: Record<string, string> = {};
    const bracket = /^\[([^\]]*)\]\s*/.exec(rest);
    if (bracket) {
      for (const kv of bracket[1]!.trim().split(/\s+/)) {
        const [k, v] = kv.split('=');
        if (k && v) opts[k.toLowerCase()] = v;
      }
      rest = rest.slice(bracket[0].length);
    }
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (!uri || !suite) continue;
    out.push({
      uri,
      suite,
      components,
      signedBy: opts['signed-by'],
      architectures: opts.arch?.split(','),
    });
  }
  return out;
}

export function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let key = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && key) {
        fields[key] += ` ${raw.trim()}`;
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      key = m[1]!.toLowerCase();
      fields[key] = m[2]!.trim();
    }
    if (!(fields.types ?? '').split(/\s+/).includes('deb')) continue;
    if ((fields.enabled ?? 'yes').toLowerCase() === 'no') continue;
    const uris = (fields.uris ?? '').split(/\s+/).filter(Boolean);
    const suites = (fields.suites ?? '').split(/\s+/).filter(Boolean);
    const components = (fields.components ?? '').split(/\s+/).filter(Boolean);
    // An inline key block is not a path; mmdebstrap then falls back to the host's keyrings.
    const signedBy = fields['signed-by']?.startsWith('/') ? fields['signed-by'] : undefined;
    const architectures = fields.architectures?.split(/\s+/).filter(Boolean);
    for (const uri of uris)
      for (const suite of suites) out.push({ uri, suite, components, signedBy, architectures });
  }
  return out;
}

/** Sources usable for `arch`, as one-line entries mmdebstrap accepts as MIRROR arguments. */
export function mirrorLinesFor(sources: readonly AptSource[], arch: string): string[] {
  return sources
    .filter((s) => !s.architectures || s.architectures.includes(arch))
    .map((s) => {
      const opts = [`arch=${arch}`, ...(s.signedBy?.startsWith('/') ? [`signed-by=${s.signedBy}`] : [])];
      return `deb [${opts.join(' ')}] ${s.uri} ${s.suite} ${s.components.join(' ')}`;
    });
}
