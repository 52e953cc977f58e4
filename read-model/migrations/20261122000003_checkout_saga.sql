-- The checkout saga's durable state: one row per checkout, written in the same transaction
-- as the saga's consumer checkpoint.
CREATE TABLE IF NOT EXISTS checkouts (
    order_id      UUID        PRIMARY KEY,
    payment_id    UUID        NOT NULL,
    customer_id   UUID        NOT NULL,
    cart_id       UUID        NOT NULL,
    lines         JSONB       NOT NULL,
    amount_minor  BIGINT      NOT NULL,
    currency      TEXT        NOT NULL,
    payment_token TEXT        NOT NULL,
    card_brand    TEXT        NOT NULL,
    card_last4    TEXT        NOT NULL,
    -- started, stock_reserved, payment_authorized, confirmed, cancelled
    status        TEXT        NOT NULL,
    deadline      TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS checkouts_open ON checkouts (deadline)
    WHERE status NOT IN ('confirmed', 'cancelled');
