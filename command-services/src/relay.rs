//! The relay: publishes every committed event to Kafka, crash-safe, with no dual write on the
//! request path.
//!
//! It tails the `events` collection with a change stream whose resume token is persisted in
//! `relay_state` after every batch, and it keeps a catch-up read over the documents still
//! marked `published: false`: at start-up, after an expired or invalid resume token, and
//! whenever the stream is idle. A batch is marked published only after Kafka acknowledged
//! every record of it (idempotent producer, acks=all, key = stream id), so a kill at any moment
//! at worst publishes some events twice, never loses one; consumers skip versions they have.
//!
//! The store is the truth, and the broker may lose what it was given (the local broker keeps
//! its log in memory; on Kafka a topic may be deleted and recreated, or truncated). Each topic
//! has an *epoch* (`relay_topics` in the store): every record carries it (`relay-epoch`), with
//! the store's identity (`store-id`) and the event id (`event-id`). Per partition the relay
//! remembers two records Kafka acknowledged in the epoch (the first and the latest: offset and
//! event id), and every few seconds a checker fetches them back ([`check_topics`]). A topic
//! that is gone, a probe offset that holds another event or nothing while the partition
//! serves records, a partition that now starts past the first probe, or an offset out of
//! range means the topic lost data: the relay starts a new epoch for it (durably, flagged
//! `healing`) and republishes every stored event of its stream type in stream order before
//! anything newer (a crash during that pass starts it again). Consumers restart the topic from
//! its beginning when they see a newer epoch and ignore records of older ones, so the copy a
//! new epoch starts with is complete. A new epoch always begins with that full republish.
//!
//! A document that does not decode, or an event larger than the broker accepts, parks its
//! stream ([`event_store::parking`]): it and the stream's later events wait, the relay goes on
//! with every other stream.
//!
//! The relay also keeps a *watermark* (`relay_state`, `_id: "watermark"`, read with
//! [`read_watermark`]): the broker cluster its checker last found intact, and a time before
//! which every committed event is on that cluster. It is written only while the checker's
//! latest pass was clean, is reset when a topic is lost, and comes back after the republish.
//! Consumers that act on the absence of an event (the checkout saga's timeouts) and heals
//! that must know the refill is complete read it.

use event_schemas::{cloudevents, topic_for, EventEnvelope};
use event_store::event_store::{from_document, store_identity, EventStore};
use event_store::parking::{park_document, Parking};
use event_store::watermark::WATERMARK_ID;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{self, doc, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::Collection;
use platform::kafka::{event_headers, KafkaArgs, Origin, EVENT_ID_HEADER};
use platform::support::Readiness;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Tuning knobs of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Most events produced per batch.
    pub batch_size: usize,
    /// How long the change stream may stay quiet before a catch-up sweep.
    pub idle_sweep: Duration,
    /// How long a started batch waits for more events: fewer, larger batches mean fewer
    /// `published` marks and token writes per event on the store.
    pub batch_linger: Duration,
    /// How often the resume token is persisted (and always on shutdown). The `published`
    /// flag is the source of truth; the token only spares re-reading after a restart.
    pub token_interval: Duration,
    /// How often the topics are checked for lost data (and the probes saved).
    pub check_interval: Duration,
    /// How long one check waits for the broker to return a probe record.
    pub check_wait: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            idle_sweep: Duration::from_secs(2),
            batch_linger: Duration::from_millis(20),
            token_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(3),
            check_wait: Duration::from_secs(2),
        }
    }
}

pub struct Relay {
    store: EventStore,
    kafka: KafkaArgs,
    producer: FutureProducer,
    state: Collection<Document>,
    config: RelayConfig,
    /// Highest version handed to Kafka per stream during this run, to skip overlap between
    /// the catch-up read and the change stream.
    published: HashMap<String, u64>,
    topics: HashSet<String>,
    /// Streams held behind an event that cannot be published.
    parking: Parking,
    ready: Readiness,
    /// The store's identity, stamped on every record.
    store_id: String,
    /// The epoch of every topic published to (see the module docs).
    epochs: HashMap<String, i64>,
    /// Per partition, records Kafka acknowledged in the current epoch.
    probes: SharedProbes,
    /// Acknowledgements since the probes were last saved.
    probes_dirty: bool,
    topic_state: Collection<Document>,
}

