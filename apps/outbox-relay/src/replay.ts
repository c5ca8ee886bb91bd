import { requeueOutboxRows, selectReplayRows, stuckReport, type Db, type OutboxRowSummary, type ReplaySelection } from '@foodies/db';
import type { ReplayCommand } from './replay-args.js';

export interface ReplayOutput {
  out(line: string): void;
  /** Progress lines for long runs (stderr, so stdout stays a clean report). */
  progress(line: string): void;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function row(r: OutboxRowSummary, now: number): string {
  const error = r.lastError ? `  ${r.lastError.slice(0, 80)}` : '';
  return `  ${String(r.id).padStart(8)}  ${String(r.orderId).padStart(20)}  ${r.eventType.padEnd(27)}  ${r.state.padEnd(9)}  ${String(r.attempts).padStart(3)}  ${formatAge(now - r.createdAt.getTime()).padStart(7)}${error}`;
}

const HEADER = `  ${'id'.padStart(8)}  ${'order_id'.padStart(20)}  ${'event_type'.padEnd(27)}  ${'state'.padEnd(9)}  ${'att'.padStart(3)}  ${'age'.padStart(7)}  last_error`;

function describe(selection: ReplaySelection): string {
  if ('ids' in selection) return `ids ${selection.ids.join(', ')}`;
  if ('olderThanMs' in selection) return `unpublished rows older than ${formatAge(selection.olderThanMs)}`;
  return 'all parked rows';
}

/** Runs one replay command; returns the process exit code. */
export async function runReplay(db: Db, command: Exclude<ReplayCommand, { kind: 'help' }>, output: ReplayOutput): Promise<number> {
  const now = Date.now();
  if (command.kind === 'list') {
    const report = await stuckReport(db, command.olderThanMs);
    const oldest = (at: Date | null) => (at ? `, oldest ${formatAge(now - at.getTime())}` : '');
    output.out(`stuck: ${report.stuck} unpublished row(s) older than ${formatAge(command.olderThanMs)}${oldest(report.oldestStuckAt)}`);
    output.out(`parked: ${report.parked} row(s)${oldest(report.oldestParkedAt)}`);
    const rows = [
      ...(await selectReplayRows(db, { olderThanMs: command.olderThanMs }, command.limit)),
      ...(await selectReplayRows(db, { allParked: true }, command.limit)),
    ];
    const unique = [...new Map(rows.map((r) => [r.id, r])).values()].sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, command.limit);
    if (unique.length > 0) {
      output.out(HEADER);
      for (const r of unique) output.out(row(r, now));
    }
    return 0;
  }

  const verb = command.dryRun ? 'would re-queue' : 're-queued';
  let afterId = 0n;
  let total = 0;
  const sample: bigint[] = [];
  /** Every row the selection found (for --ids: which of them exist). */
  const found = new Set<bigint>();
  for (;;) {
    const rows = await selectReplayRows(db, command.selection, command.batch, afterId);
    if (rows.length === 0) break;
    afterId = rows[rows.length - 1]!.id;
    if (command.dryRun) for (const r of rows) output.out(row(r, now));
    const ids = rows.map((r) => r.id);
    total += command.dryRun ? ids.length : await requeueOutboxRows(db, ids);
    sample.push(...ids.slice(0, Math.max(0, 20 - sample.length)));
    if ('ids' in command.selection) for (const id of ids) found.add(id);
    if (rows.length === command.batch) output.progress(`… ${verb} ${total} row(s) so far`);
  }
  if ('ids' in command.selection) {
    const missing = command.selection.ids.filter((id) => !found.has(id));
    if (missing.length > 0) output.out(`not found: ${missing.join(', ')}`);
  }
  const shown = sample.join(', ') + (total > sample.length ? ', …' : '');
  output.out(
    `${command.dryRun ? 'dry run: ' : ''}${verb} ${total} row(s) (${describe(command.selection)})${total > 0 ? `: ${shown}` : ''}`,
  );
  return 0;
}
