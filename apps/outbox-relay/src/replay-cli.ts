import { Type } from '@sinclair/typebox';
import { createDb } from '@foodies/db';
import { ConfigError, DatabaseEnv, loadConfig, pgConnectionFromEnv } from '@foodies/platform';
import { parseReplayArgs, REPLAY_HELP, UsageError } from './replay-args.js';
import { runReplay } from './replay.js';

/** `npm run outbox:replay`: exit 0 done, 1 failed (config, database), 2 bad arguments. */
async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseReplayArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`outbox:replay: ${err.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (command.kind === 'help') {
    process.stdout.write(REPLAY_HELP);
    return 0;
  }
  let connection;
  try {
    connection = pgConnectionFromEnv(loadConfig(Type.Object(DatabaseEnv)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`outbox:replay: invalid configuration: ${err.message}\n`);
    return 1;
  }
  const { db } = createDb({ ...connection, max: 1, applicationName: 'payment-outbox-replay' });
  try {
    return await runReplay(db, command, {
      out: (line) => process.stdout.write(`${line}\n`),
      progress: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (err) {
    process.stderr.write(`outbox:replay: failed against ${connection.connectionString}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main(process.argv.slice(2));
