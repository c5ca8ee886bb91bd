import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * Reads a settlement report one line at a time (memory holds one line, whatever the size of
 * the file). A field is RFC 4180: quoted when it holds a comma or a quote (doubled inside). The
 * report's fields never hold a line break (ids, keys and instants are printable), so a record
 * is a line.
 */

/** One record: its fields, or why it could not be read. `line` is 1-based. */
export type CsvRecord = { line: number; fields: string[]; error?: undefined } | { line: number; fields?: undefined; error: string };

/** The fields of one line, or the reason it is not a CSV record. */
export function parseCsvLine(text: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) return 'a quoted field is not closed';
        value += text.slice(i, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
          continue;
        }
        i = quote + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return fields;
      if (text[i] !== ',') return `unexpected character after a quoted field at column ${i + 1}`;
      i++;
    } else {
      const comma = text.indexOf(',', i);
      const value = comma < 0 ? text.slice(i) : text.slice(i, comma);
      if (value.includes('"')) return 'a quote inside an unquoted field';
      fields.push(value);
      if (comma < 0) return fields;
      i = comma + 1;
    }
  }
}

/** The records of a file, in order; a blank line at the very end is not a record. */
export async function* readCsvFile(path: string): AsyncGenerator<CsvRecord> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  let blank: number | undefined;
  for await (const text of lines) {
    line++;
    if (blank !== undefined) {
      yield { line: blank, error: 'an empty line' };
      blank = undefined;
    }
    if (text === '') {
      blank = line;
      continue;
    }
    const parsed = parseCsvLine(text);
    yield typeof parsed === 'string' ? { line, error: parsed } : { line, fields: parsed };
  }
}
