/** What every command-line script does the same way: strict options, --help, exit codes. */
import { type ParseArgsConfig, parseArgs } from 'node:util';

export function fail(message: string, code: number): never {
  console.error(message);
  process.exit(code);
}

/** Parses argv strictly: an unknown or malformed option exits 2 with the usage; --help prints it. */
export function parseCommandLine<const O extends NonNullable<ParseArgsConfig['options']>>(
  options: O,
  usage: string,
) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n${usage}`, 2);
  }
}