/// Two records Kafka acknowledged on a partition in the current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub first_offset: i64,
    pub first_id: String,
    pub last_offset: i64,
    pub last_id: String,
}

/// (topic, partition) → probe.
pub type Probes = BTreeMap<(String, i32), Probe>;
type SharedProbes = Arc<Mutex<Probes>>;

/// The broker lost these topics' data (or a topic has no epoch yet): start new epochs.
#[derive(Debug, thiserror::Error)]
#[error("the broker lost the data of {0:?}")]
struct BrokerLost(Vec<String>);

/// The stream type a topic carries (`commerce.<type>.events`).
fn stream_type_of(topic: &str) -> Option<&str> {
    topic.strip_prefix("commerce.")?.strip_suffix(".events")
}

type Events = ChangeStream<ChangeStreamEvent<Document>>;

const STATE_ID: &str = "relay";
/// How far behind an event's own time the watermark stays on the streaming path: events
/// commit in about their `occurred_at` order, give or take the store's write latency.
const STREAM_MARGIN: chrono::Duration = chrono::Duration::seconds(2);
/// One document per topic: `{ _id: topic, stream_type, epoch, healing, probes }`.
const TOPICS: &str = "relay_topics";

impl Relay {
    pub fn new(
        store: EventStore,
        kafka: KafkaArgs,
        config: RelayConfig,
        ready: Readiness,
    ) -> anyhow::Result<Self> {
        let topic_state = store.database().collection(TOPICS);
        Ok(Self {
            state: store.database().collection("relay_state"),
            parking: Parking::new(store.database()),
            producer: kafka.producer()?,
            store,
            kafka,
            config,
            published: HashMap::new(),
            topics: HashSet::new(),
            ready,
            store_id: String::new(),
            epochs: HashMap::new(),
            probes: Arc::default(),
            probes_dirty: false,
            topic_state,
        })
    }

