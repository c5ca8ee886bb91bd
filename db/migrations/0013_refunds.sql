-- Refunds, issued through the admin API (POST /payments/{orderId}/refunds).
--
-- The money rule "refunds that have not failed never sum to more than the payment" is kept by
-- the payments row itself: refund_pending_amount (refunds still PENDING) and refunded_amount
-- (refunds SUCCEEDED) change in the same transaction as the refund row, under the payment's row
-- lock, and a CHECK refuses any write that would hold or refund more than was charged. A
-- payment becomes REFUNDED exactly when refunded_amount reaches amount.
ALTER TABLE payments
    ADD COLUMN refunded_amount NUMERIC(19, 4) NOT NULL DEFAULT 0,
    ADD COLUMN refund_pending_amount NUMERIC(19, 4) NOT NULL DEFAULT 0,
    ADD CONSTRAINT payments_refunds_within_amount
        CHECK (refunded_amount >= 0 AND refund_pending_amount >= 0 AND refunded_amount + refund_pending_amount <= amount),
    ADD CONSTRAINT payments_refunded_means_fully_refunded
        CHECK ((status = 'REFUNDED') = (refunded_amount = amount));

-- One row per refund. A refund is created PENDING with a lease (its request, or later the
-- recovery sweep, owns it while it calls the gateway) and ends SUCCEEDED or FAILED.
CREATE TABLE refunds (
    id BIGSERIAL PRIMARY KEY,
    payment_id BIGINT NOT NULL REFERENCES payments(id),
    order_id BIGINT NOT NULL,
    amount NUMERIC(19, 4) NOT NULL CHECK (amount > 0),
    currency VARCHAR(3) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason TEXT,
    requested_by VARCHAR(255) NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL UNIQUE,
    gateway_refund_id VARCHAR(255),
    failure_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    processed_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    lease_expires_at TIMESTAMPTZ,
    lease_owner VARCHAR(64),
    CONSTRAINT refunds_succeeded_has_gateway_id
        CHECK (status <> 'SUCCEEDED' OR (gateway_refund_id IS NOT NULL AND processed_at IS NOT NULL)),
    CONSTRAINT refunds_final_has_processed_at CHECK (status = 'PENDING' OR processed_at IS NOT NULL)
);

CREATE INDEX idx_refunds_payment_id ON refunds(payment_id);
CREATE INDEX idx_refunds_order_id ON refunds(order_id);
-- The recovery sweep only looks at pending refunds.
CREATE INDEX idx_refunds_pending ON refunds(lease_expires_at) WHERE status = 'PENDING';

-- Every status a refund enters, like payment_status_history.
CREATE TABLE refund_status_history (
    id BIGSERIAL PRIMARY KEY,
    refund_id BIGINT NOT NULL REFERENCES refunds(id),
    from_status VARCHAR(20),
    to_status VARCHAR(20) NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX idx_refund_status_history_refund_id ON refund_status_history(refund_id);

CREATE FUNCTION record_refund_status() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO refund_status_history (refund_id, from_status, to_status) VALUES (NEW.id, NULL, NEW.status);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO refund_status_history (refund_id, from_status, to_status) VALUES (NEW.id, OLD.status, NEW.status);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER refunds_status_history
    AFTER INSERT OR UPDATE OF status ON refunds
    FOR EACH ROW EXECUTE FUNCTION record_refund_status();

-- Idempotency keys of refund requests (Stripe's semantics): the first request under a key
-- records a digest of what it asked and the answer it got; the same key with the same request
-- gets that answer again, with a different request a 409. A request that created a refund
-- points at it (its answer is the refund's current state); any other answer (404, 409, 422)
-- is kept as status and body. Keys are kept as long as the refunds (at least 24 h promised).
CREATE TABLE refund_requests (
    idempotency_key VARCHAR(255) PRIMARY KEY,
    request_digest VARCHAR(64) NOT NULL,
    order_id BIGINT NOT NULL,
    requested_by VARCHAR(255) NOT NULL,
    refund_id BIGINT REFERENCES refunds(id),
    answer_status INT,
    answer_body TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT refund_requests_has_answer CHECK ((refund_id IS NULL) <> (answer_status IS NULL))
);

-- The simulated gateway's books gain refunds: entry_type REFUND rows refer to the charge they
-- refund by its idempotency key; outcome REFUNDED (money returned) or DECLINED, or VOIDED for
-- a refund key looked up and found unused (such a row names no order: the key does not).
ALTER TABLE gateway_ledger
    ALTER COLUMN order_id DROP NOT NULL,
    ADD COLUMN entry_type VARCHAR(10) NOT NULL DEFAULT 'CHARGE' CHECK (entry_type IN ('CHARGE', 'REFUND')),
    ADD COLUMN charge_key VARCHAR(255),
    DROP CONSTRAINT gateway_ledger_outcome_check,
    ADD CONSTRAINT gateway_ledger_outcome_check CHECK (outcome IN ('CHARGED', 'DECLINED', 'VOIDED', 'REFUNDED'));

CREATE INDEX idx_gateway_ledger_charge_key ON gateway_ledger(charge_key) WHERE charge_key IS NOT NULL;
-- The settlement report reads the books in time order.
CREATE INDEX idx_gateway_ledger_created_at ON gateway_ledger(created_at);
