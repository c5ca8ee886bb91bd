/**
 * The options of a tool's command line: `parse` them, print `help` and exit 0 when asked,
 * or print the problem as one line `<tool>: …` and exit 2.
 */
export function optionsOrExit<T>(tool: string, parse: (argv: string[]) => T | 'help', help: string): T {
  let parsed: T | 'help';
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${tool}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(help);
    process.exit(0);
  }
  return parsed;
}

/** Progress and notes go to stderr, so stdout stays the report. */
export const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** `text` as an integer ≥ `min`, or an error naming the option `--<name>`. */
export function intOption(name: string, text: string | undefined, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: '${text}' must be an integer ≥ ${min}`);
  return n;
}
