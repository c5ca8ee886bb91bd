/**
 * What an outage's log lines must never carry (issue: errors logged for people): a driver's
 * client object, connection parameters or credentials, SQL text, or a wall of library stack
 * frames. Returns one problem per offending line, empty when the lines are fit for an SRE.
 */
const FORBIDDEN: Array<[RegExp, string]> = [
  [/"client":\{/, 'a client object'],
  [/connectionParameters|"_connecting"|"_queryable"|"_poolUseCount"/, 'pg client internals'],
  [/"(password|user|connectionString|database)":/, 'connection parameters'],
  [/foodies_password|postgres:\/\/[^"\s]*@/, 'a credential'],
  [/\b(INSERT INTO|UPDATE payments|UPDATE outbox|SELECT [a-z*(].* FROM|WITH seen|DELETE FROM)\b/, 'SQL text'],
  [/node_modules/, 'library stack frames'],
];
const MAX_LINE = 2_000;
const MAX_FRAMES = 6;

export function logProblems(lines: string[]): string[] {
  const problems: string[] = [];
  for (const line of lines) {
    for (const [pattern, what] of FORBIDDEN) if (pattern.test(line)) problems.push(`${what}: ${line.slice(0, 300)}`);
    if (line.length > MAX_LINE) problems.push(`a ${line.length}-character line: ${line.slice(0, 200)}`);
    // Frames inside a JSON string: an escaped newline, optional indent, "at ".
    const frames = line.match(/\\n\s*at /g)?.length ?? 0;
    if (frames > MAX_FRAMES) problems.push(`${frames} stack frames: ${line.slice(0, 200)}`);
  }
  return problems;
}

/** The errors the lines report, as {code, message, operation}: what the lines must say instead. */
export function loggedErrors(lines: string[]): Array<{ msg: string; code?: string; message?: string; operation?: string; op?: string }> {
  const out = [];
  for (const line of lines) {
    let parsed: { msg?: string; op?: string; err?: { code?: string; message?: string; operation?: string } };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue;
    }
    if (parsed.err) out.push({ msg: parsed.msg ?? '', op: parsed.op, ...parsed.err });
  }
  return out;
}

/** The assertions a test makes on an outage's logs: fit for people, and the outage is in them. */
export function assertLogsForPeople(
  t: { same: (...args: [unknown, unknown, string]) => unknown; ok: (...args: [unknown, string]) => unknown },
  lines: string[],
): void {
  t.same(logProblems(lines), [], 'no client objects, connection parameters, SQL text or library stack frames in the logs');
  const errors = loggedErrors(lines);
  t.ok(errors.length > 0, 'the outage was logged');
  t.ok(
    errors.every((e) => typeof e.message === 'string' && (e.code !== undefined || e.message.length > 0)),
    'each error line says its code or its message',
  );
}
