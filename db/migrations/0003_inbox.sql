-- One row per consumed event id: a redelivered event already here is acked with no effect.
-- outcome says how it was answered: SUCCEEDED/FAILED (charged or declined here),
-- REPUBLISHED (order already answered; its outcome published again) or REJECTED
-- (failed business validation; answered with a failed event, nothing charged).
CREATE TABLE inbox (
    event_id VARCHAR(255) PRIMARY KEY,
    order_id BIGINT NOT NULL,
    outcome VARCHAR(20) NOT NULL CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'REPUBLISHED', 'REJECTED')),
    detail TEXT,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_inbox_order_id ON inbox(order_id);
CREATE INDEX idx_inbox_processed_at ON inbox(processed_at);
