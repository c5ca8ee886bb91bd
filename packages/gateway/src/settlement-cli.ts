import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import { createDb, parseTimeWindow, type TimeWindow } from '@foodies/db';
import { ConfigError, DatabaseEnv, loadConfig, pgConnectionFromEnv } from '@foodies/platform';
import { exportSettlement } from './settlement.js';

const HELP = `Usage: npm run gateway:settlement -- [--since <instant>] [--until <instant>] [--out <file>]

Writes the simulated gateway's settlement report: a CSV header, then one row per charge that
moved money (CHARGED) and per refund that did (REFUNDED), created in [since, until), oldest
first. Declined and voided entries are not settlement and are left out. The columns are
documented in the README ("Reconciliation").

Options:
  --since <instant>   first instant included (default: the beginning of the ledger)
  --until <instant>   first instant excluded (default: none; export a window that has closed,
                      or entries committing during the export may be missed)
  --out <file>        write there (through <file>.partial, renamed when complete)
                      instead of stdout
  -h, --help          this text

<instant> is ISO-8601 with a zone (2024-01-15T00:00:00Z, 2024-01-15T01:00:00+01:00) or a
date (2024-01-15, its UTC midnight).
Connection: the DB_URL / DB_USERNAME / DB_PASSWORD variables of the service.
Exit codes: 0 written, 1 configuration or database failure, 2 bad arguments or an
unwritable --out.
`;

type Command = { kind: 'help' } | { kind: 'export'; window: TimeWindow; out: string | undefined };

function parse(argv: string[]): Command {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: { since: { type: 'string' }, until: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return { kind: 'help' };
  if (values.out === '') throw new RangeError('--out: the file name is empty');
  return { kind: 'export', window: parseTimeWindow(values.since, values.until), out: values.out };
}

/** A writer honouring back-pressure; rejects when the stream fails. */
function writerTo(stream: NodeJS.WritableStream) {
  return async (chunk: string) => {
    if (!stream.write(chunk)) await once(stream, 'drain');
  };
}

async function openOut(path: string): Promise<WriteStream> {
  const stream = createWriteStream(`${path}.partial`, { flags: 'w' });
  await once(stream, 'open');
  return stream;
}

/** `npm run gateway:settlement`: exit 0 written, 1 failed (config, database), 2 bad arguments or --out. */
async function main(argv: string[]): Promise<number> {
  let command: Command;
  try {
    command = parse(argv);
  } catch (err) {
    process.stderr.write(`gateway:settlement: ${(err as Error).message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (command.kind === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  let connection;
  try {
    connection = pgConnectionFromEnv(loadConfig(Type.Object(DatabaseEnv)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`gateway:settlement: invalid configuration: ${err.message}\n`);
    return 1;
  }
  let file: WriteStream | undefined;
  if (command.out !== undefined) {
    try {
      file = await openOut(command.out);
    } catch (err) {
      process.stderr.write(`gateway:settlement: cannot write ${command.out}.partial: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const { db } = createDb({ ...connection, max: 1, applicationName: 'payment-gateway-settlement' });
  try {
    const rows = await exportSettlement(db, command.window, writerTo(file ?? process.stdout));
    if (file && command.out !== undefined) {
      file.end();
      await once(file, 'close');
      await rename(`${command.out}.partial`, command.out);
      process.stderr.write(`gateway:settlement: ${rows} row(s) written to ${command.out}\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`gateway:settlement: failed against ${connection.connectionString}: ${(err as Error).message}\n`);
    if (file && command.out !== undefined) {
      file.destroy();
      await rm(`${command.out}.partial`, { force: true });
    }
    return 1;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main(process.argv.slice(2));
