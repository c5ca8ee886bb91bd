-- Who answers an order: a payment (kind PAYMENT, with its payments row) or a rejection
-- (kind REJECTION: the event failed business validation; code and reason are kept here so
-- a later event for the order gets the same answer). The primary key makes the choice
-- once: a rejected order is never charged later, a charged order is never rejected.
CREATE TABLE order_answers (
    order_id BIGINT PRIMARY KEY,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('PAYMENT', 'REJECTION')),
    event_id VARCHAR(255) NOT NULL,
    failure_code VARCHAR(30),
    failure_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT order_answers_rejection_has_reason
        CHECK (kind = 'PAYMENT' OR (failure_code IS NOT NULL AND failure_reason IS NOT NULL))
);
