//! Kafka plumbing shared by the relay, the projectors, the BFF's feed and the tools: client
//! configuration, the consumer builder every consumer is made with, assigning every
//! partition of some topics, the idempotent producer, topic creation (event topics keep
//! history forever), and the headers the relay puts on every record.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers as _, Message};
use rdkafka::producer::FutureProducer;
use std::time::Duration;

/// Where the brokers are and how new topics are laid out.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Comma-separated bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Partitions of a topic this service creates.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 3)]
    pub kafka_partitions: i32,
    /// Replication factor of a topic this service creates (3 on a real cluster).
    #[arg(long, env = "KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,
}

impl KafkaArgs {
    /// These brokers, with the default topic layout (3 partitions, replication 1).
    pub fn brokers(kafka_brokers: impl Into<String>) -> Self {
        Self {
            kafka_brokers: kafka_brokers.into(),
            kafka_partitions: 3,
            kafka_replication: 1,
        }
    }

    /// What every client shares: the bootstrap brokers.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka_brokers);
        c
    }

    /// A consumer in `group` that never commits on its own (every consumer here assigns
    /// its partitions and positions itself). What differs between consumers is set on the
    /// builder.
    pub fn consumer(&self, group: impl Into<String>) -> ConsumerBuilder {
        let mut config = self.client_config();
        config
            .set("group.id", group.into())
            .set("enable.auto.commit", "false");
        ConsumerBuilder { config }
    }

    /// A consumer without a group, for metadata only (partitions, the cluster id).
    pub fn metadata_consumer(&self) -> anyhow::Result<BaseConsumer> {
        Ok(self.client_config().create()?)
    }

    /// The id of the Kafka cluster the broker belongs to (blocking; `spawn_blocking` it).
    pub fn cluster_id(&self) -> Option<String> {
        let consumer = self.metadata_consumer().ok()?;
        consumer.client().fetch_cluster_id(Duration::from_secs(5))
    }

    /// An idempotent producer (acks=all, ordered per partition across retries).
    pub fn producer(&self) -> anyhow::Result<FutureProducer> {
        Ok(self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?)
    }

    /// Creates the topics that do not exist yet; event topics keep every record forever.
    pub async fn ensure_topics(&self, topics: &[String]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.kafka_partitions,
                    TopicReplication::Fixed(self.kafka_replication),
                )
                .set("retention.ms", "-1")
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &opts).await? {
            match result {
                Ok(t) => tracing::info!(topic = %t, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => anyhow::bail!("creating topic {t}: {code}"),
            }
        }
        Ok(())
    }
}

/// Assigns every partition of `topics` to `consumer`, each at the offset `start` names for
/// it; a topic without partitions (not there) is an error.
pub fn assign_all<C: rdkafka::consumer::Consumer>(
    consumer: &C,
    topics: &[String],
    start: impl Fn(&str, i32) -> rdkafka::Offset,
) -> anyhow::Result<()> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, start(topic, p))?;
        }
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// A consumer's configuration: the brokers and group from [`KafkaArgs::consumer`], and what
/// this consumer needs of its own.
#[derive(Clone)]
#[must_use]
pub struct ConsumerBuilder {
    config: ClientConfig,
}

impl ConsumerBuilder {
    /// Where a partition without a valid position starts: `earliest`, `latest` or `error`
    /// (`auto.offset.reset`; librdkafka's default, `latest`, when never called).
    pub fn offset_reset(mut self, reset: &str) -> Self {
        self.config.set("auto.offset.reset", reset);
        self
    }

    /// Reads from the beginning of a partition without a position.
    pub fn from_earliest(self) -> Self {
        self.offset_reset("earliest")
    }

    /// Never creates a topic it asks about (`allow.auto.create.topics=false`).
    pub fn no_topic_creation(self) -> Self {
        self.set("allow.auto.create.topics", "false")
    }

    /// No end-of-partition events (`enable.partition.eof=false`).
    pub fn no_partition_eof(self) -> Self {
        self.set("enable.partition.eof", "false")
    }

    /// Any other librdkafka property (fetch sizes, queue depths, session timeout, ...).
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self
    }

    /// The configuration, for a consumer type of the caller's choosing.
    pub fn config(self) -> ClientConfig {
        self.config
    }

    /// A polling consumer.
    pub fn base(self) -> anyhow::Result<BaseConsumer> {
        Ok(self.config.create()?)
    }

    /// An async (stream) consumer.
    pub fn stream(self) -> anyhow::Result<StreamConsumer> {
        Ok(self.config.create()?)
    }
}

/// Header of every record: its media type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// Header of every record: the correlation id of the command that wrote the event.
pub const CORRELATION_ID_HEADER: &str = "correlation-id";

/// Where the relay says a record comes from: the event, the store, the topic's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub event_id: &'a str,
    pub store_id: &'a str,
    pub epoch: &'a str,
}

/// The headers of an event record: its media type and correlation id; with an origin, the
/// relay's event id, store and epoch; with a trace context, its `traceparent`.
pub fn event_headers(
    content_type: &str,
    correlation_id: &str,
    origin: Option<Origin<'_>>,
    traceparent: Option<&str>,
) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: CONTENT_TYPE_HEADER,
            value: Some(content_type),
        })
        .insert(Header {
            key: CORRELATION_ID_HEADER,
            value: Some(correlation_id),
        });
    if let Some(o) = origin {
        for (key, value) in [
            (EVENT_ID_HEADER, o.event_id),
            (STORE_HEADER, o.store_id),
            (EPOCH_HEADER, o.epoch),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    if let Some(t) = traceparent {
        headers = headers.insert(Header {
            key: crate::trace_context::TRACEPARENT,
            value: Some(t),
        });
    }
    headers
}

/// Header of every record: the event's id, checked by the probes.
pub const EVENT_ID_HEADER: &str = "event-id";
/// Header of every record: the identity of the store it came from.
pub const STORE_HEADER: &str = "store-id";
/// Header of every record: the epoch of its topic (milliseconds; grows with every heal).
pub const EPOCH_HEADER: &str = "relay-epoch";

/// The store id and epoch a record carries, if it was published by the relay.
pub fn record_origin<M: Message>(m: &M) -> (Option<String>, Option<i64>) {
    let (mut store, mut epoch) = (None, None);
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let header = h.get(i);
            let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
            match header.key {
                STORE_HEADER => store = value.map(str::to_owned),
                EPOCH_HEADER => epoch = value.and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
    }
    (store, epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_has_the_brokers_its_group_and_no_auto_commit_plus_its_own_settings() {
        let config = KafkaArgs::brokers("k:9092")
            .consumer("g")
            .from_earliest()
            .no_partition_eof()
            .set("fetch.max.bytes", "52428800")
            .config();
        for (key, value) in [
            ("bootstrap.servers", "k:9092"),
            ("group.id", "g"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("fetch.max.bytes", "52428800"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
        let plain = KafkaArgs::brokers("k:9092").consumer("g").config();
        assert_eq!(plain.get("auto.offset.reset"), None);
        assert_eq!(plain.get("allow.auto.create.topics"), None);
    }
}
