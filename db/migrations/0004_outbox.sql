-- Result events waiting for the relay (DESIGN §3.4). payload is the exact JSON to publish,
-- kept as text so 64-bit integers are never re-encoded. event_id is fixed here, so every
-- re-publish of a row carries the same message id.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    order_id BIGINT NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    routing_key VARCHAR(255) NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    published_at TIMESTAMPTZ,
    attempts INT NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    parked_at TIMESTAMPTZ
);

-- The relay's claim only ever looks at unpublished, unparked rows; this keeps it fast as
-- published rows accumulate.
CREATE INDEX idx_outbox_unpublished ON outbox(id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX idx_outbox_order_id ON outbox(order_id);

-- NOTIFY is only a latency hint for the relay; one per inserting statement (and PostgreSQL
-- folds identical notifications within a transaction).
CREATE FUNCTION notify_outbox() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('outbox_inserted', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER outbox_notify
    AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
