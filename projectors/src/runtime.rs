//! The projector runtime: consumes a read model's topics in its own consumer group, applies
//! events in batches, and commits the read-model rows and the checkpoint (topic, partition,
//! next offset) in one PostgreSQL transaction. A crash replays into the same result: offsets
//! below the checkpoint are skipped, and each row only moves to its stream's next version.
//!
//! Errors are classified ([`ProjectionError::is_permanent`]). A transient one (a lost
//! connection, a timeout, a serialization failure or deadlock, a called service that is down)
//! retries the same batch with capped exponential backoff. A permanent one (bad data such as a
//! NUL in text, a constraint, an undecodable record, a gap) is the event's own: it goes to
//! `<topic>.dlq` with the reason in the `dlq-reason` header and parks its stream
//! ([`crate::parked`]); the stream's later events are held, every other stream goes on, and
//! the rest of the batch commits with the checkpoint. A batch that meets one is applied again
//! event by event, each under a savepoint, so that the failing event is found and only its
//! own writes are undone. A stream released by `commerce dlq replay` has its held events
//! applied once, in order, in one transaction.

use crate::parked::{self, pg_text, Record};
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

impl ProjectionError {
    /// Whether retrying can never help: the event is poison and parks its stream. Otherwise
    /// the batch is retried with backoff.
    pub fn is_permanent(&self) -> bool {
        match self {
            ProjectionError::Poison(_) => true,
            ProjectionError::Db(e) => permanent_db_error(e),
            ProjectionError::Transient(_) => false,
        }
    }

    /// The reason recorded when the error parks a stream.
    pub fn reason(&self) -> String {
        match self {
            ProjectionError::Db(sqlx::Error::Database(e)) => format!(
                "database refused the event: {} (SQLSTATE {})",
                e.message(),
                e.code().as_deref().unwrap_or("?")
            ),
            other => other.to_string(),
        }
    }
}

/// Whether PostgreSQL refused the data itself, so that the same statement fails every time:
/// SQLSTATE class 22 (data exception: a NUL in text, a value out of range, bad encoding),
/// class 23 (integrity constraint), class 54 (a value over a limit, e.g. an index row too
/// large), or a value the driver cannot encode. Everything else (connection and I/O errors,
/// pool timeouts, 40001 serialization failure, 40P01 deadlock, 57P01 shutdown, 53xxx
/// resources, and errors of our own SQL) is transient: the batch is retried.
pub fn permanent_db_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

/// The delay before retry `attempt` (1, 2, ...) of a failed batch: 100 ms doubling, at most
/// 10 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    Duration::from_millis(ms.min(10_000))
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

