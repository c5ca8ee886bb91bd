import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { serializeError } from './log-errors.js';
import { prettyDestination, resolveLogFormat, type LogFormat } from './log-pretty.js';
import { isCardSecretKey, maskCardNumbers } from '@foodies/domain';

export type { Logger };

/** Holder names, tokens and passwords never reach a log line (DESIGN §3.5). */
const REDACT_KEYS = [
  'cardHolderName',
  'card_holder_name',
  'authorization',
  'token',
  'accessToken',
  'password',
  'DB_PASSWORD',
  'RABBITMQ_PASSWORD',
];
export const REDACT_PATHS = [
  ...REDACT_KEYS,
  ...REDACT_KEYS.map((k) => `*.${k}`),
  ...REDACT_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * Identifiers logged under these keys are written exactly: an SRE greps for them, and a
 * 16-digit order id passes the Luhn check one time in ten (the decoder keeps them exact too).
 */
const IDENTIFIER_KEYS: ReadonlySet<string> = new Set(['orderId', 'otherOrderId', 'paymentId', 'eventId']);

/**
 * Deep copy of a log object with card secrets removed and card-like digit runs masked,
 * wherever they sit, identifiers excepted. Errors are kept as they are for pino's serializer,
 * their message masked.
 */
function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return maskCardNumbers(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    value.message = maskCardNumbers(value.message);
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const identifier = IDENTIFIER_KEYS.has(key) && (typeof child === 'number' || typeof child === 'bigint' || typeof child === 'string');
    out[key] = isCardSecretKey(key) ? '[REDACTED]' : identifier ? child : scrub(child, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  level: LevelWithSilent | string;
  name: string;
  /** Where lines go; tests pass a stream to capture them. Defaults to stdout. */
  destination?: DestinationStream;
  /** LOG_FORMAT: unset, pretty when the lines go to stdout on a terminal, JSON otherwise. */
  format?: LogFormat;
}

/**
 * One root logger per process. JSON lines, or with LOG_FORMAT=pretty (the default on a
 * terminal) one short line per event, made from the same redacted JSON (log-pretty.ts).
 */
export function createLogger(options: LoggerOptions): Logger {
  const terminal = !options.destination && Boolean(process.stdout.isTTY);
  const pretty = resolveLogFormat(options.format, terminal) === 'pretty';
  const target = options.destination ?? process.stdout;
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      serializers: { err: (err: unknown) => serializeError(err) },
      formatters: { log: (obj) => scrub(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const masked = args.map((a) => (typeof a === 'string' ? maskCardNumbers(a) : a)) as typeof args;
          method.apply(this, masked);
        },
      },
    },
    pretty ? prettyDestination(target, { colour: terminal }) : options.destination,
  );
}

/** The log methods a unit of work uses; see lazyChild. */
export type WorkLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * A child logger with `bindings`, created on the first call of a level that is enabled.
 * pino builds (and redacts) a child's bindings when it is created, which per message costs
 * more than the message's own work when nothing is logged at that level.
 */
export function lazyChild(logger: Logger, bindings: () => Record<string, unknown>): WorkLogger {
  let child: Logger | undefined;
  const level =
    (name: keyof WorkLogger) =>
    (...args: unknown[]) => {
      if (!logger.isLevelEnabled(name)) return;
      child ??= logger.child(bindings());
      (child[name] as (...a: unknown[]) => void)(...args);
    };
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') } as WorkLogger;
}
