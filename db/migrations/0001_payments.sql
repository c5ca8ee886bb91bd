-- The spec's payments table (names and columns kept: reports are written against it).
-- Differences, all additive or widening:
--   amount is NUMERIC(19,4) instead of (12,2) so 3-decimal currencies (BHD, KWD) are never rounded;
--   failure_code keeps the gateway's code so a re-published answer carries it;
--   lease_expires_at marks how long an in-flight claim is owned by one consumer;
--   updated_at and source_event_id help support queries.
CREATE TABLE payments (
    id BIGSERIAL PRIMARY KEY,
    order_id BIGINT NOT NULL UNIQUE,
    buyer_id VARCHAR(255) NOT NULL,
    amount NUMERIC(19, 4) NOT NULL CHECK (amount > 0),
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    status VARCHAR(20) NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
    payment_method_type VARCHAR(20) NOT NULL,
    card_last_four VARCHAR(4) CHECK (card_last_four ~ '^[0-9]{4}$'),
    card_brand VARCHAR(20),
    card_holder_name VARCHAR(200),
    expiration_month INT,
    expiration_year INT,
    transaction_id VARCHAR(255),
    failure_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    processed_at TIMESTAMPTZ,
    failure_code VARCHAR(30),
    lease_expires_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    source_event_id VARCHAR(255),
    CONSTRAINT payments_succeeded_has_transaction
        CHECK (status <> 'SUCCEEDED' OR (transaction_id IS NOT NULL AND processed_at IS NOT NULL))
);

CREATE INDEX idx_payments_order_id ON payments(order_id);
CREATE INDEX idx_payments_buyer_id ON payments(buyer_id);
CREATE INDEX idx_payments_status ON payments(status);
CREATE INDEX idx_payments_created_at ON payments(created_at);
