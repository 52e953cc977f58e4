//! End-to-end tests live in `tests/tests/e2e/` (one binary); this library holds what they
//! share with the benchmarks: the internal credential of direct gRPC calls to the services,
//! and the raw Kafka read the benchmarks set their consumers against.

pub use platform::internal_auth::AuthedChannel;
use platform::internal_auth::{Actor, Credential, InternalAuth};

/// The stack's internal secret: `INTERNAL_SECRET`, else the file `INTERNAL_SECRET_FILE`
/// names (the stack's `stack.env` sets it), else `$STACK_DIR/internal_secret`.
pub fn internal_auth() -> anyhow::Result<InternalAuth> {
    let secret = match std::env::var("INTERNAL_SECRET") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            let path = std::env::var("INTERNAL_SECRET_FILE").unwrap_or_else(|_| {
                let dir = std::env::var("STACK_DIR").unwrap_or_else(|_| ".stack".into());
                format!("{dir}/internal_secret")
            });
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("internal secret {path}: {e}"))?
                .trim()
                .to_owned()
        }
    };
    Ok(InternalAuth::new(&secret)?)
}

/// A credential of the stack's secret acting as `actor`.
pub fn credential(actor: Actor) -> anyhow::Result<Credential> {
    Ok(internal_auth()?.credential(actor))
}

/// A connected channel to `url` whose calls carry a credential for `actor`.
pub async fn authed_channel(url: &str, actor: Actor) -> anyhow::Result<AuthedChannel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect()
        .await?;
    Ok(AuthedChannel::new(channel, credential(actor)?))
}

/// The identity of operator tools and benchmarks.
pub fn operator() -> Actor {
    Actor::Service(platform::internal_auth::OPERATOR.into())
}

/// Reads a whole topic from its beginning with a plain consumer, until `expected` records
/// or `within` has passed: the broker-side limit of a consumer. How many, in how long.
pub fn raw_consume(
    brokers: &str,
    topic: &str,
    expected: usize,
    within: std::time::Duration,
) -> anyhow::Result<(usize, std::time::Duration)> {
    use rdkafka::consumer::Consumer as _;
    use std::time::{Duration, Instant};
    let consumer = platform::kafka::KafkaArgs::brokers(brokers)
        .consumer(format!("bench-raw-{}", uuid::Uuid::new_v4()))
        .base()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    let start = Instant::now();
    let mut n = 0;
    while n < expected && start.elapsed() < within {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            n += 1;
        }
    }
    Ok((n, start.elapsed()))
}
