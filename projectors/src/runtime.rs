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
//!
//! The read side heals from the store: beside the checkpoints it records the identity of the
//! event store it was built from (`projector_identity`) and the epoch of each topic its
//! checkpoints count in (`projector_topic_epochs`, stamped by the relay on every record).
//! A read model of another store is emptied and replayed at start (or as soon as the store
//! changes); a topic the relay republished in a newer epoch after the broker lost it has its
//! checkpoints reset and is replayed from its beginning (rows stay: applying an event again
//! is a no-op, so reads are never wrong, only behind). Health says `healing` meanwhile.

use crate::lag::ProjectorHealth;
use crate::parked::{self, pg_text, Record};
use event_schemas::{cloudevents, dead_letter_topic, EventEnvelope};
use event_store::pii::{PiiError, Reveal};
use futures::StreamExt;
use platform::kafka::KafkaArgs;
use platform::support::Readiness;
use platform::trace_context;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
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
    /// Every table it writes, parents first: a reset empties them, and a rebuild writes them
    /// in a schema of its own.
    fn tables(&self) -> &'static [&'static str];
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
                trace_context::follow(&span, event.traceparent.as_deref());
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
/// `registry`), on a connection inside a transaction: a permanent database error
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
    /// The event store (URI, database) whose identity the read side is checked against.
    store: Option<(String, String)>,
    health: ProjectorHealth,
}

/// What the watcher found.
#[derive(Debug)]
enum Heal {
    /// The event store's identity is not the one the read side was built from.
    Store(String),
    /// A topic starts with a newer epoch than the checkpoints count in.
    Epoch(String, i64),
    /// The broker answers as another cluster than the checkpoints count offsets in.
    Cluster(String),
}

async fn current_cluster(kafka: &KafkaArgs) -> Option<String> {
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.cluster_id())
        .await
        .ok()
        .flatten()
}

/// Waits a second before the next try; `true` if shut down meanwhile.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}

/// What [`sort_batch`] found besides the records it kept.
#[derive(Debug, Default, PartialEq)]
struct Sorted {
    /// A topic begins a newer epoch than the checkpoints count in: heal it.
    newer: Option<(String, i64)>,
    /// Topics seen for the first time, in the epoch their records carry.
    adopted: Vec<(String, i64)>,
}

/// Keeps the records of a batch that belong to the read side: of its store, in the epoch
/// its checkpoints count in (records without the relay's headers, e.g. dead letters replayed
/// by the CLI, count as current). Records of another store or an older epoch go; a topic's
/// first epoch is adopted; a newer epoch is reported, and its records go.
fn sort_batch(
    batch: &mut Vec<OwnedMessage>,
    store_id: Option<&str>,
    epochs: &mut HashMap<String, i64>,
    checkpoints: &Checkpoints,
) -> Sorted {
    let mut sorted = Sorted::default();
    batch.retain(|m| {
        let (store, epoch) = platform::kafka::record_origin(m);
        if let (Some(ours), Some(theirs)) = (store_id, &store) {
            if ours != theirs {
                return false;
            }
        }
        let Some(epoch) = epoch else { return true };
        match epochs.get(m.topic()) {
            Some(k) if epoch == *k => true,
            Some(k) if epoch < *k => false,
            Some(_) => {
                sorted.newer.get_or_insert((m.topic().to_owned(), epoch));
                false
            }
            // Checkpoints counted in an epoch not recorded: replay the topic.
            None if checkpoints.keys().any(|(t, _)| t == m.topic()) => {
                sorted.newer.get_or_insert((m.topic().to_owned(), epoch));
                false
            }
            None => {
                epochs.insert(m.topic().to_owned(), epoch);
                sorted.adopted.push((m.topic().to_owned(), epoch));
                true
            }
        }
    });
    sorted
}

type SharedEpochs = Arc<Mutex<HashMap<String, i64>>>;
type SharedCluster = Arc<Mutex<Option<String>>>;

