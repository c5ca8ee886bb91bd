import t from 'tap';
import { Type } from '@sinclair/typebox';
import { ConfigError, DatabaseEnv, ProcessEnv, RabbitEnv, loadConfig, pgConnectionFromEnv } from '@foodies/platform';

const Schema = Type.Object({ ...ProcessEnv, ...DatabaseEnv, ...RabbitEnv });

t.test('defaults are the spec defaults', async (t) => {
  const config = loadConfig(Schema, {});
  t.equal(config.DB_URL, 'jdbc:postgresql://localhost:5434/foodies-payment-database');
  t.equal(config.DB_USERNAME, 'foodies_admin');
  t.equal(config.DB_PASSWORD, 'foodies_password');
  t.equal(config.RABBITMQ_HOST, 'localhost');
  t.equal(config.RABBITMQ_PORT, 5672);
  t.equal(config.RABBITMQ_PUBLISH_EXCHANGE, 'foodies.events');
  t.equal(config.HOST, '0.0.0.0');
  t.equal(config.LOG_LEVEL, 'info');
  t.equal(config.SHUTDOWN_TIMEOUT_MS, 10000);
});

t.test('string values are converted to their types; empty means unset', async (t) => {
  const config = loadConfig(Schema, { RABBITMQ_PORT: '5673', SHUTDOWN_TIMEOUT_MS: ' 2500 ', LOG_LEVEL: 'debug', DB_USERNAME: '' });
  t.equal(config.RABBITMQ_PORT, 5673);
  t.equal(config.SHUTDOWN_TIMEOUT_MS, 2500);
  t.equal(config.LOG_LEVEL, 'debug');
  t.equal(config.DB_USERNAME, 'foodies_admin');
});

t.test('each bad value fails with one line naming the variable', async (t) => {
  const bad: Record<string, [string, RegExp]> = {
    RABBITMQ_PORT: ['70000', /^RABBITMQ_PORT: must be a TCP port \(0-65535, 0 picks a free one\).*; got '70000'$/],
    SHUTDOWN_TIMEOUT_MS: ['soon', /^SHUTDOWN_TIMEOUT_MS: must be a positive integer of milliseconds.*; got 'soon'$/],
    LOG_LEVEL: ['loud', /^LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent; got 'loud'$/],
    DB_URL: ['mysql://x/y', /^DB_URL: must be a postgres:\/\/host:port\/database or jdbc:postgresql:.*; got 'mysql:\/\/x\/y'$/],
    DB_POOL_MAX: ['0', /^DB_POOL_MAX: must be an integer from 1 to 200.*; got '0'$/],
  };
  for (const [variable, [value, message]] of Object.entries(bad)) {
    const err = t.throws(() => loadConfig(Schema, { [variable]: value })) as ConfigError;
    t.type(err, ConfigError, variable);
    t.equal(err.variable, variable);
    t.match(err.message, message);
    t.notMatch(err.message, /\n/, 'one line');
  }
});

t.test('DB_URL accepts the jdbc form; DB_USERNAME/DB_PASSWORD win over URL credentials', async (t) => {
  const jdbc = pgConnectionFromEnv({
    DB_URL: 'jdbc:postgresql://db.internal:5434/foodies-payment-database?user=x&password=y',
    DB_USERNAME: 'u',
    DB_PASSWORD: 'p',
  });
  t.same(jdbc, { connectionString: 'postgres://db.internal:5434/foodies-payment-database', user: 'u', password: 'p' });
  const plain = pgConnectionFromEnv({ DB_URL: 'postgresql://old:secret@localhost/db?sslmode=disable', DB_USERNAME: 'u', DB_PASSWORD: 'p' });
  t.same(plain, { connectionString: 'postgres://localhost/db?sslmode=disable', user: 'u', password: 'p' });
  t.throws(
    () => pgConnectionFromEnv({ DB_URL: 'postgres://localhost', DB_USERNAME: 'u', DB_PASSWORD: 'p' }),
    /DB_URL: must name a host and a database/,
  );
});
