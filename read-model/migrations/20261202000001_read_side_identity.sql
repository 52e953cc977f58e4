-- Which store a projection's rows were built from, which epoch of each topic its checkpoints
-- count in (see docs/architecture.md, "Healing from the store"), and the state each projector
-- last reported (for `commerce projections status`).
CREATE TABLE IF NOT EXISTS projector_identity (
    projection TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS projector_topic_epochs (
    projection TEXT NOT NULL,
    topic TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic)
);

CREATE TABLE IF NOT EXISTS projector_status (
    projection TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    lag_events BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
