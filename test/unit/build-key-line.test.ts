// The line a failed build leads with, from lines real bitbake 2.8.1 (scarthgap) printed on
// this machine: a fetch with no network (wget's exit code), the same with BB_NO_NETWORK,
// and OE-core's sanity checker refusing to start without the network.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { condenseErrorLine, keyLine } from '../../electron/engine/build/key-line.ts';
import { KnottyParser } from '../../electron/engine/build/progress.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'bitbake');

// `stacklab build stacklab-guest-image --machine qemux86-64 --offline`, no network.
const NETWORK_ACCESS =
  "ERROR: quilt-native-0.67-r0 do_fetch: Bitbake Fetcher Error: NetworkAccess('https://download.savannah.gnu.org/releases/quilt/quilt-0.67.tar.gz', \"/usr/bin/env wget -t 2 -T 100 -O /work/yocto-scratch/cli-cache/yocto/downloads/quilt-0.67.tar.gz.tmp -P /work/yocto-scratch/cli-cache/yocto/downloads 'https://download.savannah.gnu.org/releases/quilt/quilt-0.67.tar.gz'\")";

// The same command without --offline: bitbake stops before parsing.
const SANITY_TAIL = [
  "ERROR:  OE-core's config sanity checker detected a potential misconfiguration.",
  '    Either fix the cause of this error or at your own risk disable the checker (see sanity.conf).',
  '    Following is the list of potential problems / advisories:',
  "    Fetcher failure for URL: 'https://www.yoctoproject.org/connectivity.html'. URL doesn't work.",
  "    Please ensure your host's network is configured correctly.",
  'Summary: There was 1 ERROR message, returning a non-zero exit code.',
];

describe('condenseErrorLine', () => {
  it('turns a NetworkAccess error into the URL that was not in the download cache', () => {
    expect(condenseErrorLine(NETWORK_ACCESS)).toBe(
      'network access is off (BB_NO_NETWORK) and https://download.savannah.gnu.org/releases/quilt/quilt-0.67.tar.gz is not in the download cache',
    );
  });

  it('drops the exported PATH and wget argv of a failed fetch command, keeping URL and exit code', () => {
    const parser = new KnottyParser();
    parser.feed(readFileSync(path.join(FIXTURES, 'fetch-failure.pty.txt'), 'utf8'));
    const summary = parser.end(1);
    const line = summary.failures[0]!.line;
    expect(line.length).toBeGreaterThan(1000); // what bitbake really prints
    expect(condenseErrorLine(line)).toBe(
      'fetching https://download.savannah.gnu.org/releases/quilt/quilt-0.67.tar.gz failed (exit code 4: no network, or the file moved)',
    );
  });

  it('keeps other errors, on one line, clipped', () => {
    expect(condenseErrorLine("ERROR: Nothing PROVIDES 'foo'")).toBe("Nothing PROVIDES 'foo'");
    const long = condenseErrorLine(`ERROR: ${'x'.repeat(1000)}`);
    expect(long.length).toBe(240);
    expect(long.endsWith('…')).toBe(true);
    expect(
      condenseErrorLine(
        "ERROR: Fetcher failure for URL: 'https://e.org/a.tgz'. Unable to fetch URL from any source.",
      ),
    ).toBe('fetching https://e.org/a.tgz failed: Unable to fetch URL from any source.');
  });
});

describe('keyLine', () => {
  it("leads with the failed task's own error, not the log-file or exit-code lines", () => {
    const parser = new KnottyParser();
    parser.feed(readFileSync(path.join(FIXTURES, 'fetch-failure.pty.txt'), 'utf8'));
    const summary = parser.end(1);
    expect(keyLine({ failure: summary.failures[0], summary, tail: [] })).toMatch(
      /^fetching https:\/\/download\.savannah\.gnu\.org\/releases\/quilt\/quilt-0\.67\.tar\.gz failed/,
    );
    // A failure known only by its log line falls back to the task's error among the rest.
    const onlyLog = {
      task: 'do_fetch',
      recipe: 'quilt-native-0.67-r0',
      line: 'ERROR: Logfile of failure stored in: /w/log.do_fetch.1',
    };
    expect(
      keyLine({
        failure: onlyLog,
        summary: {
          ...summary,
          errors: ['ERROR: Logfile of failure stored in: /w/log.do_fetch.1', NETWORK_ACCESS],
        },
        tail: [],
      }),
    ).toMatch(/^network access is off/);
  });

  it("reads the sanity checker's finding from the lines after its header", () => {
    const parser = new KnottyParser();
    parser.feed(`${SANITY_TAIL.join('\r\n')}\r\n`);
    const summary = parser.end(1);
    expect(summary.errors).toEqual([
      "ERROR:  OE-core's config sanity checker detected a potential misconfiguration.",
    ]);
    expect(keyLine({ failure: undefined, summary, tail: SANITY_TAIL })).toBe(
      "fetching https://www.yoctoproject.org/connectivity.html failed: URL doesn't work. (no network? an offline build uses the download cache only)",
    );
  });

  it('says nothing when bitbake printed no error', () => {
    expect(keyLine({ failure: undefined, summary: new KnottyParser().end(0), tail: [] })).toBeUndefined();
  });
});