    /// Runs until the token is cancelled, reconnecting after any failure.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            match self.run_once(&shutdown).await {
                Ok(()) => break,
                Err(e) if e.downcast_ref::<BrokerLost>().is_some() => {
                    let topics = e.downcast::<BrokerLost>().map(|l| l.0).unwrap_or_default();
                    if let Err(e) = self.begin_epochs(&topics).await {
                        tracing::warn!(error = %e, "starting new epochs; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!("relay_interruptions_total").increment(1);
                    self.ready.set_ready(false);
                    self.ready.set_state("stalled", format!("{e:#}"));
                    tracing::warn!(error = %e, "relay interrupted; resuming");
                    // After a produce failure, a fresh idempotent producer: one whose broker
                    // lost its state (it forgot the producer id and sequences) fails or
                    // times out for ever. Store failures keep the producer.
                    if e.downcast_ref::<ProduceFailed>().is_some() {
                        match self.kafka.producer() {
                            Ok(p) => self.producer = p,
                            Err(e) => tracing::warn!(error = %e, "recreating the producer"),
                        }
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        tracing::info!("relay stopped");
        Ok(())
    }

    async fn run_once(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        if self.store_id.is_empty() {
            self.store_id = store_identity(self.store.database()).await?;
        }
        let healing = self.load_topics().await?;
        let stream = self.open_stream().await?;
        // The change stream is read by its own task: a pending getMore must never be
        // interrupted, and the token is read right after each event is taken.
        let (tx, mut rx) = mpsc::channel(self.config.batch_size * 2);
        let reader = AbortOnDrop(tokio::spawn(read_stream(
            stream,
            tx,
            self.parking.collection(),
        )));
        // The checker fetches the probes back in the background and reports lost topics.
        let (lost_tx, mut lost_rx) = mpsc::channel(4);
        let (verified_tx, verified) = tokio::sync::watch::channel(None);
        let _checker = AbortOnDrop(tokio::spawn(check_loop(
            self.kafka.clone(),
            self.probes.clone(),
            self.config.check_interval,
            self.config.check_wait,
            lost_tx,
            verified_tx,
        )));
        if healing.is_empty() {
            self.ready.set_state("ok", "");
        } else {
            metrics::gauge!("relay_healing").set(1.0);
            self.ready
                .set_state("healing", format!("republishing {}", healing.join(", ")));
        }
        self.ready.set_ready(true);
        // A healed topic is whole again before anything newer is published to it.
        for topic in &healing {
            self.republish(topic).await?;
        }
        let mut mark = Mark::new(chrono::Utc::now());
        self.catch_up().await?;
        if !healing.is_empty() {
            metrics::gauge!("relay_healing").set(0.0);
        }
        self.ready.set_state("ok", "");
        let mut token = None;
        let mut token_saved = Instant::now();
        let mut probes_saved = Instant::now();
        loop {
            if probes_saved.elapsed() >= self.config.check_interval {
                self.save_probes().await?;
                probes_saved = Instant::now();
            }
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.save_token(token).await?;
                    self.save_probes().await?;
                    return Ok(());
                }
                lost = lost_rx.recv() => {
                    let lost = lost.unwrap_or_default();
                    self.save_token(token.take()).await?;
                    return Err(BrokerLost(lost).into());
                }
                n = tokio::time::timeout(self.config.idle_sweep, rx.recv()) => n,
            };
            match next {
                Err(_idle) => {
                    let swept_from = chrono::Utc::now();
                    self.catch_up().await?;
                    self.save_token(token.take()).await?;
                    token_saved = Instant::now();
                    mark.advance(swept_from);
                }
                Ok(None) => anyhow::bail!("change stream reader stopped"),
                Ok(Some(first)) => {
                    let (event, t) = first?;
                    let mut batch = vec![event];
                    token = t;
                    let linger = tokio::time::sleep(self.config.batch_linger);
                    tokio::pin!(linger);
                    while batch.len() < self.config.batch_size {
                        let item = tokio::select! {
                            _ = &mut linger => break,
                            item = rx.recv() => item,
                        };
                        let Some(item) = item else { break };
                        let (event, t) = item?;
                        batch.push(event);
                        token = t;
                    }
                    let newest = batch.iter().map(|e| e.occurred_at).max();
                    self.publish(batch).await?;
                    if let Some(newest) = newest {
                        mark.advance((newest - STREAM_MARGIN).min(chrono::Utc::now()));
                    }
                    if token_saved.elapsed() >= self.config.token_interval {
                        self.save_token(token.take()).await?;
                        token_saved = Instant::now();
                    }
                }
            }
            let cluster = verified.borrow().clone();
            if let Some(cluster) = cluster {
                self.save_mark(&mut mark, &cluster).await?;
            }
            if reader.0.is_finished() && rx.is_empty() {
                anyhow::bail!("change stream reader stopped");
            }
        }
    }

    /// Writes the watermark (at most once a second, and only when it moved or the cluster
    /// changed): every event committed before `mark.through` is on `cluster`.
    async fn save_mark(&self, mark: &mut Mark, cluster: &str) -> anyhow::Result<()> {
        let moved = mark.saved.as_ref().is_none_or(|(c, t, at)| {
            c != cluster || (*t != mark.through && at.elapsed() >= Duration::from_secs(1))
        });
        if !moved {
            return Ok(());
        }
        self.state
            .update_one(
                doc! { "_id": WATERMARK_ID },
                doc! { "$set": {
                    "cluster": cluster,
                    "through": bson::DateTime::from_millis(mark.through.timestamp_millis()),
                    "updated_at": bson::DateTime::now(),
                } },
            )
            .upsert(true)
            .await?;
        mark.saved = Some((cluster.to_owned(), mark.through, Instant::now()));
        Ok(())
    }

    /// Opens the change stream from the persisted resume token; if the server refuses the
    /// token (expired history, new store), opens it from now: the catch-up read covers the gap.
    async fn open_stream(&self) -> anyhow::Result<Events> {
        let token: Option<ResumeToken> = self
            .state
            .find_one(doc! { "_id": STATE_ID })
            .await?
            .and_then(|d| d.get("resume_token").cloned())
            .and_then(|b| bson::from_bson(b).ok());
        let pipeline = [doc! { "$match": { "operationType": "insert" } }];
        if let Some(token) = token {
            match self
                .store
                .events()
                .watch()
                .pipeline(pipeline.clone())
                .resume_after(token)
                .await
            {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(error = %e, "resume token refused; catching up from the store")
                }
            }
        }
        Ok(self.store.events().watch().pipeline(pipeline).await?)
    }

