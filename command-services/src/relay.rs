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
//! A document that does not decode, or an event larger than the broker accepts, parks its
//! stream ([`crate::relay_parking`]): it and the stream's later events wait, the relay goes on
//! with every other stream.

use crate::event_store::{from_document, EventStore};
use crate::kafka::KafkaArgs;
use crate::relay_parking::{park_document, Parking};
use crate::support::Readiness;
use event_schemas::{cloudevents, topic_for, EventEnvelope};
use futures::StreamExt;
use mongodb::bson::{self, doc, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::Collection;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{HashMap, HashSet};
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
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            idle_sweep: Duration::from_secs(2),
            batch_linger: Duration::from_millis(20),
            token_interval: Duration::from_secs(1),
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
}

type Events = ChangeStream<ChangeStreamEvent<Document>>;

const STATE_ID: &str = "relay";

impl Relay {
    pub fn new(
        store: EventStore,
        kafka: KafkaArgs,
        config: RelayConfig,
        ready: Readiness,
    ) -> anyhow::Result<Self> {
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
        })
    }

    /// Runs until the token is cancelled, reconnecting after any failure.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            match self.run_once(&shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!("relay_interruptions_total").increment(1);
                    self.ready.set_ready(false);
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
        let stream = self.open_stream().await?;
        // The change stream is read by its own task: a pending getMore must never be
        // interrupted, and the token is read right after each event is taken.
        let (tx, mut rx) = mpsc::channel(self.config.batch_size * 2);
        let reader = AbortOnDrop(tokio::spawn(read_stream(
            stream,
            tx,
            self.parking.collection(),
        )));
        self.catch_up().await?;
        self.ready.set_ready(true);
        let mut token = None;
        let mut token_saved = Instant::now();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.save_token(token).await?;
                    return Ok(());
                }
                n = tokio::time::timeout(self.config.idle_sweep, rx.recv()) => n,
            };
            match next {
                Err(_idle) => {
                    self.catch_up().await?;
                    self.save_token(token.take()).await?;
                    token_saved = Instant::now();
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
                    self.publish(batch).await?;
                    if token_saved.elapsed() >= self.config.token_interval {
                        self.save_token(token.take()).await?;
                        token_saved = Instant::now();
                    }
                }
            }
            if reader.0.is_finished() && rx.is_empty() {
                anyhow::bail!("change stream reader stopped");
            }
        }
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
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "content-type",
                    value: Some(cloudevents::CONTENT_TYPE),
                })
                .insert(Header {
                    key: "correlation-id",
                    value: Some(env.correlation_id.as_str()),
                });
            let record = FutureRecord::to(&topic)
                .key(env.stream_id.as_str())
                .payload(&payload)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((i, delivery)),
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
        for (i, d) in deliveries {
            match d.await {
                Ok(Ok(_)) => {}
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
        let doc = crate::event_store::to_document(env)?;
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
