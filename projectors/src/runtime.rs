//! The projector runtime: consumes a read model's topics in its own consumer group, applies
//! events in batches, and commits the read-model rows and the checkpoint (topic, partition,
//! next offset) in one PostgreSQL transaction. A crash replays into the same result: offsets
//! below the checkpoint are skipped, and each row only moves to its stream's next version.
//!
//! A message that cannot be decoded or applied goes to `<topic>.dlq` with the reason in the
//! `dlq-reason` header, and the projector goes on. A database failure retries the same batch.
//!
//! The read side heals from the store: beside the checkpoints it records the identity of the
//! event store it was built from (`projector_identity`) and the epoch of each topic its
//! checkpoints count in (`projector_topic_epochs`, stamped by the relay on every record).
//! A read model of another store is emptied and replayed at start (or as soon as the store
//! changes); a topic the relay republished in a newer epoch after the broker lost it has its
//! checkpoints reset and is replayed from its beginning (rows stay: applying an event again
//! is a no-op, so reads are never wrong, only behind). Health says `healing` meanwhile.

use crate::lag::ProjectorHealth;
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
}

type SharedEpochs = Arc<Mutex<HashMap<String, i64>>>;

/// Every 3 s: is the store still the one the read side belongs to, and does any topic begin
/// with a newer epoch (the relay republished it after the broker lost it)? Catches a
/// checkpoint past the end of a refilled topic before the refill reaches it.
async fn watch(
    kafka: KafkaArgs,
    topics: Vec<String>,
    store: Option<(String, String)>,
    mut store_id: Option<String>,
    known: SharedEpochs,
    heal: mpsc::Sender<Heal>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let (Some((uri, db)), Some(ours)) = (&store, &store_id) {
            match command_services::event_store::connect_identity(uri, db).await {
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
            store: None,
            health: ProjectorHealth::default(),
        }
    }

    /// Checks the read side against this event store's identity (see [`Self::run`]).
    pub fn with_store(mut self, uri: &str, db: &str) -> Self {
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
        let store_id = command_services::support::retry_startup("event store", shutdown, || {
            command_services::event_store::connect_identity(uri, db)
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
                if let Some(model) = crate::registry::find(name) {
                    let tables: Vec<String> =
                        model.tables.iter().map(|t| format!("public.{t}")).collect();
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
        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", format!("projector.{}", self.projection.name()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .create()?;
        // Partitions are assigned from the checkpoints, not by group membership: the
        // PostgreSQL checkpoint is the position, a restart resumes exactly there at once,
        // and no group rebalance can stall the projection. The group id still names the
        // projection's committed offsets, for lag tooling.
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
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
        Ok(consumer)
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
        let topics = self.projection.topics();
        let mut all_topics = topics.clone();
        all_topics.extend(topics.iter().map(|t| dead_letter_topic(t)));
        self.kafka.ensure_topics(&all_topics).await?;
        let producer: FutureProducer = self.kafka.producer()?;
        let mut store_id = self.check_identity(&shutdown).await?;
        // Lag and health as Prometheus gauges and the status row, beside the consumer.
        let _lag = AbortOnDrop(tokio::spawn(crate::lag::export_metrics(
            self.pool.clone(),
            self.kafka.clone(),
            name,
            topics.clone(),
            Duration::from_secs(2),
            self.health.clone(),
            self.ready.clone(),
            shutdown.clone(),
        )));
        let known: SharedEpochs = Arc::default();
        let (heal_tx, mut heal_rx) = mpsc::channel(4);
        let _watch = AbortOnDrop(tokio::spawn(watch(
            self.kafka.clone(),
            topics.clone(),
            self.store.clone(),
            store_id.clone(),
            known.clone(),
            heal_tx,
        )));
        'assign: loop {
            let mut checkpoints = self.load_checkpoints().await?;
            let mut epochs = self.load_epochs().await?;
            *known.lock().unwrap_or_else(|e| e.into_inner()) = epochs.clone();
            let consumer = match self.assign(&topics, &checkpoints) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "assigning partitions; retrying");
                    self.health.failed(&format!("assigning: {e:#}"));
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'assign,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue 'assign;
                }
            };
            self.ready.set_ready(true);
            tracing::info!(projection = name, ?topics, "projector consuming");
            let mut stream = consumer.stream();
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => break 'assign,
                    heal = heal_rx.recv() => {
                        match heal {
                            Some(Heal::Store(new)) => {
                                tracing::warn!(projection = name, store = %new,
                                    "the event store changed; emptying the read model and replaying");
                                self.health.healing("the event store changed");
                                self.reset(None, Some(&new)).await?;
                                store_id = Some(new);
                                continue 'assign;
                            }
                            Some(Heal::Epoch(topic, epoch)) => {
                                self.heal_topic(&topic, epoch, &epochs).await?;
                                continue 'assign;
                            }
                            None => continue,
                        }
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
                        tokio::select! {
                            _ = shutdown.cancelled() => break 'assign,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
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
                // Which store and epoch each record belongs to (records without the relay's
                // headers, e.g. dead letters replayed by the CLI, count as current).
                let mut newer: Option<(String, i64)> = None;
                let mut adopted: Vec<(String, i64)> = Vec::new();
                batch.retain(|m| {
                    let (store, epoch) = command_services::relay::record_origin(m);
                    if let (Some(ours), Some(theirs)) = (&store_id, &store) {
                        if ours != theirs {
                            return false;
                        }
                    }
                    let Some(epoch) = epoch else { return true };
                    match epochs.get(m.topic()) {
                        Some(k) if epoch == *k => true,
                        Some(k) if epoch < *k => false,
                        Some(_) => {
                            newer.get_or_insert((m.topic().to_owned(), epoch));
                            false
                        }
                        // Checkpoints counted in an epoch not recorded: replay the topic.
                        None if checkpoints.keys().any(|(t, _)| t == m.topic()) => {
                            newer.get_or_insert((m.topic().to_owned(), epoch));
                            false
                        }
                        None => {
                            epochs.insert(m.topic().to_owned(), epoch);
                            adopted.push((m.topic().to_owned(), epoch));
                            true
                        }
                    }
                });
                if let Some((topic, epoch)) = newer {
                    self.heal_topic(&topic, epoch, &epochs).await?;
                    continue 'assign;
                }
                for (topic, epoch) in adopted {
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
                let committed = loop {
                    match self.apply_batch(&batch, &producer).await {
                        Ok(c) => break Some(c),
                        Err(e) => {
                            // Still alive and consuming: failures show in the metrics and the
                            // health state (stalled), and a start is not blocked by them.
                            metrics::counter!("projector_batch_failures_total", "projection" => name)
                                .increment(1);
                            self.health.failed(&format!("{e:#}"));
                            tracing::warn!(projection = name, error = %e, "batch failed; retrying");
                            tokio::select! {
                                _ = shutdown.cancelled() => break None,
                                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            }
                        }
                    }
                };
                let Some(committed) = committed else {
                    break 'assign;
                };
                self.health.committed();
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
        }
        tracing::info!(projection = name, "projector stopped");
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