    async fn save_token(&self, token: Option<ResumeToken>) -> anyhow::Result<()> {
        if let Some(token) = token {
            self.state
                .update_one(
                    doc! { "_id": STATE_ID },
                    doc! { "$set": { "resume_token": bson::to_bson(&token)? } },
                )
                .upsert(true)
                .await?;
        }
        Ok(())
    }

    /// Loads every topic's epoch and probes; finishes the heals a crash interrupted (events
    /// not yet marked unpublished again). Returns the topics being healed.
    async fn load_topics(&mut self) -> anyhow::Result<Vec<String>> {
        let docs: Vec<Document> = self.topic_state.find(doc! {}).await?.try_collect().await?;
        let mut healing = Vec::new();
        let mut probes = Probes::new();
        self.epochs.clear();
        for d in docs {
            let Ok(topic) = d.get_str("_id").map(str::to_owned) else {
                continue;
            };
            let epoch = d.get_i64("epoch").unwrap_or(0);
            self.epochs.insert(topic.clone(), epoch);
            if d.get_bool("healing").unwrap_or(false) {
                healing.push(topic.clone());
            }
            for p in d.get_array("probes").into_iter().flatten() {
                let Some(p) = p.as_document() else { continue };
                let (Ok(partition), Ok(fo), Ok(fi), Ok(lo), Ok(li)) = (
                    p.get_i32("partition"),
                    p.get_i64("first_offset"),
                    p.get_str("first_id"),
                    p.get_i64("last_offset"),
                    p.get_str("last_id"),
                ) else {
                    continue;
                };
                probes.insert(
                    (topic.clone(), partition),
                    Probe {
                        first_offset: fo,
                        first_id: fi.to_owned(),
                        last_offset: lo,
                        last_id: li.to_owned(),
                    },
                );
            }
        }
        if !healing.is_empty() {
            // Everything is published again; the skip map must not hide any of it.
            self.published.clear();
        }
        *self.probes.lock().unwrap_or_else(|e| e.into_inner()) = probes;
        Ok(healing)
    }

    /// Publishes every stored event of the topic's stream type again, in stream order, then
    /// clears the topic's `healing` flag. A crash in between starts the pass again (records
    /// twice are harmless); no event document is written but the `published` marks.
    async fn republish(&mut self, topic: &str) -> anyhow::Result<()> {
        let Some(stream_type) = stream_type_of(topic).map(str::to_owned) else {
            return Ok(());
        };
        tracing::warn!(%topic, "republishing the topic from the store");
        let mut cursor = self
            .store
            .events()
            .find(doc! { "stream_type": &stream_type })
            .sort(doc! { "stream_id": 1, "version": 1 })
            .await?;
        let (mut batch, mut total) = (Vec::new(), 0usize);
        while let Some(d) = cursor.try_next().await? {
            match from_document(d) {
                Ok(env) => batch.push(env),
                Err(e) => {
                    tracing::error!(error = %e, %topic, "an undecodable event is not republished")
                }
            }
            if batch.len() >= self.config.batch_size {
                total += batch.len();
                self.publish(std::mem::take(&mut batch)).await?;
                metrics::gauge!("relay_republished_events", "topic" => topic.to_owned())
                    .set(total as f64);
            }
        }
        total += batch.len();
        self.publish(batch).await?;
        metrics::gauge!("relay_republished_events", "topic" => topic.to_owned()).set(total as f64);
        self.topic_state
            .update_one(doc! { "_id": topic }, doc! { "$set": { "healing": false } })
            .await?;
        tracing::info!(%topic, events = total, "republished from the store; healed");
        Ok(())
    }

