-- Parked streams: a projection that meets an event it can never apply (bad data, a constraint,
-- an undecodable record, a gap) dead-letters it and parks its stream here. Every later event
-- of that stream (from `first_version` on; all of them when the version is unknown) is held
-- in `parked_events` instead of being applied, in arrival order, until `commerce dlq replay`
-- releases the stream (`released_at`); the projector then applies the held events once, in
-- order, in one transaction, and deletes both rows. Every other stream goes on meanwhile.
CREATE TABLE IF NOT EXISTS parked_streams (
    projection    TEXT        NOT NULL,
    stream_id     TEXT        NOT NULL,
    first_version BIGINT,
    reason        TEXT        NOT NULL,
    held_events   INTEGER     NOT NULL DEFAULT 0,
    parked_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    released_at   TIMESTAMPTZ,
    drop_first    BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (projection, stream_id)
);

-- The events a parked stream holds, the one that parked it first (`poison`), as they came off
-- the topic (key and value bytes unchanged), so that a replay needs nothing else.
CREATE TABLE IF NOT EXISTS parked_events (
    seq           BIGSERIAL   PRIMARY KEY,
    projection    TEXT        NOT NULL,
    stream_id     TEXT        NOT NULL,
    version       BIGINT,
    event_type    TEXT,
    poison        BOOLEAN     NOT NULL DEFAULT false,
    reason        TEXT,
    topic         TEXT        NOT NULL,
    partition     INTEGER     NOT NULL,
    source_offset BIGINT      NOT NULL,
    record_key    BYTEA,
    payload       BYTEA,
    held_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS parked_events_stream ON parked_events (projection, stream_id, seq);
-- A redelivered event is held once.
CREATE UNIQUE INDEX IF NOT EXISTS parked_events_version
    ON parked_events (projection, stream_id, version) WHERE version IS NOT NULL;
