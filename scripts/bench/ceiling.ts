import { randomUUID } from 'node:crypto';
import pg from 'pg';

/**
 * The machine's ceiling for our transaction shape: inbox + payment + outbox inserts committed
 * in one transaction, then a NOTIFY, by `clients` plain pg clients in a tight loop for `seconds`. No validation, no gateway, no broker: an upper bound for the consumer.
 */
export async function measureCeiling(url: string, clients = 4, seconds = 3): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: clients });
  let order = BigInt(Date.now()) * 10_000n + 9_000_000_000_000_000n / 1000n;
  let committed = 0;
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = await pool.connect();
      try {
        while (Date.now() < deadline) {
          const orderId = String(order++);
          await client.query('BEGIN');
          await client.query(`INSERT INTO inbox (event_id, order_id, outcome) VALUES ($1, $2, 'SUCCEEDED')`, [randomUUID(), orderId]);
          await client.query(
            `INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, transaction_id, processed_at)
             VALUES ($1, 'ceiling', 49.99, 'USD', 'SUCCEEDED', 'CREDIT_CARD', 'txn', now())`,
            [orderId],
          );
          await client.query(
            `INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload) VALUES ($1, $2, 'X', 'payment.none', '{}')`,
            [randomUUID(), orderId],
          );
          await client.query('COMMIT');
          await client.query(`SELECT pg_notify('outbox_inserted', '')`);
          committed++;
        }
      } finally {
        client.release();
      }
    }),
  );
  await pool.end();
  return committed / seconds;
}
