import { runStatement, type Db } from '../executor.js';

export interface InboxState {
  /** This event was answered for this order before: a redelivery or a duplicate publish. */
  answered: boolean;
  /** Another order already answered under the same event id (a producer bug), if any. */
  reusedBy?: bigint;
}

/**
 * Whether event $1 was answered for order $2 (`event_answered`), and another order answered
 * under the same event id (`reused_by`, or null). The claim runs the same text as its first step.
 */
export const INBOX_STATE_SQL = `
    SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = $1::varchar AND order_id = $2::int8) AS event_answered,
           (SELECT order_id FROM inbox WHERE event_id = $1::varchar AND order_id <> $2::int8 LIMIT 1) AS reused_by`;

/** Whether `eventId` is in the inbox for `orderId`, and whether another order used it. */
export async function inboxState(db: Db, eventId: string, orderId: bigint): Promise<InboxState> {
  const [row] = await runStatement<{ event_answered: boolean; reused_by: bigint | null }>(db, INBOX_STATE_SQL, [eventId, orderId]);
  return { answered: row!.event_answered, ...(row!.reused_by !== null && { reusedBy: row!.reused_by }) };
}
