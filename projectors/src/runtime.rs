//! The projector runtime: consumes a read model's topics in its own consumer group, applies
//! events in batches, and commits the read-model rows and the checkpoint (topic, partition,
//! next offset) in one PostgreSQL transaction. A crash replays into the same result: offsets
//! below the checkpoint are skipped, and each row only moves to its stream's next version.
//!
//! A message that cannot be decoded or applied goes to `<topic>.dlq` with the reason in the
//! `dlq-reason` header, and the projector goes on. A database failure retries the same batch.

use command_services::kafka::KafkaArgs;
use command_services::support::Readiness;
use event_schemas::{cloudevents, dead_letter_topic, EventEnvelope};
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why one event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event cannot ever be applied (bad payload, a gap in the stream): dead-letter it.
    #[error("{0}")]
    Poison(String),
    /// The database failed: retry the batch.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A service the projection calls is unavailable: retry the batch.
    #[error("transient: {0}")]
    Transient(String),
}

/// The PostgreSQL NOTIFY channel on which a projection announces `<stream_id>:<version>`
/// for every event it applied, when its batch commits.
pub fn notify_channel(projection: &str) -> String {
    format!("readmodel_{}", projection.replace('-', "_"))
}

/// Whether an event moves a row to its next version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The row moved from version N-1 to N: apply the event's other changes.
    Apply,
    /// The row is already at N or later: a redelivery, change nothing.
    Seen,
}

/// Moves `table`'s row `id` to `version` if it is at `version - 1`, and sets `updated_at`.
/// A row further behind (a gap) or missing is a poison event. `table` is a constant of the
/// calling projection, never input.
pub async fn advance(
    conn: &mut PgConnection,
    table: &'static str,
    id: uuid::Uuid,
    env: &EventEnvelope,
) -> Result<Advance, ProjectionError> {
    let version = i64::try_from(env.version)
        .map_err(|_| ProjectionError::Poison("version out of range".into()))?;
    let moved = sqlx::query(&format!(
        "UPDATE {table} SET version = $2, updated_at = $3 WHERE id = $1 AND version = $2 - 1"
    ))
    .bind(id)
    .bind(version)
    .bind(env.occurred_at)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 1 {
        return Ok(Advance::Apply);
    }
    let current: Option<i64> =
        sqlx::query_scalar(&format!("SELECT version FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match current {
        Some(v) if v >= version => Ok(Advance::Seen),
        Some(v) => Err(ProjectionError::Poison(format!(
            "{table} {id} is at version {v}; version {version} leaves a gap"
        ))),
        None => Err(ProjectionError::Poison(format!(
            "{table} {id} was never created"
        ))),
    }
}

/// The stream id of an event as a UUID, and its typed payload.
pub fn decode<E: domain::DomainEvent>(
    env: &EventEnvelope,
    stream_type: &str,
) -> Result<(uuid::Uuid, E), ProjectionError> {
    if env.stream_type != stream_type {
        return Err(ProjectionError::Poison(format!(
            "not a {stream_type} event: {}",
            env.stream_type
        )));
    }
    let event = env
        .decode()
        .map_err(|e| ProjectionError::Poison(e.to_string()))?;
    let id = uuid::Uuid::parse_str(&env.stream_id).map_err(|_| {
        ProjectionError::Poison(format!("stream id {:?} is not a UUID", env.stream_id))
    })?;
    Ok((id, event))
}

/// One read model: which topics feed it and how an event changes its rows.
pub trait Projection: Send + Sync + 'static {
    /// Names the consumer group (`projector.<name>`) and the checkpoint rows.
    fn name(&self) -> &'static str;
    fn topics(&self) -> Vec<String>;
    /// Applies one event inside the batch's transaction. Must be idempotent: an event at or
    /// below the row's version changes nothing.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;

    /// Applies a batch in order inside its transaction; per event, `None` once applied (or
    /// seen before) and `Some(reason)` if it is refused for good (it is dead-lettered). By
    /// default one event at a time, each in a span carrying its correlation id; a projection
    /// with a set-based path overrides it (the cart model).
    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> impl Future<Output = Result<Vec<Option<String>>, ProjectionError>> + Send + 'a {
        async move {
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                // Every log line of the apply (and of the saga's calls) carries the
                // request's correlation id.
                let span = tracing::info_span!(
                    "apply",
                    projection = self.name(),
                    correlation_id = %event.correlation_id,
                    stream_id = %event.stream_id,
                    version = event.version
                );
                match tracing::Instrument::instrument(self.apply(&mut *conn, event), span).await {
                    Ok(()) => out.push(None),
                    Err(ProjectionError::Poison(reason)) => out.push(Some(reason)),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
    }
}

/// The distinct correlation ids of a batch, comma-separated (at most 50), for the span of a
/// set-based apply: a request can still be found in its log line.
pub fn correlation_ids(events: &[EventEnvelope]) -> String {
    let mut ids: Vec<&str> = events.iter().map(|e| e.correlation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(50);
    ids.join(",")
}

/// Tuning knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub batch_size: usize,
    /// How long to wait for more messages once a batch has started.
    pub batch_linger: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            batch_linger: Duration::from_millis(10),
        }
    }
}

