import type { Executor } from './payments.js';

export type InboxOutcome = 'SUCCEEDED' | 'FAILED' | 'REPUBLISHED' | 'REJECTED';

export interface InboxRow {
  eventId: string;
  orderId: bigint;
  outcome: InboxOutcome;
  detail?: string | null;
}

/** Throws on a duplicate event id (primary key), which aborts the caller's transaction. */
export async function insertInboxRow(db: Executor, row: InboxRow): Promise<void> {
  await db
    .insertInto('inbox')
    .values({ event_id: row.eventId, order_id: row.orderId, outcome: row.outcome, detail: row.detail ?? null })
    .execute();
}

export async function isEventInInbox(db: Executor, eventId: string): Promise<boolean> {
  const row = await db.selectFrom('inbox').select('event_id').where('event_id', '=', eventId).executeTakeFirst();
  return row !== undefined;
}
