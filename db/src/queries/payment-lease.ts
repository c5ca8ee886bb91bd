import { IN_FLIGHT_STATUSES, type PaymentRecord } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import { toPaymentRecord, type Lease, type PaymentRow } from './payment-record.js';

const TAKE_OVER_SQL = `
  UPDATE payments
  SET status = 'PROCESSING', lease_expires_at = now() + $2::int8 * interval '1 millisecond', lease_owner = $3::varchar, updated_at = now()
  WHERE id = $1::int8 AND status = ANY($4::varchar[])
    AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_owner = $3::varchar)
  RETURNING *`;

/**
 * Takes over an in-flight payment whose lease has expired (its consumer died), or whose lease
 * `lease.owner` holds already (its own retry after a statement with an unknown outcome).
 * Compare-and-set on the lease, so when several consumers try at once exactly one gets the
 * row back.
 */
export async function takeOverPayment(db: Db, paymentId: bigint, lease: Lease): Promise<PaymentRecord | undefined> {
  const [row] = await runStatement<PaymentRow>(db, TAKE_OVER_SQL, [paymentId, lease.ms, lease.owner, IN_FLIGHT_STATUSES]);
  return row && toPaymentRecord(row);
}

const RELEASE_SQL = `
  UPDATE payments SET lease_expires_at = now() - interval '1 millisecond'
  WHERE id = $1::int8 AND lease_owner = $2::varchar AND status = ANY($3::varchar[])`;

/**
 * Expires our own lease now, so a retry (ours or another consumer's) can take over at once.
 * Only while `owner` still holds it: a lease someone else took over in the meantime stays theirs.
 */
export async function releasePaymentLease(db: Db, paymentId: bigint, owner: string): Promise<void> {
  await runStatement(db, RELEASE_SQL, [paymentId, owner, IN_FLIGHT_STATUSES]);
}