/// Every 3 s: is the store still the one the read side belongs to, and does any topic begin
/// with a newer epoch (the relay republished it after the broker lost it)? Catches a
/// checkpoint past the end of a refilled topic before the refill reaches it.
async fn watch(
    kafka: KafkaArgs,
    topics: Vec<String>,
    store: Option<(String, String)>,
    mut store_id: Option<String>,
    known: SharedEpochs,
    cluster: SharedCluster,
    heal: mpsc::Sender<Heal>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(now) = current_cluster(&kafka).await {
            let changed = {
                let known = cluster.lock().unwrap_or_else(|e| e.into_inner());
                known.as_ref().is_some_and(|k| *k != now)
            };
            if changed {
                if heal.send(Heal::Cluster(now)).await.is_err() {
                    return;
                }
                continue;
            }
        }
        if let (Some((uri, db)), Some(ours)) = (&store, &store_id) {
            match event_store::event_store::connect_identity(uri, db).await {
                Ok(id) if &id != ours => {
                    store_id = Some(id.clone());
                    if heal.send(Heal::Store(id)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "reading the store identity"),
            }
        }
        let (k, t) = (kafka.clone(), topics.clone());
        let firsts = tokio::task::spawn_blocking(move || {
            crate::lag::first_epochs(&k, &t, Duration::from_millis(1500))
        })
        .await;
        let Ok(Ok(firsts)) = firsts else { continue };
        let newer: Vec<(String, i64)> = {
            let known = known.lock().unwrap_or_else(|e| e.into_inner());
            firsts
                .into_iter()
                .filter(|(_, (store, _))| match (store, &store_id) {
                    (Some(s), Some(ours)) => s == ours,
                    _ => true,
                })
                .filter_map(|(t, (_, e))| match known.get(&t) {
                    Some(k) if e > *k => Some((t, e)),
                    _ => None,
                })
                .collect()
        };
        for (t, e) in newer {
            if heal.send(Heal::Epoch(t, e)).await.is_err() {
                return;
            }
        }
    }
}

