-- Dead letters sent back to their topic by `commerce dlq replay`: one row per dead-letter
-- record, so a replay is done once unless forced.
CREATE TABLE IF NOT EXISTS dlq_replays (
    dlq_topic   TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    dlq_offset  BIGINT      NOT NULL,
    replayed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, partition, dlq_offset)
);
