import { randomUUID } from 'node:crypto';
import type { AnswerRows, Db, InboxOutcome } from '@foodies/db';

/** An answer for `orderId`: inbox row under `eventId` (fresh by default), outbox row with a fresh event id. */
export function answerRows(orderId: bigint, eventId: string = randomUUID(), outcome: InboxOutcome = 'FAILED'): AnswerRows {
  return {
    inbox: { eventId, orderId, outcome, detail: null },
    outbox: { eventId: randomUUID(), orderId, eventType: 'OrderPaymentFailedEvent', routingKey: 'payment.failed', payload: '{"a":1}' },
  };
}

/** The inbox and outbox rows of an order, oldest first. */
export async function answerRowsOf(db: Db, orderId: bigint) {
  return {
    inbox: await db.selectFrom('inbox').selectAll().where('order_id', '=', orderId).orderBy('processed_at').execute(),
    outbox: await db.selectFrom('outbox').selectAll().where('order_id', '=', orderId).orderBy('id').execute(),
  };
}

/** An order's answer rows in short: the inbox outcomes and the outbox event ids, oldest first. */
export async function answerSummary(db: Db, orderId: bigint): Promise<{ inbox: string[]; outbox: string[] }> {
  const rows = await answerRowsOf(db, orderId);
  return { inbox: rows.inbox.map((r) => r.outcome), outbox: rows.outbox.map((r) => r.event_id) };
}
