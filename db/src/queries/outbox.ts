import type { Executor } from './payments.js';

export interface NewOutboxRow {
  eventId: string;
  orderId: bigint;
  eventType: string;
  routingKey: string;
  /** The exact JSON body to publish. */
  payload: string;
}

/** Inserting fires the outbox_notify trigger, which wakes the relay after commit. */
export async function insertOutboxRow(db: Executor, row: NewOutboxRow): Promise<bigint> {
  const inserted = await db
    .insertInto('outbox')
    .values({ event_id: row.eventId, order_id: row.orderId, event_type: row.eventType, routing_key: row.routingKey, payload: row.payload })
    .returning('id')
    .executeTakeFirstOrThrow();
  return inserted.id;
}
