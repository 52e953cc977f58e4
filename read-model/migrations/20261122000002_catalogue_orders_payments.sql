-- Read models of the product, order and payment aggregates.

CREATE TABLE IF NOT EXISTS products (
    id          UUID        PRIMARY KEY,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    categories  TEXT[]      NOT NULL DEFAULT '{}',
    attributes  JSONB       NOT NULL DEFAULT '{}',
    price_minor BIGINT      NOT NULL CHECK (price_minor >= 0),
    currency    TEXT        NOT NULL,
    on_hand     INTEGER     NOT NULL CHECK (on_hand >= 0),
    reserved    INTEGER     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    archived    BOOLEAN     NOT NULL DEFAULT false,
    version     BIGINT      NOT NULL CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    id              UUID        PRIMARY KEY,
    customer_id     UUID        NOT NULL,
    cart_id         UUID        NOT NULL,
    status          TEXT        NOT NULL,
    total_minor     BIGINT      NOT NULL,
    currency        TEXT        NOT NULL,
    refunded_minor  BIGINT      NOT NULL DEFAULT 0,
    payment_id      UUID,
    carrier         TEXT,
    tracking_number TEXT,
    cancel_reason   TEXT,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    placed_at       TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, placed_at DESC);

CREATE TABLE IF NOT EXISTS order_lines (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    product_id       UUID    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT  NOT NULL,
    PRIMARY KEY (order_id, position)
);

CREATE TABLE IF NOT EXISTS payments (
    id              UUID        PRIMARY KEY,
    order_id        UUID        NOT NULL,
    status          TEXT        NOT NULL,
    amount_minor    BIGINT      NOT NULL,
    currency        TEXT        NOT NULL,
    refunded_minor  BIGINT      NOT NULL DEFAULT 0,
    card_brand      TEXT        NOT NULL,
    card_last4      TEXT        NOT NULL,
    decline_reason  TEXT,
    captures        INTEGER     NOT NULL DEFAULT 0,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_order ON payments (order_id);