type Checkpoints = HashMap<(String, i32), i64>;

pub struct ProjectorRuntime<P: Projection> {
    projection: P,
    pool: PgPool,
    kafka: KafkaArgs,
    config: RuntimeConfig,
    ready: Readiness,
}

struct DeadLetter {
    message: OwnedMessage,
    reason: String,
}

impl<P: Projection> ProjectorRuntime<P> {
    pub fn new(
        projection: P,
        pool: PgPool,
        kafka: KafkaArgs,
        config: RuntimeConfig,
        ready: Readiness,
    ) -> Self {
        Self {
            projection,
            pool,
            kafka,
            config,
            ready,
        }
    }

    /// Consumes until the token is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = self.projection.name();
        let topics = self.projection.topics();
        let mut all_topics = topics.clone();
        all_topics.extend(topics.iter().map(|t| dead_letter_topic(t)));
        self.kafka.ensure_topics(&all_topics).await?;

        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", format!("projector.{name}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .create()?;
        let producer: FutureProducer = self.kafka.producer()?;
        let mut checkpoints = self.load_checkpoints().await?;
        // Partitions are assigned from the checkpoints, not by group membership: the
        // PostgreSQL checkpoint is the position, a restart resumes exactly there at once,
        // and no group rebalance can stall the projection. The group id still names the
        // projection's committed offsets, for lag tooling.
        let mut tpl = TopicPartitionList::new();
        for topic in &topics {
            let md = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(10))?;
            let partitions = md
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
            for p in 0..partitions as i32 {
                let offset = match checkpoints.get(&(topic.clone(), p)) {
                    Some(next) => Offset::Offset(*next),
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(topic, p, offset)?;
            }
        }
        consumer.assign(&tpl)?;
        drop(tpl);
        self.ready.set_ready(true);
        tracing::info!(projection = name, ?topics, "projector consuming");
        // Lag as Prometheus gauges, measured beside the consumer (see `lag`).
        let lag = tokio::spawn(crate::lag::export_metrics(
            self.pool.clone(),
            self.kafka.clone(),
            name,
            topics.clone(),
            Duration::from_secs(2),
            shutdown.clone(),
        ));

