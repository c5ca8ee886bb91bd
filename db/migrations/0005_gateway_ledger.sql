-- The simulated gateway's own books: one row per idempotency key, holding the first answer
-- given under it. Stands in for the payment provider, so tests and benchmarks can count the
-- charges actually made. outcome VOIDED closes a key that was looked up and found unused,
-- so a late duplicate request cannot charge after we answered "failed".
CREATE TABLE gateway_ledger (
    idempotency_key VARCHAR(255) PRIMARY KEY,
    order_id BIGINT NOT NULL,
    amount NUMERIC(19, 4),
    currency VARCHAR(3),
    outcome VARCHAR(20) NOT NULL CHECK (outcome IN ('CHARGED', 'DECLINED', 'VOIDED')),
    transaction_id VARCHAR(255),
    failure_code VARCHAR(30),
    failure_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_gateway_ledger_order_id ON gateway_ledger(order_id);
