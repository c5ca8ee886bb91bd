import { access, constants } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { createDb } from '@foodies/db';
import { ConfigError, DatabaseEnv, loadConfig, pgConnectionFromEnv } from '@foodies/platform';
import { stringifyJson } from '@foodies/domain';
import { parseReconcileArgs, RECONCILE_HELP, UsageError } from './args.js';
import { BadReport, reconcile } from './compare.js';
import { readCsvFile } from './csv.js';
import { formatTable } from './report.js';

/**
 * `npm run reconcile`: exit 0 clean, 1 mismatches, 2 no comparison made (bad arguments or
 * report, invalid configuration, a database failure): 1 always means "look at the books".
 */
async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseReconcileArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`reconcile: ${err.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (command.kind === 'help') {
    process.stdout.write(RECONCILE_HELP);
    return 0;
  }
  try {
    await access(command.settlement, constants.R_OK);
  } catch (err) {
    process.stderr.write(`reconcile: cannot read ${command.settlement}: ${(err as Error).message}\n`);
    return 2;
  }
  let connection;
  try {
    connection = pgConnectionFromEnv(loadConfig(Type.Object(DatabaseEnv)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`reconcile: invalid configuration: ${err.message}\n`);
    return 2;
  }
  const { db } = createDb({ ...connection, max: 2, applicationName: 'payment-reconcile' });
  const progress = process.stderr.isTTY ? (rows: number) => process.stderr.write(`\rread ${rows} rows…`) : undefined;
  try {
    const report = await reconcile(db, readCsvFile(command.settlement), command.window, { rowsShown: command.rowsShown, progress });
    if (progress) process.stderr.write('\r\u001b[K');
    process.stdout.write(command.json ? `${stringifyJson(report)}\n` : formatTable(report, process.stdout.isTTY === true));
    return report.mismatches === 0 ? 0 : 1;
  } catch (err: unknown) {
    if (err instanceof BadReport || ['EISDIR', 'ENOENT', 'EACCES'].includes((err as { code?: string }).code ?? '')) {
      process.stderr.write(`reconcile: ${command.settlement}: ${(err as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`reconcile: failed, nothing compared: ${(err as Error).message}\n`);
    return 2;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main(process.argv.slice(2));