    /// A topic published to for the first time gets its first epoch. In a store whose events
    /// of that type were published before epochs existed, they are all published again.
    async fn ensure_epoch(&mut self, topic: &str) -> anyhow::Result<()> {
        if self.epochs.contains_key(topic) {
            return Ok(());
        }
        let published = match stream_type_of(topic) {
            Some(t) => {
                self.store
                    .events()
                    .count_documents(doc! { "stream_type": t, "published": true })
                    .limit(1)
                    .await?
            }
            None => 0,
        };
        if published > 0 {
            return Err(BrokerLost(vec![topic.to_owned()]).into());
        }
        let epoch = chrono::Utc::now().timestamp_millis();
        self.topic_state
            .update_one(
                doc! { "_id": topic },
                doc! { "$setOnInsert": { "epoch": epoch, "healing": false, "probes": [] } },
            )
            .upsert(true)
            .await?;
        let stored = self
            .topic_state
            .find_one(doc! { "_id": topic })
            .await?
            .and_then(|d| d.get_i64("epoch").ok())
            .unwrap_or(epoch);
        self.epochs.insert(topic.to_owned(), stored);
        Ok(())
    }

    /// Starts a new epoch for each lost topic, durably flagged `healing` (the next run marks
    /// its events unpublished and republishes them), and forgets what this run published.
    async fn begin_epochs(&mut self, topics: &[String]) -> anyhow::Result<()> {
        for topic in topics {
            let old = self.epochs.get(topic).copied().unwrap_or(0);
            let epoch = chrono::Utc::now().timestamp_millis().max(old + 1);
            tracing::warn!(%topic, old_epoch = old, epoch, "the broker lost the topic's data; healing from the store");
            metrics::counter!("relay_heals_total", "topic" => topic.clone()).increment(1);
            self.topic_state
                .update_one(
                    doc! { "_id": topic },
                    doc! { "$set": { "epoch": epoch, "healing": true, "probes": [],
                    "healed_at": bson::DateTime::now() } },
                )
                .upsert(true)
                .await?;
            self.epochs.insert(topic.clone(), epoch);
            self.probes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(t, _), _| t != topic);
            self.topics.remove(topic);
        }
        self.published.clear();
        // What the broker lost is no longer on it: no time is covered until the republish.
        self.state
            .update_one(
                doc! { "_id": WATERMARK_ID },
                doc! { "$set": { "cluster": "", "through": bson::DateTime::from_millis(0),
                "updated_at": bson::DateTime::now() } },
            )
            .upsert(true)
            .await?;
        self.ready
            .set_state("healing", format!("lost: {}", topics.join(", ")));
        // The broker that lost its data forgot the idempotent producer's id too.
        match self.kafka.producer() {
            Ok(p) => self.producer = p,
            Err(e) => tracing::warn!(error = %e, "recreating the producer"),
        }
        Ok(())
    }

    /// Kafka acknowledged `event_id` at `offset`: the partition's latest probe.
    fn acknowledged(&mut self, topic: String, partition: i32, offset: i64, event_id: String) {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes
            .entry((topic, partition))
            .and_modify(|p| {
                if offset > p.last_offset {
                    p.last_offset = offset;
                    p.last_id.clone_from(&event_id);
                }
            })
            .or_insert_with(|| Probe {
                first_offset: offset,
                first_id: event_id.clone(),
                last_offset: offset,
                last_id: event_id,
            });
        self.probes_dirty = true;
    }

    /// Saves the probes (when they moved), so a restarted relay checks the same records.
    async fn save_probes(&mut self) -> anyhow::Result<()> {
        if !self.probes_dirty {
            return Ok(());
        }
        let mut by_topic: BTreeMap<String, Vec<Document>> = BTreeMap::new();
        for ((t, p), probe) in self.probes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            by_topic.entry(t.clone()).or_default().push(doc! {
                "partition": *p,
                "first_offset": probe.first_offset,
                "first_id": &probe.first_id,
                "last_offset": probe.last_offset,
                "last_id": &probe.last_id,
            });
        }
        for (topic, probes) in by_topic {
            // Only within the epoch the probes belong to.
            let epoch = self.epochs.get(&topic).copied().unwrap_or(0);
            self.topic_state
                .update_one(
                    doc! { "_id": &topic, "epoch": epoch },
                    doc! { "$set": { "probes": probes } },
                )
                .await?;
        }
        self.probes_dirty = false;
        Ok(())
    }

    /// Publishes everything still marked unpublished, in stream order.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let batch = self
                .parking
                .unpublished(&self.store, self.config.batch_size as i64)
                .await?;
            let n = batch.len();
            metrics::gauge!("relay_catch_up_backlog").set(n as f64);
            if n > 0 {
                tracing::info!(events = n, "catch-up: publishing unpublished events");
            }
            self.publish(batch).await?;
            if n < self.config.batch_size {
                return Ok(());
            }
        }
    }

    /// Produces a batch, waits for every acknowledgement, then marks it published.
    async fn publish(&mut self, batch: Vec<EventEnvelope>) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for env in &batch {
            let topic = topic_for(&env.stream_type);
            if !self.topics.contains(&topic) {
                self.ensure_epoch(&topic).await?;
                self.kafka
                    .ensure_topics(std::slice::from_ref(&topic))
                    .await?;
                self.topics.insert(topic);
            }
        }
        // Indexes of events that stay unpublished: their stream is parked.
        let mut held: HashSet<usize> = HashSet::new();
        let mut deliveries = Vec::with_capacity(batch.len());
        for (i, env) in batch.iter().enumerate() {
            if self.parking.holds(&env.stream_id) {
                held.insert(i);
                continue;
            }
            if self
                .published
                .get(&env.stream_id)
                .is_some_and(|v| *v >= env.version)
            {
                continue;
            }
            let topic = topic_for(&env.stream_type);
            let payload = cloudevents::encode(env);
            let event_id = env.event_id.to_string();
            let epoch = self.epochs.get(&topic).copied().unwrap_or(0).to_string();
            // The command's trace goes on to the consumers (W3C `traceparent` header).
            let traceparent = platform::trace_context::publish_span(
                env.traceparent.as_deref(),
                &topic,
                &env.stream_id,
            );
            let headers = event_headers(
                cloudevents::CONTENT_TYPE,
                &env.correlation_id,
                Some(Origin {
                    event_id: &event_id,
                    store_id: &self.store_id,
                    epoch: &epoch,
                }),
                traceparent.as_deref(),
            );
            let record = FutureRecord::to(&topic)
                .key(env.stream_id.as_str())
                .payload(&payload)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((i, topic.clone(), event_id.clone(), delivery)),
                // The producer refuses it before sending (message.max.bytes): park it; the
                // stream's later events in this batch are held by the check above.
                Err((e, _)) if too_large(&e) => {
                    self.park_event(env, &format!("larger than the broker accepts: {e}"))
                        .await?;
                    held.insert(i);
                }
                Err((e, _)) => {
                    return Err(ProduceFailed(format!("enqueueing to Kafka: {e}")).into())
                }
            }
        }
        // (stream, version) refused by the broker: that version and later ones stay unpublished.
        let mut refused: HashMap<String, u64> = HashMap::new();
        for (i, topic, event_id, d) in deliveries {
            match d.await {
                Ok(Ok(d)) => self.acknowledged(topic, d.partition, d.offset, event_id),
                Ok(Err((e, _))) if too_large(&e) => {
                    let env = &batch[i];
                    self.park_event(env, &format!("the broker refused it as too large: {e}"))
                        .await?;
                    let v = refused.entry(env.stream_id.clone()).or_insert(env.version);
                    *v = (*v).min(env.version);
                }
                Ok(Err((e, _))) => {
                    return Err(ProduceFailed(format!("Kafka refused a record: {e}")).into())
                }
                Err(_) => {
                    return Err(ProduceFailed("Kafka producer dropped a record".into()).into())
                }
            }
        }
        for (i, env) in batch.iter().enumerate() {
            if refused
                .get(&env.stream_id)
                .is_some_and(|v| env.version >= *v)
            {
                held.insert(i);
            }
        }
        let batch: Vec<EventEnvelope> = batch
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !held.contains(i))
            .map(|(_, e)| e)
            .collect();
        metrics::counter!("relay_events_published_total").increment(batch.len() as u64);
        metrics::histogram!("relay_batch_size").record(batch.len() as f64);
        let ids: Vec<String> = batch.iter().map(|e| e.event_id.to_string()).collect();
        self.store.mark_published(&ids).await?;
        if self.published.len() > 100_000 {
            self.published.clear();
        }
        for env in batch {
            let v = self.published.entry(env.stream_id).or_default();
            *v = (*v).max(env.version);
        }
        Ok(())
    }

    /// Parks `env`'s stream: it cannot be published as it is.
    async fn park_event(&mut self, env: &EventEnvelope, reason: &str) -> anyhow::Result<()> {
        let doc = event_store::event_store::to_document(env)?;
        self.parking.park(&doc, reason).await?;
        Ok(())
    }
}