/// Records the epoch a projection's checkpoints of `topic` count in.
async fn save_epoch(
    conn: &mut PgConnection,
    projection: &str,
    topic: &str,
    epoch: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO projector_topic_epochs (projection, topic, epoch, updated_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (projection, topic) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()",
    )
    .bind(projection)
    .bind(topic)
    .bind(epoch)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct DeadLetter {
    record: Record,
    reason: String,
}

/// At most this many events' traces are linked from one batch's span.
const MAX_LINKS: usize = 32;

/// A record's `traceparent` header (the relay writes one when the command was traced).
fn traceparent_header(m: &OwnedMessage) -> Option<String> {
    use rdkafka::message::Headers as _;
    m.headers()?
        .iter()
        .find(|h| h.key == trace_context::TRACEPARENT)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
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
            store: None,
            health: ProjectorHealth::default(),
        }
    }

    /// Checks the read side against this event store's identity (see [`Self::run`]).
    /// Its keys also open the events' sealed personal fields (`event_store::pii`).
    pub fn with_store(mut self, uri: &str, db: &str) -> Self {
        event_store::pii::install(uri, db);
        self.store = Some((uri.to_owned(), db.to_owned()));
        self
    }

    /// Checks, before the first event, which store the read side belongs to (see the module
    /// docs): with a store configured, its identity is read (created if the store is new)
    /// and compared with the one recorded beside the checkpoints. Returns it.
    async fn check_identity(&self, shutdown: &CancellationToken) -> anyhow::Result<Option<String>> {
        let Some((uri, db)) = &self.store else {
            return Ok(None);
        };
        let store_id = platform::support::retry_startup("event store", shutdown, || {
            event_store::event_store::connect_identity(uri, db)
        })
        .await?;
        let name = self.projection.name();
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT store_id FROM projector_identity WHERE projection = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        if recorded.as_deref() != Some(store_id.as_str()) {
            let has_state: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM projector_checkpoints WHERE projection = $1)",
            )
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
            if recorded.is_some() || has_state {
                tracing::warn!(
                    projection = name,
                    recorded = ?recorded,
                    store = %store_id,
                    "the read model belongs to another event store; emptying it and replaying"
                );
                self.health.healing(format!(
                    "the read model belonged to another store ({recorded:?})"
                ));
                self.reset(None, Some(&store_id)).await?;
            } else {
                self.reset(None, Some(&store_id)).await?;
            }
        }
        Ok(Some(store_id))
    }

    /// Resets the projection in one transaction: `topic` alone (its checkpoints go and its
    /// epoch is recorded: a replay from the topic's beginning over rows that stay correct),
    /// or everything (`topic` None: the read model's tables are emptied too, its checkpoints
    /// and epochs deleted, and `store_id` recorded as the store it now belongs to).
    async fn reset(
        &self,
        topic: Option<(&str, i64)>,
        store_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        match topic {
            Some((topic, epoch)) => {
                sqlx::query(
                    "DELETE FROM projector_checkpoints WHERE projection = $1 AND topic = $2",
                )
                .bind(name)
                .bind(topic)
                .execute(&mut *tx)
                .await?;
                save_epoch(&mut tx, name, topic, epoch).await?;
            }
            None => {
                let tables: Vec<String> = self
                    .projection
                    .tables()
                    .iter()
                    .map(|t| format!("public.{t}"))
                    .collect();
                if !tables.is_empty() {
                    sqlx::query(&format!("TRUNCATE {}", tables.join(", ")))
                        .execute(&mut *tx)
                        .await?;
                }
                for table in ["projector_checkpoints", "projector_topic_epochs"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE projection = $1"))
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if let Some(store_id) = store_id {
            sqlx::query(
                "INSERT INTO projector_identity (projection, store_id, updated_at) VALUES ($1, $2, now())
                 ON CONFLICT (projection) DO UPDATE SET store_id = EXCLUDED.store_id, updated_at = now()",
            )
            .bind(name)
            .bind(store_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Assigns every partition of `topics` at its checkpoint (the beginning without one).
    fn assign(
        &self,
        topics: &[String],
        checkpoints: &Checkpoints,
    ) -> anyhow::Result<StreamConsumer> {
        let consumer = self
            .kafka
            .consumer(format!("projector.{}", self.projection.name()))
            .from_earliest()
            .no_partition_eof()
            .set("session.timeout.ms", "10000")
            .stream()?;
        // Partitions are assigned from the checkpoints, not by group membership: the
        // PostgreSQL checkpoint is the position, a restart resumes exactly there at once,
        // and no group rebalance can stall the projection. The group id still names the
        // projection's committed offsets, for lag tooling.
        platform::kafka::assign_all(&consumer, topics, |topic, p| {
            match checkpoints.get(&(topic.to_owned(), p)) {
                Some(next) => Offset::Offset(*next),
                None => Offset::Beginning,
            }
        })?;
        Ok(consumer)
    }

    /// The projection's health, shared with its runtime (the saga's timeout sweeper reads it).
    pub fn health(&self) -> ProjectorHealth {
        self.health.clone()
    }

    async fn load_epochs(&self) -> anyhow::Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT topic, epoch FROM projector_topic_epochs WHERE projection = $1")
                .bind(self.projection.name())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Consumes until the token is cancelled. The read side heals itself (module docs): at
    /// start a read model of another store is emptied and replayed; a record of a newer
    /// epoch than the one the checkpoints count in (the broker lost the topic and the relay
    /// republished it) resets that topic's checkpoints and replays it from its beginning;
    /// records of older epochs or of another store are skipped.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = self.projection.name();
        // Failures are counted from zero at start, so the series exist before the first one.
        metrics::counter!("projector_dead_letters_total", "projection" => name).increment(0);
        metrics::counter!("projector_batch_failures_total", "projection" => name).increment(0);
        let topics = self.projection.topics();
        let mut all_topics = topics.clone();
        all_topics.extend(topics.iter().map(|t| dead_letter_topic(t)));
        self.kafka.ensure_topics(&all_topics).await?;
        let mut producer: FutureProducer = self.kafka.producer()?;
        let mut store_id = self.check_identity(&shutdown).await?;
        let cluster: SharedCluster = Arc::default();
        let known: SharedEpochs = Arc::default();
        let (heal_tx, mut heal_rx) = mpsc::channel(4);
        let _watchers =
            self.spawn_watchers(&topics, &store_id, &known, &cluster, heal_tx, &shutdown);
        'assign: loop {
            // A broker that answers as another cluster holds none of the offsets the
            // checkpoints name: replay every topic from its beginning (rows stay correct, a
            // replayed event is a no-op), and heal by epoch once the relay republishes.
            if let Some(now) = current_cluster(&self.kafka).await {
                self.check_cluster(&now).await?;
                *cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
            }
            // A new dead-letter producer on every (re)assignment: after a broker restart the
            // old one is an idempotent producer the broker no longer knows, and its first
            // dead letter would only time out (30 s) before the batch is retried.
            match self.kafka.producer() {
                Ok(p) => producer = p,
                Err(e) => tracing::warn!(error = %e, "recreating the producer"),
            }
            let mut checkpoints = self.load_checkpoints().await?;
            let mut epochs = self.load_epochs().await?;
            *known.lock().unwrap_or_else(|e| e.into_inner()) = epochs.clone();
            let consumer = match self.assign(&topics, &checkpoints) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "assigning partitions; retrying");
                    self.health.failed(&format!("assigning: {e:#}"));
                    if pause(&shutdown).await {
                        break 'assign;
                    }
                    continue 'assign;
                }
            };
            self.ready.set_ready(true);
            tracing::info!(projection = name, ?topics, "projector consuming");
            let mut stream = consumer.stream();
            // Once a second: replay the streams `dlq replay` released, and export the gauge.
            let mut parked_tick = tokio::time::interval(Duration::from_secs(1));
            parked_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => break 'assign,
                    _ = parked_tick.tick() => {
                        self.tend_parked(&producer).await;
                        continue;
                    }
                    heal = heal_rx.recv() => {
                        if self.heal(heal, &mut store_id, &epochs).await? {
                            continue 'assign;
                        }
                        continue;
                    }
                    m = stream.next() => m,
                };
                let Some(first) = first else { break 'assign };
                let first = match first {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        // The broker is down or restarting: not this projector's failure.
                        // Resume from the checkpoints with a new consumer in a moment.
                        tracing::warn!(projection = name, error = %e, "consumer error; reconnecting");
                        self.health.failed(&format!("consumer: {e}"));
                        drop(stream);
                        drop(consumer);
                        if pause(&shutdown).await {
                            break 'assign;
                        }
                        continue 'assign;
                    }
                };
                let mut batch = vec![first];
                while batch.len() < self.config.batch_size {
                    match tokio::time::timeout(self.config.batch_linger, stream.next()).await {
                        Ok(Some(Ok(m))) => batch.push(m.detach()),
                        _ => break,
                    }
                }
                let sorted = sort_batch(&mut batch, store_id.as_deref(), &mut epochs, &checkpoints);
                if let Some((topic, epoch)) = sorted.newer {
                    self.heal_topic(&topic, epoch, &epochs).await?;
                    continue 'assign;
                }
                for (topic, epoch) in sorted.adopted {
                    let mut conn = self.pool.acquire().await?;
                    save_epoch(&mut conn, name, &topic, epoch).await?;
                    known
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(topic, epoch);
                }
                batch.retain(|m| {
                    let next = checkpoints.get(&(m.topic().to_owned(), m.partition()));
                    next.is_none_or(|n| m.offset() >= *n)
                });
                if batch.is_empty() {
                    continue;
                }
                let Some(committed) = self
                    .apply_with_retry(&batch, &mut producer, &shutdown)
                    .await
                else {
                    break 'assign;
                };
                self.record_commit(batch.len(), committed, &mut checkpoints, &consumer)?;
            }
        }
        tracing::info!(projection = name, "projector stopped");
        Ok(())
    }

    /// The lag and health exporter and the store and epoch watcher, beside the consumer;
    /// they stop when the guards are dropped.
    fn spawn_watchers(
        &self,
        topics: &[String],
        store_id: &Option<String>,
        known: &SharedEpochs,
        cluster: &SharedCluster,
        heal_tx: mpsc::Sender<Heal>,
        shutdown: &CancellationToken,
    ) -> [AbortOnDrop; 2] {
        // Lag and health as Prometheus gauges and the status row, beside the consumer.
        let lag = AbortOnDrop(tokio::spawn(crate::lag::export_metrics(
            self.pool.clone(),
            self.kafka.clone(),
            self.projection.name(),
            topics.to_vec(),
            Duration::from_secs(2),
            self.health.clone(),
            self.ready.clone(),
            crate::lag::RelayWatch {
                store: self.store.clone(),
                cluster: cluster.clone(),
            },
            shutdown.clone(),
        )));
        let watcher = AbortOnDrop(tokio::spawn(watch(
            self.kafka.clone(),
            topics.to_vec(),
            self.store.clone(),
            store_id.clone(),
            known.clone(),
            cluster.clone(),
            heal_tx,
        )));
        [lag, watcher]
    }

    /// Acts on what the watcher found; `true`: assign the partitions again.
    async fn heal(
        &self,
        heal: Option<Heal>,
        store_id: &mut Option<String>,
        epochs: &HashMap<String, i64>,
    ) -> anyhow::Result<bool> {
        let name = self.projection.name();
        match heal {
            Some(Heal::Store(new)) => {
                tracing::warn!(projection = name, store = %new,
                    "the event store changed; emptying the read model and replaying");
                self.health.healing("the event store changed");
                self.reset(None, Some(&new)).await?;
                *store_id = Some(new);
                Ok(true)
            }
            Some(Heal::Epoch(topic, epoch)) => {
                self.heal_topic(&topic, epoch, epochs).await?;
                Ok(true)
            }
            // Checked and recorded when partitions are assigned again.
            Some(Heal::Cluster(new)) => {
                tracing::warn!(projection = name, cluster = %new,
                    "the broker answers as another cluster; assigning again");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Applies a batch, retrying transient failures with capped exponential backoff (a
    /// poison event parks its stream inside the batch, so only transient failures come
    /// back). `None`: shut down while waiting to retry.
    async fn apply_with_retry(
        &self,
        batch: &[OwnedMessage],
        producer: &mut FutureProducer,
        shutdown: &CancellationToken,
    ) -> Option<Checkpoints> {
        let name = self.projection.name();
        let mut attempt: u32 = 0;
        loop {
            match self.apply_batch(batch, producer).await {
                Ok(c) => {
                    if attempt > 0 {
                        metrics::gauge!("projector_batch_retry_attempt", "projection" => name)
                            .set(0.0);
                    }
                    return Some(c);
                }
                Err(e) => {
                    // Still alive and consuming: failures show in the metrics and the
                    // health state (stalled), and a start is not blocked by them.
                    attempt = attempt.saturating_add(1);
                    metrics::counter!("projector_batch_failures_total", "projection" => name)
                        .increment(1);
                    metrics::gauge!("projector_batch_retry_attempt", "projection" => name)
                        .set(f64::from(attempt));
                    self.health.failed(&format!("{e:#}"));
                    // A broker that lost its state forgets the idempotent producer (its
                    // dead letters then time out for ever): a new one each retry.
                    match self.kafka.producer() {
                        Ok(p) => *producer = p,
                        Err(e) => tracing::warn!(error = %e, "recreating the producer"),
                    }
                    let delay = retry_delay(attempt);
                    tracing::warn!(
                        projection = name,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %e,
                        "batch failed (transient); retrying"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// A committed batch: health, metrics, the checkpoints held in memory, and the offsets
    /// committed to Kafka too (they only make restarts and lag tooling cheaper; the
    /// PostgreSQL checkpoint is the truth).
    fn record_commit(
        &self,
        applied: usize,
        committed: Checkpoints,
        checkpoints: &mut Checkpoints,
        consumer: &StreamConsumer,
    ) -> anyhow::Result<()> {
        let name = self.projection.name();
        self.health.committed();
        metrics::counter!("projector_events_total", "projection" => name).increment(applied as u64);
        metrics::histogram!("projector_batch_size", "projection" => name).record(applied as f64);
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
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "offset commit to Kafka failed");
        }
        Ok(())
    }

    /// Records the cluster the checkpoints count in; if they counted in another one, they are
    /// deleted first, so every topic is replayed from its beginning.
    async fn check_cluster(&self, now: &str) -> anyhow::Result<()> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT cluster_id FROM projector_clusters WHERE projection = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if recorded.as_deref() == Some(now) {
            return Ok(());
        }
        if let Some(old) = &recorded {
            tracing::warn!(
                projection = name,
                old_cluster = %old,
                cluster = %now,
                "the broker is another cluster; replaying every topic from its beginning"
            );
            self.health
                .healing(format!("the broker is a new cluster ({now})"));
            metrics::counter!("projector_heals_total").increment(1);
            sqlx::query("DELETE FROM projector_checkpoints WHERE projection = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO projector_clusters (projection, cluster_id, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (projection) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, updated_at = now()",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The broker lost `topic` and the relay republished it in a new epoch: replay it.
    async fn heal_topic(
        &self,
        topic: &str,
        epoch: i64,
        epochs: &HashMap<String, i64>,
    ) -> anyhow::Result<()> {
        let name = self.projection.name();
        tracing::warn!(
            projection = name,
            topic,
            old_epoch = ?epochs.get(topic),
            epoch,
            "the topic was republished in a new epoch; replaying it from its beginning"
        );
        self.health
            .healing(format!("{topic} was republished (epoch {epoch})"));
        self.reset(Some((topic, epoch)), None).await
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
                    traceparent: traceparent_header(m),
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
                .bind(read_model::notify_channel(self.projection.name()))
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
            // Sealed personal fields are opened (erased ones read as null) before applying.
            let decoded = match decoded {
                Ok(mut e) => match event_store::pii::open_installed(&mut e, Reveal::All).await {
                    Ok(()) => Ok(e),
                    Err(PiiError::Unavailable(m)) => return Err(ProjectionError::Transient(m)),
                    Err(PiiError::Corrupt(m)) => Err(m),
                },
                Err(e) => Err(e),
            };
            items.push(match decoded {
                Ok(mut e) => {
                    // The relay's span (and through it the command's) is the event's parent.
                    e.traceparent = r.traceparent.clone().or(e.traceparent);
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
            // The batch's span links the traces of its events (a set-based apply has no
            // span per event; the default one starts each event's span in its own trace).
            let span = tracing::info_span!("apply_batch", projection = name, events = events.len());
            for e in events.iter().take(MAX_LINKS) {
                trace_context::link(&span, e.traceparent.as_deref());
            }
            let applied =
                tracing::Instrument::instrument(self.projection.apply_all(&mut *tx, &events), span)
                    .await;
            match applied {
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
                    trace_context::follow(&span, env.traceparent.as_deref());
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

    fn record(topic: &str, offset: i64, store: &str, epoch: Option<i64>) -> OwnedMessage {
        let mut headers = OwnedHeaders::new().insert(Header {
            key: platform::kafka::STORE_HEADER,
            value: Some(store),
        });
        if let Some(e) = epoch {
            let e = e.to_string();
            headers = headers.insert(Header {
                key: platform::kafka::EPOCH_HEADER,
                value: Some(e.as_str()),
            });
        }
        OwnedMessage::new(
            None,
            None,
            topic.into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            offset,
            Some(headers),
        )
    }

    #[test]
    fn a_batch_keeps_its_store_and_epoch_and_adopts_a_first_epoch() {
        let mut epochs: HashMap<String, i64> = [("a".to_owned(), 5)].into();
        let mut batch = vec![
            record("a", 0, "s1", Some(5)),
            record("a", 1, "s2", Some(5)),
            record("a", 2, "s1", Some(4)),
            record("b", 0, "s1", Some(9)),
        ];
        let sorted = sort_batch(&mut batch, Some("s1"), &mut epochs, &HashMap::new());
        let kept: Vec<(String, i64)> = batch
            .iter()
            .map(|m| (m.topic().to_owned(), m.offset()))
            .collect();
        assert_eq!(
            kept,
            [("a".to_owned(), 0), ("b".to_owned(), 0)],
            "other store and older epoch go"
        );
        assert_eq!(sorted.adopted, [("b".to_owned(), 9)]);
        assert_eq!(sorted.newer, None);
        assert_eq!(epochs.get("b"), Some(&9));
    }

    #[test]
    fn a_newer_epoch_or_checkpoints_of_an_unknown_one_heal_the_topic() {
        let mut epochs: HashMap<String, i64> = [("a".to_owned(), 5)].into();
        let mut batch = vec![record("a", 0, "s1", Some(6))];
        let sorted = sort_batch(&mut batch, Some("s1"), &mut epochs, &HashMap::new());
        assert_eq!(sorted.newer, Some(("a".to_owned(), 6)));
        assert!(batch.is_empty());
        let checkpoints: Checkpoints = [(("c".to_owned(), 0), 10)].into();
        let mut batch = vec![record("c", 10, "s1", Some(1))];
        let sorted = sort_batch(&mut batch, Some("s1"), &mut HashMap::new(), &checkpoints);
        assert_eq!(sorted.newer, Some(("c".to_owned(), 1)));
    }

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
