-- idx_payments_order_id (from the original specification) indexes exactly what the UNIQUE
-- constraint on payments.order_id already indexes (payments_order_id_key). Every payment
-- insert and every status change paid for both; lookups by order id use the unique index.
DROP INDEX IF EXISTS idx_payments_order_id;
