import { Type, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from './errors.js';

/**
 * Environment configuration: one TypeBox object per app whose keys are the variable names.
 * Values are converted from strings, defaults applied, and the first problem reported as
 * one line naming the variable. Empty strings count as unset.
 */
export function loadConfig<T extends TObject>(schema: T, env: NodeJS.ProcessEnv = process.env): Static<T> {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value.trim();
  }
  // TypeBox converts '2.5' or '1e3' to an integer silently: an integer variable must be written as one.
  for (const [key, value] of Object.entries(raw)) {
    const property = schema.properties[key] as TSchema | undefined;
    if (property?.type === 'integer' && !/^-?\d+$/.test(value))
      throw new ConfigError(key, `${(property.description as string | undefined) ?? 'must be an integer'}; got '${value}'`);
  }
  const converted = Value.Convert(schema, Value.Default(schema, raw));
  const error = Value.Errors(schema, converted).First();
  if (error) {
    const variable = error.path.replace(/^\//, '') || Object.keys(schema.properties)[0]!;
    const property = schema.properties[variable] as TSchema | undefined;
    const expected = (property?.description as string | undefined) ?? error.message;
    const got = raw[variable];
    throw new ConfigError(variable, got === undefined ? `is required: ${expected}` : `${expected}; got '${got}'`);
  }
  return converted as Static<T>;
}

const Port = (fallback: number, what: string) =>
  Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: fallback,
    description: `must be a TCP port (0-65535, 0 picks a free one) for ${what}`,
  });
const PositiveMs = (fallback: number, what: string) =>
  Type.Integer({ minimum: 1, default: fallback, description: `must be a positive integer of milliseconds (${what})` });
const Text = (fallback: string, what: string) => Type.String({ minLength: 1, default: fallback, description: `must be ${what}` });
/** One of a few words; the default may be left out (then the variable is optional). */
const OneOf = <T extends string>(values: readonly T[], fallback?: T) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { ...(fallback === undefined ? {} : { default: fallback }), description: `must be one of ${values.join(', ')}` },
  );

/** Fragments shared by the apps; each app composes its own schema from them. */
export const ProcessEnv = {
  HOST: Text('0.0.0.0', 'the address every listener binds to'),
  LOG_LEVEL: OneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  /** Unset: pretty on a terminal, JSON otherwise (createLogger). */
  LOG_FORMAT: Type.Optional(OneOf(['json', 'pretty'] as const)),
  SHUTDOWN_TIMEOUT_MS: PositiveMs(10_000, 'graceful shutdown budget before a forced exit'),
} satisfies TProperties;

export const DatabaseEnv = {
  DB_URL: Type.String({
    pattern: '^(jdbc:)?postgres(ql)?://',
    default: 'jdbc:postgresql://localhost:5434/foodies-payment-database',
    description: 'must be a postgres://host:port/database or jdbc:postgresql://host:port/database URL',
  }),
  DB_USERNAME: Text('foodies_admin', 'the database user name'),
  DB_PASSWORD: Type.String({ default: 'foodies_password', description: 'must be the database password' }),
  DB_POOL_MAX: Type.Integer({
    minimum: 1,
    maximum: 200,
    default: 10,
    description: 'must be an integer from 1 to 200 (connections per process)',
  }),
  DB_CONNECT_TIMEOUT_MS: PositiveMs(5_000, 'longest wait for a new database connection, handshake included'),
  DB_QUERY_TIMEOUT_MS: PositiveMs(10_000, 'longest database statement; one second later the connection counts as dead'),
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: PositiveMs(30_000, 'the server ends a session left inside a transaction this long'),
} satisfies TProperties;

export const RabbitEnv = {
  RABBITMQ_HOST: Text('localhost', 'the RabbitMQ host name'),
  RABBITMQ_PORT: Port(5672, 'RabbitMQ'),
  RABBITMQ_USERNAME: Text('guest', 'the RabbitMQ user name'),
  RABBITMQ_PASSWORD: Type.String({ default: 'guest', description: 'must be the RabbitMQ password' }),
  RABBITMQ_VHOST: Text('/', 'the RabbitMQ virtual host'),
  RABBITMQ_PUBLISH_EXCHANGE: Text('foodies.events', 'the topic exchange events are published to'),
  RABBITMQ_HEARTBEAT_S: Type.Integer({
    minimum: 1,
    maximum: 60,
    // 5 s: a silent broker is dropped within 10-12.5 s, well inside a 30 s bound, for one
    // 8-byte frame each way every 2.5 s.
    default: 5,
    description: 'must be an integer from 1 to 60 (seconds between AMQP heartbeats; a silent broker is dropped after 2 to 2.5 of them)',
  }),
} satisfies TProperties;

export const configFields = { OneOf, Port, PositiveMs, Text };

export interface PgConnection {
  connectionString: string;
  user: string;
  password: string;
  connectionTimeoutMs?: number;
  queryTimeoutMs?: number;
  idleInTransactionTimeoutMs?: number;
}

type DbEnv = { DB_URL: string; DB_USERNAME: string; DB_PASSWORD: string } & Partial<
  Record<'DB_CONNECT_TIMEOUT_MS' | 'DB_QUERY_TIMEOUT_MS' | 'DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', number>
>;

/**
 * Accepts the spec's `jdbc:postgresql://host:port/db?…` and plain `postgres://…` URLs.
 * DB_USERNAME and DB_PASSWORD always win over credentials embedded in the URL. The DB_*
 * timeouts, when the config has them, come along (createDb's options of the same meaning).
 */
export function pgConnectionFromEnv(config: DbEnv): PgConnection {
  const text = config.DB_URL.replace(/^jdbc:/, '').replace(/^postgresql:/, 'postgres:');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError('DB_URL', `is not a valid URL; got '${config.DB_URL.replace(/\/\/[^@/]*@/, '//***@')}'`);
  }
  if (!url.hostname || url.pathname.length < 2) {
    throw new ConfigError('DB_URL', 'must name a host and a database, e.g. jdbc:postgresql://localhost:5434/foodies-payment-database');
  }
  url.username = '';
  url.password = '';
  for (const jdbcOnly of ['user', 'password', 'currentSchema', 'ApplicationName']) url.searchParams.delete(jdbcOnly);
  return {
    connectionString: url.toString(),
    user: config.DB_USERNAME,
    password: config.DB_PASSWORD,
    connectionTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  };
}

/** For a process's main(): the loaded config, or one line on stderr and exit code 1. */
export function loadConfigOrExit<T>(processName: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${processName}: invalid configuration: ${err.message}\n`);
    process.exit(1);
  }
}