/// Whether Kafka refused a record for its size: no retry can help.
fn too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

fn header_str<'a, M: Message>(m: &'a M, key: &str) -> Option<&'a str> {
    let h = m.headers()?;
    (0..h.count())
        .map(|i| h.get(i))
        .find(|x| x.key == key)
        .and_then(|x| x.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// What a check found for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every probe record is where Kafka acknowledged it.
    Intact,
    /// The topic lost records.
    Lost,
    /// The broker returned nothing at all in time: a slow broker, or an empty partition.
    Undecided,
}

/// Fetches the probe records back (blocking; `spawn_blocking` it) and judges each topic.
/// Errs when the broker cannot be asked at all (that is no loss).
pub fn check_topics(
    kafka: &KafkaArgs,
    probes: &Probes,
    wait: Duration,
) -> anyhow::Result<BTreeMap<String, Verdict>> {
    let mut out: BTreeMap<String, Verdict> = BTreeMap::new();
    if probes.is_empty() {
        return Ok(out);
    }
    let consumer = kafka
        .consumer("commerce-relay-probe")
        .offset_reset("error")
        .no_topic_creation()
        .base()?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(5))?;
    let present: HashMap<String, usize> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    drop(md);
    let mut live = Probes::new();
    for ((t, p), probe) in probes {
        match present.get(t) {
            Some(n) if (*p as usize) < *n => {
                live.insert((t.clone(), *p), probe.clone());
                out.entry(t.clone()).or_insert(Verdict::Intact);
            }
            _ => {
                out.insert(t.clone(), Verdict::Lost);
            }
        }
    }
    if live.is_empty() {
        return Ok(out);
    }
    // Round 1: where each partition starts now. Round 2: the latest probe record.
    let first = fetch_first(&consumer, &live, |_| Offset::Beginning, wait)?;
    let last = fetch_first(&consumer, &live, |p| Offset::Offset(p.last_offset), wait)?;
    for (key, probe) in &live {
        let verdict = match (first.get(key), last.get(key)) {
            (_, Some(Fetched::OutOfRange)) | (Some(Fetched::OutOfRange), _) => Verdict::Lost,
            (Some(Fetched::Record(o, _)), _) if *o > probe.first_offset => Verdict::Lost,
            (Some(Fetched::Record(o, id)), _)
                if *o == probe.first_offset && id.as_deref() != Some(&probe.first_id) =>
            {
                Verdict::Lost
            }
            (_, Some(Fetched::Record(o, id))) => {
                if *o == probe.last_offset && id.as_deref() == Some(&probe.last_id) {
                    Verdict::Intact
                } else {
                    Verdict::Lost
                }
            }
            // The partition serves records, but none at an offset Kafka acknowledged.
            (Some(Fetched::Record(..)), None) => Verdict::Lost,
            (None, None) => Verdict::Undecided,
        };
        let e = out.entry(key.0.clone()).or_insert(Verdict::Intact);
        *e = match (*e, verdict) {
            (Verdict::Lost, _) | (_, Verdict::Lost) => Verdict::Lost,
            (Verdict::Undecided, _) | (_, Verdict::Undecided) => Verdict::Undecided,
            _ => Verdict::Intact,
        };
    }
    Ok(out)
}