        let mut stream = consumer.stream();
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = stream.next() => m,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first?.detach()];
            while batch.len() < self.config.batch_size {
                match tokio::time::timeout(self.config.batch_linger, stream.next()).await {
                    Ok(Some(m)) => batch.push(m?.detach()),
                    _ => break,
                }
            }
            batch.retain(|m| {
                let next = checkpoints.get(&(m.topic().to_owned(), m.partition()));
                next.is_none_or(|n| m.offset() >= *n)
            });
            if batch.is_empty() {
                continue;
            }
            let committed = loop {
                match self.apply_batch(&batch, &producer).await {
                    Ok(c) => break Some(c),
                    Err(e) => {
                        // Still alive and consuming: failures show in the metrics, not
                        // in /healthz, so a start is not blocked by a dependency's outage.
                        metrics::counter!("projector_batch_failures_total", "projection" => name)
                            .increment(1);
                        tracing::warn!(projection = name, error = %e, "batch failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => break None,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
            };
            let Some(committed) = committed else { break };
            metrics::counter!("projector_events_total", "projection" => name)
                .increment(batch.len() as u64);
            metrics::histogram!("projector_batch_size", "projection" => name)
                .record(batch.len() as f64);
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), next) in committed {
                metrics::gauge!(
                    "projector_checkpoint_offset",
                    "projection" => name,
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(next as f64);
                tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
                checkpoints.insert((topic, partition), next);
            }
            // Kafka's committed offsets only make restarts and lag tooling cheaper; the
            // PostgreSQL checkpoint is the truth.
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "offset commit to Kafka failed");
            }
        }
        lag.abort();
        tracing::info!(projection = name, "projector stopped");
        Ok(())
    }

    async fn load_checkpoints(&self) -> anyhow::Result<Checkpoints> {
        let rows: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT topic, partition, next_offset FROM projector_checkpoints WHERE projection = $1",
        )
        .bind(self.projection.name())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
    }

    /// Applies one batch in one transaction; returns the new checkpoints.
    async fn apply_batch(
        &self,
        batch: &[OwnedMessage],
        producer: &FutureProducer,
    ) -> anyhow::Result<Checkpoints> {
        let mut tx = self.pool.begin().await?;
        // (position in the batch, dead letter): sent in batch order.
        let mut dead: Vec<(usize, DeadLetter)> = Vec::new();
        let mut next: Checkpoints = HashMap::new();
        let mut events = Vec::with_capacity(batch.len());
        let mut sources = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            next.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
            let decoded = match m.payload() {
                None => Err("empty record".to_owned()),
                Some(bytes) => cloudevents::decode(bytes).map_err(|e| e.to_string()),
            };
            match decoded {
                Ok(e) => {
                    events.push(e);
                    sources.push(i);
                }
                Err(reason) => dead.push((
                    i,
                    DeadLetter {
                        message: m.clone(),
                        reason,
                    },
                )),
            }
        }
        let results = match self.projection.apply_all(&mut tx, &events).await {
            Ok(r) => r,
            Err(ProjectionError::Db(e)) => return Err(e.into()),
            Err(e) => anyhow::bail!(e),
        };
        let mut applied: Vec<String> = Vec::with_capacity(events.len());
        for ((event, i), refused) in events.iter().zip(sources).zip(results) {
            match refused {
                None => applied.push(format!("{}:{}", event.stream_id, event.version)),
                Some(reason) => dead.push((
                    i,
                    DeadLetter {
                        message: batch[i].clone(),
                        reason,
                    },
                )),
            }
        }
        dead.sort_by_key(|(i, _)| *i);
        let dead: Vec<DeadLetter> = dead.into_iter().map(|(_, d)| d).collect();
        for ((topic, partition), offset) in &next {
            sqlx::query(
                "INSERT INTO projector_checkpoints (projection, topic, partition, next_offset, updated_at)
                 VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (projection, topic, partition) DO UPDATE
                 SET next_offset = GREATEST(projector_checkpoints.next_offset, EXCLUDED.next_offset),
                     updated_at = now()",
            )
            .bind(self.projection.name())
            .bind(topic)
            .bind(partition)
            .bind(offset)
            .execute(&mut *tx)
            .await?;
        }
        // Readers waiting for a version (read-your-writes) are woken when this commits.
        if !applied.is_empty() {
            sqlx::query("SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x")
                .bind(notify_channel(self.projection.name()))
                .bind(&applied)
                .execute(&mut *tx)
                .await?;
        }
        // Dead letters are on the broker before the checkpoint moves past them.
        self.send_dead_letters(&dead, producer).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn send_dead_letters(
        &self,
        dead: &[DeadLetter],
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        for d in dead {
            metrics::counter!("projector_dead_letters_total", "projection" => self.projection.name())
                .increment(1);
            let m = &d.message;
            tracing::warn!(
                projection = self.projection.name(),
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                reason = %d.reason,
                "dead-lettering a message"
            );
            let partition = m.partition().to_string();
            let offset = m.offset().to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "dlq-reason",
                    value: Some(d.reason.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-topic",
                    value: Some(m.topic()),
                })
                .insert(Header {
                    key: "dlq-source-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-offset",
                    value: Some(offset.as_str()),
                })
                .insert(Header {
                    key: "dlq-projection",
                    value: Some(self.projection.name()),
                });
            let topic = dead_letter_topic(m.topic());
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&topic).headers(headers);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("dead-letter produce failed: {e}"))?;
        }
        Ok(())
    }
}
