-- An order's timeline (its events, readable), and the notifications read model: what was
-- sent to whom for which order event (the default notifier's outbox and the back office's
-- list), with the recipients and order facts the notification projection keeps for itself.

CREATE TABLE IF NOT EXISTS order_timeline (
    order_id    UUID        NOT NULL,
    version     BIGINT      NOT NULL CHECK (version >= 1),
    event_type  TEXT        NOT NULL,
    summary     TEXT        NOT NULL,
    actor       TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, version)
);

CREATE INDEX IF NOT EXISTS orders_status_placed ON orders (status, placed_at DESC, id);
CREATE INDEX IF NOT EXISTS orders_placed ON orders (placed_at DESC, id);

CREATE TABLE IF NOT EXISTS notification_recipients (
    customer_id UUID PRIMARY KEY,
    email       TEXT,
    name        TEXT        NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS notification_orders (
    order_id    UUID   PRIMARY KEY,
    customer_id UUID   NOT NULL,
    total_minor BIGINT NOT NULL,
    currency    TEXT   NOT NULL
);

-- One row per notifying event, keyed by the event's id: sending is idempotent per event.
CREATE TABLE IF NOT EXISTS notifications (
    event_id    UUID        PRIMARY KEY,
    order_id    UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    kind        TEXT        NOT NULL,
    channel     TEXT        NOT NULL,
    recipient   TEXT,
    subject     TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notifications_order ON notifications (order_id, occurred_at);
CREATE INDEX IF NOT EXISTS notifications_newest ON notifications (occurred_at DESC, event_id);
