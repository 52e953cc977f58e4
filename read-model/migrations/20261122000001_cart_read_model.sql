-- The cart read model and the projectors' checkpoints.

-- Where each projection is in each partition: the next offset to apply. Written in the same
-- transaction as the read-model rows the batch changed.
CREATE TABLE IF NOT EXISTS projector_checkpoints (
    projection  TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    next_offset BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

CREATE TABLE IF NOT EXISTS carts (
    id          UUID        PRIMARY KEY,
    customer_id UUID,
    status      TEXT        NOT NULL CHECK (status IN ('open', 'checked_out')),
    -- The stream version this row reflects; a row only moves to the next version.
    version     BIGINT      NOT NULL CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS carts_customer ON carts (customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS cart_lines (
    cart_id       UUID    NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id    UUID    NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    -- The stream version that added the line (orders lines) and that last changed it.
    added_version BIGINT  NOT NULL,
    version       BIGINT  NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
