-- The relay claims only the oldest unpublished row of each order (per-order id order);
-- this index answers "is there an earlier unpublished row for this order?" without a scan.
CREATE INDEX idx_outbox_unpublished_order ON outbox(order_id, id) WHERE published_at IS NULL AND parked_at IS NULL;
