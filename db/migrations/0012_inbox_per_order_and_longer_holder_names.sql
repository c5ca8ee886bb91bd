-- A duplicate is the same event for the same order. An event id that another order already
-- used is a producer bug, not a redelivery: keyed by event id alone, the inbox acknowledged
-- such an event as a duplicate and its order was never answered. The key is now the pair.
-- Rebuilding the key locks the inbox while it runs; retention keeps the table small.
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (event_id, order_id);

-- Ordering accepts card holder names of up to 255 characters. Widening a VARCHAR is a
-- catalogue change only (no table rewrite).
ALTER TABLE payments ALTER COLUMN card_holder_name TYPE VARCHAR(255);