enum Fetched {
    /// The first record returned: its offset and `event-id` header.
    Record(i64, Option<String>),
    /// The broker says the offset is out of range.
    OutOfRange,
}

/// Assigns every probed partition at `at(probe)` and returns the first thing each returned
/// within `wait`.
fn fetch_first(
    consumer: &BaseConsumer,
    probes: &Probes,
    at: impl Fn(&Probe) -> Offset,
    wait: Duration,
) -> anyhow::Result<HashMap<(String, i32), Fetched>> {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), probe) in probes {
        tpl.add_partition_offset(t, *p, at(probe))?;
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    let mut got: HashMap<(String, i32), Fetched> = HashMap::new();
    let deadline = Instant::now() + wait;
    while got.len() < probes.len() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                let key = (m.topic().to_owned(), m.partition());
                got.entry(key).or_insert_with(|| {
                    Fetched::Record(
                        m.offset(),
                        header_str(&m, EVENT_ID_HEADER).map(str::to_owned),
                    )
                });
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
            ))) => {
                // The error names no partition: every one still waiting is out of range.
                for key in probes.keys() {
                    got.entry(key.clone()).or_insert(Fetched::OutOfRange);
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "probe fetch"),
        }
    }
    consumer.unassign()?;
    Ok(got)
}

/// Checks the topics every `every` and reports the lost ones. A topic the broker answers
/// nothing for two checks in a row (or in a check that found another topic lost) counts as
/// lost too (an empty partition where Kafka had
/// acknowledged records: the local broker answers a fetch past the end with nothing).
async fn check_loop(
    kafka: KafkaArgs,
    probes: SharedProbes,
    every: Duration,
    wait: Duration,
    lost: mpsc::Sender<Vec<String>>,
    verified: tokio::sync::watch::Sender<Option<String>>,
) {
    let mut undecided: HashMap<String, u32> = HashMap::new();
    loop {
        let snapshot = probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let k = kafka.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let cluster = k.cluster_id();
            check_topics(&k, &snapshot, wait).map(|v| (v, cluster))
        })
        .await;
        match checked {
            Ok(Ok((verdicts, cluster))) => {
                let mut gone = Vec::new();
                let mut silent = Vec::new();
                for (topic, v) in verdicts {
                    match v {
                        Verdict::Lost => gone.push(topic),
                        Verdict::Undecided => {
                            let n = undecided.entry(topic.clone()).or_default();
                            *n += 1;
                            if *n >= 2 {
                                gone.push(topic);
                            } else {
                                silent.push(topic);
                            }
                        }
                        Verdict::Intact => {
                            undecided.remove(&topic);
                        }
                    }
                }
                // Every probe answered as published: this cluster holds what the relay gave it.
                let intact = gone.is_empty() && silent.is_empty();
                verified.send_replace(if intact { cluster } else { None });
                // A broker that lost one topic (restarted empty) most likely lost every
                // topic that answers nothing too.
                if !gone.is_empty() {
                    gone.extend(silent);
                    let _ = lost.send(gone).await;
                    return;
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "topic check failed"),
            Err(e) => tracing::debug!(error = %e, "topic check panicked"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The watermark in memory: how far it reached, and what was last written.
struct Mark {
    through: chrono::DateTime<chrono::Utc>,
    saved: Option<(String, chrono::DateTime<chrono::Utc>, Instant)>,
}

impl Mark {
    fn new(through: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            through,
            saved: None,
        }
    }
    fn advance(&mut self, to: chrono::DateTime<chrono::Utc>) {
        self.through = self.through.max(to);
    }
}

/// Kafka did not take a record: the relay starts a new producer before resuming.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ProduceFailed(String);

type Item = anyhow::Result<(EventEnvelope, Option<ResumeToken>)>;

/// Forwards inserted events with the resume token after each, until the receiver goes away.
/// A document that does not decode parks its stream (in `parked`), and the stream's later
/// events are not forwarded: they stay unpublished, behind it.
async fn read_stream(mut stream: Events, tx: mpsc::Sender<Item>, parked: Collection<Document>) {
    let mut held: HashSet<String> = HashSet::new();
    while let Some(next) = stream.next().await {
        let item = match next {
            Ok(ChangeStreamEvent {
                full_document: Some(doc),
                ..
            }) => {
                if doc.get_str("stream_id").is_ok_and(|s| held.contains(s)) {
                    continue;
                }
                match from_document(doc.clone()) {
                    Ok(e) => Ok((e, stream.resume_token())),
                    Err(e) => match park_document(&parked, &doc, &e.to_string()).await {
                        Ok(stream_id) => {
                            held.extend(stream_id);
                            continue;
                        }
                        Err(e) => Err(e.into()),
                    },
                }
            }
            Ok(_) => continue,
            Err(e) => Err(e.into()),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
