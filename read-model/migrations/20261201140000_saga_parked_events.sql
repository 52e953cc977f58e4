-- The checkout saga's parked events: an event whose step failed transiently (a command
-- service down, a stream held by another writer) waits here, in order per checkout, and is
-- retried with backoff; the events of every other checkout go on. Written in the batch's
-- transaction, with the checkpoint that moves past the event, so nothing is lost.
CREATE TABLE IF NOT EXISTS saga_parked (
    id              BIGSERIAL   PRIMARY KEY,
    -- The checkout (order id) or user the event belongs to; one key's events run in order.
    key             TEXT        NOT NULL,
    envelope        JSONB       NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT        NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    parked_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS saga_parked_key ON saga_parked (key, id);

-- Checkouts that never became an order (its placement was refused) are 'failed': no sweep.
CREATE INDEX IF NOT EXISTS checkouts_due ON checkouts (deadline)
    WHERE status NOT IN ('confirmed', 'cancelled', 'failed');