/// [`Projection::apply_all`] for callers outside the runtime (rebuild and verify, through
/// [`crate::registry`]), on a connection inside a transaction: a permanent database error
/// (which aborts the transaction) becomes that event's refusal, found by applying the batch
/// again event by event, each under a savepoint, like the live runtime does.
pub async fn apply_isolated<P: Projection>(
    projection: &P,
    conn: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<Vec<Option<String>>, ProjectionError> {
    sqlx::query("SAVEPOINT isolated")
        .execute(&mut *conn)
        .await?;
    match projection.apply_all(&mut *conn, events).await {
        Ok(r) => {
            sqlx::query("RELEASE SAVEPOINT isolated")
                .execute(&mut *conn)
                .await?;
            return Ok(r);
        }
        Err(e) if e.is_permanent() => {}
        Err(e) => return Err(e),
    }
    sqlx::query("ROLLBACK TO SAVEPOINT isolated")
        .execute(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(events.len());
    for env in events {
        sqlx::query("SAVEPOINT isolated_event")
            .execute(&mut *conn)
            .await?;
        let refused = match projection
            .apply_all(&mut *conn, std::slice::from_ref(env))
            .await
        {
            Ok(r) => r.into_iter().flatten().next(),
            Err(e) if e.is_permanent() => Some(e.reason()),
            Err(e) => return Err(e),
        };
        let end = if refused.is_some() {
            "ROLLBACK TO SAVEPOINT isolated_event"
        } else {
            "RELEASE SAVEPOINT isolated_event"
        };
        sqlx::query(end).execute(&mut *conn).await?;
        out.push(refused);
    }
    sqlx::query("RELEASE SAVEPOINT isolated")
        .execute(&mut *conn)
        .await?;
    Ok(out)
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
    record: Record,
    reason: String,
}

/// One record of a batch as decoded: its stream (from the envelope, else from the key), its
/// version if known, and the envelope (an index) or why it does not decode.
struct Item {
    stream: Option<String>,
    version: Option<i64>,
    event: Result<usize, String>,
}

/// What a batch did, for the commit.
#[derive(Default)]
struct Outcome {
    /// `<stream_id>:<version>` of every applied event, for NOTIFY.
    applied: Vec<String>,
    dead: Vec<DeadLetter>,
    parked: usize,
    held: usize,
}

/// Whether the item waits behind its parked stream: every event from the first parked
/// version on (an event before it still applies, in stream order); every event when either
/// version is unknown.
fn held_back(parked: &HashMap<String, Option<i64>>, item: &Item) -> bool {
    let Some(first) = item.stream.as_ref().and_then(|s| parked.get(s)) else {
        return false;
    };
    match (first, item.version) {
        (Some(first), Some(v)) => v >= *first,
        _ => true,
    }
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
        // Once a second: replay the streams `dlq replay` released, and export the gauge.
        let mut parked_tick = tokio::time::interval(Duration::from_secs(1));
        parked_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = parked_tick.tick() => {
                    self.tend_parked(&producer).await;
                    continue;
                }
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
            // Only transient failures come back here (a poison event parks its stream inside
            // the batch): retry the same batch with capped exponential backoff.
            let mut attempt: u32 = 0;
            let committed = loop {
                match self.apply_batch(&batch, &producer).await {
                    Ok(c) => {
                        if attempt > 0 {
                            metrics::gauge!("projector_batch_retry_attempt", "projection" => name)
                                .set(0.0);
                        }
                        break Some(c);
                    }
                    Err(e) => {
                        // Still alive and consuming: failures show in the metrics, not
                        // in /healthz, so a start is not blocked by a dependency's outage.
                        attempt = attempt.saturating_add(1);
                        metrics::counter!("projector_batch_failures_total", "projection" => name)
                            .increment(1);
                        metrics::gauge!("projector_batch_retry_attempt", "projection" => name)
                            .set(f64::from(attempt));
                        let delay = retry_delay(attempt);
                        tracing::warn!(
                            projection = name,
                            attempt,
                            retry_in_ms = delay.as_millis() as u64,
                            error = %e,
                            "batch failed (transient); retrying"
                        );
                        tokio::select! {
                            _ = shutdown.cancelled() => break None,
                            _ = tokio::time::sleep(delay) => {}
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

    /// Applies one batch in one transaction; returns the new checkpoints. Fails only for a
    /// transient reason: a poison event is dead-lettered and parks its stream.
    async fn apply_batch(
        &self,
        batch: &[OwnedMessage],
        producer: &FutureProducer,
    ) -> anyhow::Result<Checkpoints> {
        let mut next: Checkpoints = HashMap::new();
        let records: Vec<Record> = batch
            .iter()
            .map(|m| {
                next.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
                Record {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                }
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let outcome = self.process(&mut tx, &records).await?;
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
        self.finish(tx, outcome, producer).await?;
        Ok(next)
    }

    /// Wakes readers, sends the dead letters, and commits.
    async fn finish(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        outcome: Outcome,
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        // Readers waiting for a version (read-your-writes) are woken when this commits.
        if !outcome.applied.is_empty() {
            sqlx::query("SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x")
                .bind(notify_channel(self.projection.name()))
                .bind(&outcome.applied)
                .execute(&mut *tx)
                .await?;
        }
        // Dead letters are on the broker before the checkpoint moves past them.
        self.send_dead_letters(&outcome.dead, producer).await?;
        tx.commit().await?;
        let name = self.projection.name();
        if outcome.parked > 0 {
            metrics::counter!("projector_parked_total", "projection" => name)
                .increment(outcome.parked as u64);
        }
        if outcome.held > 0 {
            metrics::counter!("projector_held_events_total", "projection" => name)
                .increment(outcome.held as u64);
        }
        Ok(())
    }

    /// Applies `records` in order on `tx`: what decodes and applies is applied; an event of a
    /// parked stream is held; a poison event is dead-lettered and parks its stream. Fails only
    /// for a transient reason (the caller retries the whole transaction).
    async fn process(
        &self,
        tx: &mut PgConnection,
        records: &[Record],
    ) -> Result<Outcome, ProjectionError> {
        let name = self.projection.name();
        // Decode: an envelope (an index into `events`), or why not.
        let mut events: Vec<EventEnvelope> = Vec::with_capacity(records.len());
        let mut items: Vec<Item> = Vec::with_capacity(records.len());
        for r in records {
            let decoded = match &r.payload {
                None => Err("empty record".to_owned()),
                Some(bytes) => cloudevents::decode(bytes).map_err(|e| e.to_string()),
            };
            items.push(match decoded {
                Ok(e) => {
                    let item = Item {
                        stream: Some(pg_text(&e.stream_id)),
                        version: i64::try_from(e.version).ok(),
                        event: Ok(events.len()),
                    };
                    events.push(e);
                    item
                }
                // The key names the stream (the relay keys every record by its stream id).
                Err(reason) => Item {
                    stream: r
                        .key
                        .as_deref()
                        .map(|k| pg_text(&String::from_utf8_lossy(k))),
                    version: None,
                    event: Err(reason),
                },
            });
        }
        let mut streams: Vec<String> = items.iter().filter_map(|i| i.stream.clone()).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut parked = parked::parked_of(tx, name, &streams).await?;
        let mut out = Outcome::default();

        // Fast path: nothing parked or undecodable here: the whole batch in one call (the
        // cart model's set-based path), under a savepoint in case an event refuses.
        if items
            .iter()
            .all(|i| i.event.is_ok() && !held_back(&parked, i))
        {
            sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
            match self.projection.apply_all(&mut *tx, &events).await {
                Ok(results) if results.iter().all(Option::is_none) => {
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut *tx)
                        .await?;
                    out.applied = events
                        .iter()
                        .map(|e| format!("{}:{}", e.stream_id, e.version))
                        .collect();
                    return Ok(out);
                }
                Ok(_) => {}
                Err(e) if e.is_permanent() => {}
                Err(e) => return Err(e),
            }
            // One event refused: undo the batch and find it, event by event.
            sqlx::query("ROLLBACK TO SAVEPOINT batch")
                .execute(&mut *tx)
                .await?;
            tracing::info!(
                projection = name,
                events = events.len(),
                "a batch met a poison event; applying it event by event"
            );
        }

        for (item, record) in items.iter().zip(records) {
            let stream = item.stream.as_deref();
            let env = item.event.as_ref().ok().map(|k| &events[*k]);
            if held_back(&parked, item) {
                if let Some(stream) = stream {
                    let held = parked::Held {
                        version: item.version,
                        event_type: env.map(|e| e.event_type.as_str()),
                        poison: None,
                    };
                    parked::hold(tx, name, stream, held, record).await?;
                    out.held += 1;
                    tracing::info!(
                        projection = name,
                        stream_id = stream,
                        version = item.version,
                        "holding an event of a parked stream"
                    );
                }
                continue;
            }
            let refused = match (env, &item.event) {
                (Some(env), _) => {
                    let span = tracing::info_span!(
                        "apply",
                        projection = name,
                        correlation_id = %env.correlation_id,
                        stream_id = %env.stream_id,
                        version = env.version
                    );
                    sqlx::query("SAVEPOINT event").execute(&mut *tx).await?;
                    let result = tracing::Instrument::instrument(
                        self.projection
                            .apply_all(&mut *tx, std::slice::from_ref(env)),
                        span,
                    )
                    .await;
                    let refused = match result {
                        Ok(r) => r.into_iter().flatten().next(),
                        Err(e) if e.is_permanent() => Some(e.reason()),
                        Err(e) => return Err(e),
                    };
                    if refused.is_some() {
                        sqlx::query("ROLLBACK TO SAVEPOINT event")
                            .execute(&mut *tx)
                            .await?;
                    } else {
                        sqlx::query("RELEASE SAVEPOINT event")
                            .execute(&mut *tx)
                            .await?;
                        out.applied
                            .push(format!("{}:{}", env.stream_id, env.version));
                    }
                    refused
                }
                (None, Err(reason)) => Some(reason.clone()),
                (None, Ok(_)) => None,
            };
            let Some(reason) = refused else { continue };
            out.dead.push(DeadLetter {
                record: record.clone(),
                reason: reason.clone(),
            });
            // Park the stream, and keep this event as its first held one.
            if let Some(stream) = stream {
                parked::park(tx, name, stream, item.version, &reason).await?;
                let held = parked::Held {
                    version: item.version,
                    event_type: env.map(|e| e.event_type.as_str()),
                    poison: Some(&reason),
                };
                parked::hold(tx, name, stream, held, record).await?;
                parked.insert(stream.to_owned(), item.version);
                out.parked += 1;
                tracing::warn!(
                    projection = name,
                    stream_id = stream,
                    version = item.version,
                    %reason,
                    "parking a stream behind a poison event"
                );
            }
        }
        Ok(out)
    }

    /// Replays the streams `dlq replay` released (their held events, once, in order, in one
    /// transaction; an event that fails again parks its stream again), and exports the
    /// `projector_parked_streams` gauge. Failures are logged and tried at the next tick.
    async fn tend_parked(&self, producer: &FutureProducer) {
        let name = self.projection.name();
        if let Err(e) = self.replay_released(producer).await {
            tracing::warn!(projection = name, error = %e, "replaying released streams failed; retrying");
        }
        match parked::count(&self.pool, name).await {
            Ok(n) => {
                metrics::gauge!("projector_parked_streams", "projection" => name).set(n as f64)
            }
            Err(e) => tracing::debug!(error = %e, "counting parked streams"),
        }
    }

    async fn replay_released(&self, producer: &FutureProducer) -> anyhow::Result<()> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        let released = parked::take_released(&mut tx, name, 20).await?;
        if released.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        for (stream, held) in released {
            tracing::info!(
                projection = name,
                stream_id = %stream,
                events = held.len(),
                "replaying a released stream"
            );
            records.extend(held);
        }
        let outcome = self.process(&mut tx, &records).await?;
        metrics::counter!("projector_replayed_events_total", "projection" => name)
            .increment(outcome.applied.len() as u64);
        self.finish(tx, outcome, producer).await
    }

    async fn send_dead_letters(
        &self,
        dead: &[DeadLetter],
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        for d in dead {
            metrics::counter!("projector_dead_letters_total", "projection" => self.projection.name())
                .increment(1);
            let m = &d.record;
            tracing::warn!(
                projection = self.projection.name(),
                topic = %m.topic,
                partition = m.partition,
                offset = m.offset,
                reason = %d.reason,
                "dead-lettering a message"
            );
            let partition = m.partition.to_string();
            let offset = m.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "dlq-reason",
                    value: Some(d.reason.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-topic",
                    value: Some(m.topic.as_str()),
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
            let topic = dead_letter_topic(&m.topic);
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&topic).headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &m.payload {
                record = record.payload(p.as_slice());
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("dead-letter produce failed: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(stream: &str, version: Option<i64>) -> Item {
        Item {
            stream: Some(stream.into()),
            version,
            event: Ok(0),
        }
    }

    #[test]
    fn a_parked_stream_holds_its_events_from_the_parked_version_on() {
        let parked: HashMap<String, Option<i64>> =
            [("a".to_owned(), Some(3)), ("b".to_owned(), None)].into();
        assert!(
            !held_back(&parked, &item("a", Some(2))),
            "before it: applies"
        );
        assert!(held_back(&parked, &item("a", Some(3))));
        assert!(held_back(&parked, &item("a", Some(9))));
        assert!(
            held_back(&parked, &item("a", None)),
            "unknown version: held"
        );
        assert!(
            held_back(&parked, &item("b", Some(1))),
            "unknown parked version: all"
        );
        assert!(
            !held_back(&parked, &item("c", Some(1))),
            "other streams go on"
        );
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let d: Vec<u128> = (1..=9).map(|a| retry_delay(a).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn only_the_events_own_errors_are_permanent() {
        assert!(ProjectionError::Poison("gap".into()).is_permanent());
        assert!(!ProjectionError::Transient("down".into()).is_permanent());
        assert!(!ProjectionError::Db(sqlx::Error::PoolTimedOut).is_permanent());
        assert!(
            !ProjectionError::Db(sqlx::Error::Io(std::io::Error::other("reset"))).is_permanent()
        );
    }
}
