// `stacklab`: the command-line face of the same engine the app drives. Human output by
// default, `--json` for scripts; every failure is one line on stderr and a non-zero exit.
import { parseArgs } from 'node:util';
import { type Command, commands } from './commands.ts';
import { UsageError } from './usage-error.ts';

const USAGE = `usage: stacklab <command> [options]

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(18)} ${c.summary}`)
  .join('\n')}

Run "stacklab <command> --help" for a command's options. Data lives in $STACKLAB_HOME.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  // Two-word commands ("images list", "stack up") are looked up whole first.
  let cmd: Command | undefined;
  let args = rest;
  if (rest[0] && commands[`${name} ${rest[0]}`]) {
    cmd = commands[`${name} ${rest[0]}`];
    args = rest.slice(1);
  } else cmd = commands[name];
  if (!cmd) throw new UsageError(`unknown command "${name}"; run "stacklab --help"`);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
  if (parsed.values.help) {
    console.log(cmd.usage);
    return 0;
  }
  return cmd.run(parsed.values as Record<string, unknown>, parsed.positionals);
}

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`stacklab: ${msg.split('\n')[0]}\n`);
    exit(e instanceof UsageError ? 2 : 1);
  },
);

// Exit once stdout has drained: a finished command must not linger on an idle handle.
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}
