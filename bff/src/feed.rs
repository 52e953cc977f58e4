//! The subscription feed: one Kafka consumer per BFF reads the order and cart topics from
//! their ends (assigned, no group) and fans events out on a broadcast channel, which every
//! subscription (see `resources::subscriptions`) follows.

use event_schemas::{cloudevents, topic_for, EventEnvelope};
use futures::StreamExt;
use rdkafka::consumer::StreamConsumer;
use rdkafka::{Message, Offset};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events as they arrive from Kafka, for every subscription of this BFF.
#[derive(Clone)]
pub struct LiveEvents {
    tx: broadcast::Sender<Arc<EventEnvelope>>,
}

impl LiveEvents {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventEnvelope>> {
        self.tx.subscribe()
    }

    /// Feeds the channel from the ends of the order and cart topics until shutdown; the
    /// consumer is re-created after an error, with a pause.
    pub async fn run(self, kafka: platform::kafka::KafkaArgs, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.consume(&kafka, &shutdown).await {
                tracing::warn!(error = %e, "subscription feed from Kafka failed; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn consume(
        &self,
        kafka: &platform::kafka::KafkaArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let topics = [topic_for("order"), topic_for("cart")];
        kafka.ensure_topics(&topics).await?;
        let consumer: StreamConsumer = kafka
            .consumer("bff.subscriptions")
            .no_partition_eof()
            .stream()?;
        platform::kafka::assign_all(&consumer, &topics, |_, _| Offset::End)?;
        tracing::info!(?topics, "subscription feed consuming");
        let mut stream = consumer.stream();
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = stream.next() => m,
            };
            let Some(message) = message else {
                return Ok(());
            };
            let message = message?;
            match message.payload().map(cloudevents::decode) {
                Some(Ok(env)) => {
                    metrics::counter!("bff_live_events_total", "stream_type" => env.stream_type.clone())
                        .increment(1);
                    // No subscriber is fine: the event is simply not wanted.
                    let _ = self.tx.send(Arc::new(env));
                }
                _ => tracing::debug!(offset = message.offset(), "undecodable record skipped"),
            }
        }
    }
}

impl Default for LiveEvents {
    fn default() -> Self {
        Self::new()
    }
}

/// The next event of one stream above `after`, or `None` when the feed closed. A lagging
/// receiver reports `Lagged` so the caller can resynchronise from the read model.
pub async fn next_event(
    rx: &mut broadcast::Receiver<Arc<EventEnvelope>>,
    stream_type: &str,
    stream_id: &str,
    after: u64,
) -> Option<Result<Arc<EventEnvelope>, Lagged>> {
    loop {
        match rx.recv().await {
            Ok(env) => {
                if env.stream_type == stream_type && env.stream_id == stream_id {
                    if env.version > after {
                        return Some(Ok(env));
                    }
                    metrics::counter!("bff_live_stale_events_total").increment(1);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => return Some(Err(Lagged)),
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// The receiver fell behind: events were missed.
pub struct Lagged;

/// The version of [`next_event`]'s event.
pub fn version_of(e: Option<Result<Arc<EventEnvelope>, Lagged>>) -> Option<Result<u64, Lagged>> {
    e.map(|r| r.map(|env| env.version))
}
