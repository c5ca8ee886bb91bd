/**
 * One short line per log event, for people at a terminal (LOG_FORMAT=pretty, the default on a
 * TTY): `12:04:05.123 INFO  consumer  consuming queue=payment.stock-confirmed prefetch=64`.
 * It formats the JSON line pino wrote, after redaction and masking, so nothing reaches a
 * terminal that would not reach a log collector. Production logs stay JSON.
 */

/** Keys every line has (shown in the line's head) or that only a collector needs. */
const HEAD_KEYS = new Set(['time', 'level', 'msg', 'name', 'pid', 'hostname', 'v']);
/** At most this many fields after the message; the rest are counted. */
const MAX_FIELDS = 8;
/** A longer value is cut, with an ellipsis. */
const MAX_VALUE = 60;

const LEVELS: Record<number, { label: string; colour: string }> = {
  10: { label: 'TRACE', colour: '90' },
  20: { label: 'DEBUG', colour: '34' },
  30: { label: 'INFO', colour: '32' },
  40: { label: 'WARN', colour: '33' },
  50: { label: 'ERROR', colour: '31' },
  60: { label: 'FATAL', colour: '35;1' },
};

export interface PrettyOptions {
  /** ANSI colours (a terminal). */
  colour: boolean;
  /** Shown after the level; defaults to the line's `name` without its `payment-` prefix. */
  app?: string;
}

const paint = (on: boolean, code: string, text: string) => (on ? `\x1b[${code}m${text}\x1b[0m` : text);
const cut = (text: string) => (text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text);
const pad2 = (n: number) => String(n).padStart(2, '0');

function clock(time: unknown): string {
  const date = new Date(typeof time === 'number' || typeof time === 'string' ? time : Date.now());
  if (Number.isNaN(date.getTime())) return '--:--:--.---';
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** An error as pino serialised it: `TypeError: message (CODE)`. */
function errorText(err: Record<string, unknown>): string {
  const code = typeof err.code === 'string' ? ` (${err.code})` : '';
  return `${typeof err.type === 'string' ? err.type : 'Error'}: ${String(err.message ?? '')}${code}`;
}

function valueText(key: string, value: unknown): string {
  if ((key === 'err' || key === 'error') && value && typeof value === 'object')
    return JSON.stringify(cut(errorText(value as Record<string, unknown>)));
  if (typeof value === 'string') return /^[^\s"=]*$/.test(value) && value !== '' ? cut(value) : JSON.stringify(cut(value));
  return cut(JSON.stringify(value) ?? String(value));
}

/** The line for one pino log object (no trailing newline). */
export function prettyLine(entry: Record<string, unknown>, options: PrettyOptions): string {
  const level = LEVELS[Number(entry.level)] ?? { label: String(entry.level ?? '?').toUpperCase(), colour: '0' };
  const app = options.app ?? (typeof entry.name === 'string' ? entry.name.replace(/^payment-/, '') : '');
  const keys = Object.keys(entry).filter((k) => !HEAD_KEYS.has(k) && entry[k] !== undefined);
  const fields = keys.slice(0, MAX_FIELDS).map((k) => `${paint(options.colour, '2', `${k}=`)}${valueText(k, entry[k])}`);
  if (keys.length > MAX_FIELDS) fields.push(paint(options.colour, '2', `+${keys.length - MAX_FIELDS} more`));
  return [
    paint(options.colour, '2', clock(entry.time)),
    paint(options.colour, level.colour, level.label.padEnd(5)),
    ...(app ? [paint(options.colour, '1', app)] : []),
    String(entry.msg ?? ''),
    ...fields,
  ].join(' ');
}

/** A JSON log line made pretty; anything else (a stack trace on stderr, a tool's output) unchanged. */
export function prettyText(line: string, options: PrettyOptions): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as unknown;
    return entry && typeof entry === 'object' && !Array.isArray(entry) && 'level' in entry
      ? prettyLine(entry as Record<string, unknown>, options)
      : line;
  } catch {
    return line;
  }
}

/** A pino destination that writes each line pretty to `out` (synchronously, as pino's default). */
export function prettyDestination(out: { write(text: string): unknown }, options: PrettyOptions): { write(line: string): void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) out.write(`${prettyText(line, options)}\n`);
    },
  };
}

export type LogFormat = 'json' | 'pretty';

/** LOG_FORMAT if set; otherwise pretty on a terminal and JSON anywhere else. */
export function resolveLogFormat(format: LogFormat | undefined, isTTY: boolean | undefined): LogFormat {
  return format ?? (isTTY ? 'pretty' : 'json');
}
