-- The Kafka cluster a projection's checkpoints count offsets in. A broker that comes back as
-- a new cluster (the local broker keeps nothing and starts as a new cluster each time; on
-- Kafka, a recreated cluster) has none of the offsets the checkpoints name.
CREATE TABLE IF NOT EXISTS projector_clusters (
    projection text PRIMARY KEY,
    cluster_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
